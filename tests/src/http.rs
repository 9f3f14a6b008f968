//! A minimal HTTP/1.1 client for the monitors' and agents' HTTP endpoints (`/metrics`, `/readyz`, the
//! JSON API, the status page, the agents' role endpoints): one `GET` with `Connection: close`, every
//! step bounded ([`HTTP_TIMEOUT`] or the caller's), chunked bodies decoded. Blocking; call it from
//! `spawn_blocking` in async tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;

/// Deadline of each step (connect, write, read) of one request: the endpoints answer from memory, so
/// seconds mean the process is paused or cut off.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET path` from `addr` within [`HTTP_TIMEOUT`] per step: the status code and the body.
pub fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    get_within(addr, path, HTTP_TIMEOUT)
}

/// `GET path` from `addr` with `timeout` per step: the status code and the body.
pub fn get_within(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<(u16, String)> {
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("read {addr}{path}"))?;
    let raw = String::from_utf8(raw).context("response is not UTF-8")?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .with_context(|| format!("no end of headers from {addr}{path}: {raw:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status line from {addr}{path}: {head:?}"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// Decodes a chunked body.
fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("bad chunk")?;
        let size = usize::from_str_radix(size.trim(), 16).context("bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).context("short chunk")?);
        body = rest.get(size + 2..).context("short chunk")?;
    }
}
