//! A stand-in MySQL server for the scale benchmark: it speaks just enough of the client/server
//! protocol for the monitor's checks (handshake v10 with `mysql_native_password`, any credentials
//! accepted; `COM_QUERY` answering `SELECT …` with one row, `SHOW SLAVE STATUS` with a healthy
//! replica row and anything else with OK; `COM_PING`, `COM_INIT_DB`, `COM_QUIT`).
//!
//! Each [`StandIn`] listens on its own address; [`StandIn::refuse`] closes the listener and every open
//! connection, so new connections are refused, as when a host's mysqld dies.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// Largest packet a stand-in reads; anything bigger closes the connection.
const MAX_PACKET: usize = 1 << 20;
/// A connection idle this long is closed (the monitor reconnects).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_LONG_FLAG: u32 = 4;
const CLIENT_CONNECT_WITH_DB: u32 = 8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_MULTI_RESULTS: u32 = 0x20000;
const CLIENT_PLUGIN_AUTH: u32 = 0x80000;
const CLIENT_PLUGIN_AUTH_LENENC: u32 = 0x200000;
/// `SERVER_STATUS_AUTOCOMMIT`.
const STATUS_AUTOCOMMIT: u16 = 2;

/// One stand-in server.
pub struct StandIn {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The accept loop and every connection task, aborted by [`StandIn::refuse`].
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl StandIn {
    /// Binds `addr` and starts serving.
    pub async fn start(addr: SocketAddr) -> anyhow::Result<StandIn> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("stand-in: cannot bind {addr}"))?;
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let conns = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            let mut next_id: u32 = 1;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let id = next_id;
                next_id = next_id.wrapping_add(1);
                let h = tokio::spawn(async move {
                    if let Err(e) = serve(stream, id).await {
                        tracing::debug!(error = %format!("{e:#}"), "stand-in connection ended");
                    }
                });
                let mut list = conns.lock().unwrap_or_else(|e| e.into_inner());
                list.retain(|t| !t.is_finished());
                list.push(h.abort_handle());
            }
        });
        tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(accept.abort_handle());
        Ok(StandIn { addr, tasks })
    }

    /// Closes the listener and every connection: new connections are refused from now on.
    pub fn refuse(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
        tracing::info!(addr = %self.addr, "stand-in refuses connections");
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.refuse();
    }
}

/// Writes one packet with sequence id `seq`.
async fn send(s: &mut TcpStream, seq: u8, payload: &[u8]) -> anyhow::Result<()> {
    let len = payload.len() as u32;
    let mut buf = Vec::with_capacity(payload.len() + 4);
    buf.extend_from_slice(&len.to_le_bytes()[..3]);
    buf.push(seq);
    buf.extend_from_slice(payload);
    s.write_all(&buf).await?;
    Ok(())
}

/// Reads one packet: (sequence id, payload).
async fn recv(s: &mut TcpStream) -> anyhow::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 4];
    tokio::time::timeout(IDLE_TIMEOUT, s.read_exact(&mut head))
        .await
        .context("idle")??;
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    anyhow::ensure!(len <= MAX_PACKET, "packet of {len} bytes");
    let mut payload = vec![0u8; len];
    tokio::time::timeout(IDLE_TIMEOUT, s.read_exact(&mut payload))
        .await
        .context("idle")??;
    Ok((head[3], payload))
}

fn lenenc_int(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        out.push(v as u8);
    } else if v < 1 << 16 {
        out.push(0xfc);
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v < 1 << 24 {
        out.push(0xfd);
        out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
    } else {
        out.push(0xfe);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn lenenc_str(out: &mut Vec<u8>, s: &str) {
    lenenc_int(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn ok_packet() -> Vec<u8> {
    let mut p = vec![0x00, 0, 0];
    p.extend_from_slice(&STATUS_AUTOCOMMIT.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    p
}

fn eof_packet() -> Vec<u8> {
    let mut p = vec![0xfe, 0, 0];
    p.extend_from_slice(&STATUS_AUTOCOMMIT.to_le_bytes());
    p
}

fn handshake(conn_id: u32) -> Vec<u8> {
    let caps = CLIENT_LONG_PASSWORD
        | CLIENT_LONG_FLAG
        | CLIENT_CONNECT_WITH_DB
        | CLIENT_PROTOCOL_41
        | CLIENT_TRANSACTIONS
        | CLIENT_SECURE_CONNECTION
        | CLIENT_MULTI_RESULTS
        | CLIENT_PLUGIN_AUTH
        | CLIENT_PLUGIN_AUTH_LENENC;
    let mut p = vec![10u8];
    p.extend_from_slice(b"5.7.44-mmm-standin\0");
    p.extend_from_slice(&conn_id.to_le_bytes());
    p.extend_from_slice(b"abcdefgh\0");
    p.extend_from_slice(&(caps as u16).to_le_bytes());
    p.push(33); // utf8_general_ci
    p.extend_from_slice(&STATUS_AUTOCOMMIT.to_le_bytes());
    p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0u8; 10]);
    p.extend_from_slice(b"ijklmnopqrst\0");
    p.extend_from_slice(b"mysql_native_password\0");
    p
}

/// Sends a text result set with one row: `cols` (name, value; `None` = NULL).
async fn result_set(
    s: &mut TcpStream,
    cols: &[(&str, Option<&str>)],
    with_row: bool,
) -> anyhow::Result<()> {
    let mut seq = 1u8;
    let mut count = Vec::new();
    lenenc_int(&mut count, cols.len() as u64);
    send(s, seq, &count).await?;
    for (name, _) in cols {
        seq = seq.wrapping_add(1);
        let mut d = Vec::new();
        for part in ["def", "", "", ""] {
            lenenc_str(&mut d, part);
        }
        lenenc_str(&mut d, name);
        lenenc_str(&mut d, name);
        d.push(0x0c);
        d.extend_from_slice(&33u16.to_le_bytes());
        d.extend_from_slice(&255u32.to_le_bytes());
        d.push(0xfd); // VAR_STRING
        d.extend_from_slice(&0u16.to_le_bytes());
        d.push(0);
        d.extend_from_slice(&[0, 0]);
        send(s, seq, &d).await?;
    }
    seq = seq.wrapping_add(1);
    send(s, seq, &eof_packet()).await?;
    if with_row {
        let mut row = Vec::new();
        for (_, v) in cols {
            match v {
                Some(v) => lenenc_str(&mut row, v),
                None => row.push(0xfb),
            }
        }
        seq = seq.wrapping_add(1);
        send(s, seq, &row).await?;
    }
    seq = seq.wrapping_add(1);
    send(s, seq, &eof_packet()).await
}

/// Answers one `COM_QUERY`.
async fn query(s: &mut TcpStream, sql: &str) -> anyhow::Result<()> {
    let upper = sql.trim().to_ascii_uppercase();
    if upper.starts_with("SHOW SLAVE STATUS") || upper.starts_with("SHOW REPLICA STATUS") {
        let cols = [
            ("Master_Host", Some("127.0.0.1")),
            ("Slave_IO_Running", Some("Yes")),
            ("Slave_SQL_Running", Some("Yes")),
            ("Seconds_Behind_Master", Some("0")),
            ("Last_IO_Error", Some("")),
            ("Last_SQL_Error", Some("")),
        ];
        return result_set(s, &cols, true).await;
    }
    if let Some(items) = upper.strip_prefix("SELECT") {
        // One column per top-level item; NOW() gets a time, anything else NULL.
        let names: Vec<String> = items.split(',').map(|i| i.trim().to_string()).collect();
        let cols: Vec<(&str, Option<&str>)> = names
            .iter()
            .map(|n| {
                let v = n.starts_with("NOW()").then_some("2000-01-01 00:00:00");
                (n.as_str(), v)
            })
            .collect();
        return result_set(s, &cols, true).await;
    }
    send(s, 1, &ok_packet()).await
}

async fn serve(mut s: TcpStream, conn_id: u32) -> anyhow::Result<()> {
    s.set_nodelay(true)?;
    send(&mut s, 0, &handshake(conn_id)).await?;
    let (seq, _auth) = recv(&mut s).await?;
    send(&mut s, seq.wrapping_add(1), &ok_packet()).await?;
    loop {
        let (_, p) = recv(&mut s).await?;
        match p.first() {
            Some(0x01) | None => return Ok(()),
            Some(0x03) => query(&mut s, &String::from_utf8_lossy(&p[1..])).await?,
            Some(_) => send(&mut s, 1, &ok_packet()).await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::prelude::Queryable;

    #[tokio::test]
    async fn a_mysql_client_connects_queries_and_is_refused_after_refuse() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        let addr = probe.local_addr().expect("addr");
        drop(probe);
        let srv = StandIn::start(addr).await.expect("start");
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(addr.ip().to_string())
            .tcp_port(addr.port())
            .user(Some("u"))
            .pass(Some("p"))
            .prefer_socket(false)
            .stmt_cache_size(0);
        let mut c =
            tokio::time::timeout(Duration::from_secs(5), mysql_async::Conn::new(opts.clone()))
                .await
                .expect("connect in time")
                .expect("connect");
        let now: Option<String> = c.query_first("SELECT NOW()").await.expect("select");
        assert_eq!(now.as_deref(), Some("2000-01-01 00:00:00"));
        let row: Option<mysql_async::Row> = c
            .query_first("SHOW SLAVE STATUS")
            .await
            .expect("slave status");
        let row = row.expect("a row");
        assert_eq!(
            row.get::<String, _>("Slave_IO_Running").as_deref(),
            Some("Yes")
        );
        c.ping().await.expect("ping");
        srv.refuse();
        assert!(
            c.query_drop("SELECT NOW()").await.is_err(),
            "open connection closed"
        );
        let again =
            tokio::time::timeout(Duration::from_secs(5), mysql_async::Conn::new(opts)).await;
        assert!(matches!(again, Ok(Err(_))), "new connections refused");
    }
}
