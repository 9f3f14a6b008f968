//! `mmmctl certs init`: the certificates of a new cluster in one command. Reads the configuration
//! for the monitor nodes and DB hosts, and writes into `--dir`:
//!
//! - `ca.pem`, `ca.key`: the cluster CA (keep `ca.key` offline once the cluster is set up);
//! - `<name>.pem`, `<name>.key` for every `<monitor_node>` and every `<host>`: common name and DNS
//!   SAN = the node's name, IP SAN = its `ip`, for server and client use;
//! - `operator.pem`, `operator.key`: mmmctl's client certificate.
//!
//! Keys are written mode 600. An existing CA is never overwritten without `--force`.
//!
//! `mmmctl certs issue NAME`: one more certificate from the existing CA in `--dir` (a node added
//! to the cluster, or one renewed), with the IPs of NAME in the configuration (or `--ip`). An
//! existing certificate of that name is replaced only with `--force`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use mmm_tls::generate::{Authority, Pem};

use crate::error::CtlError;

/// Name of the operator's (mmmctl's) certificate.
pub const OPERATOR: &str = "operator";

/// The nodes to certify: name → (what it is, its IPs).
fn nodes(
    config: &mmm_config::Config,
) -> Result<BTreeMap<String, (&'static str, Vec<IpAddr>)>, CtlError> {
    let mut out = BTreeMap::new();
    for m in config.monitor_nodes.values() {
        out.insert(m.name.clone(), ("monitor node", vec![m.ip]));
    }
    for h in config.hosts.values() {
        if out.contains_key(&h.name) {
            return Err(CtlError::Config(format!(
                "'{}' names both a monitor node and a host: certificates identify nodes by name, rename one",
                h.name
            )));
        }
        out.insert(h.name.clone(), ("agent host", vec![h.ip]));
    }
    if out.contains_key(OPERATOR) {
        return Err(CtlError::Config(format!(
            "'{OPERATOR}' is reserved for mmmctl's certificate: rename that node"
        )));
    }
    out.insert(OPERATOR.to_string(), ("operator (mmmctl)", vec![]));
    Ok(out)
}

fn write_file(path: &Path, text: &str, mode: u32, force: bool) -> Result<(), CtlError> {
    let io = |e: std::io::Error| CtlError::Config(format!("cannot write {}: {e}", path.display()));
    if force {
        let _ = std::fs::remove_file(path);
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

fn write_pair(dir: &Path, name: &str, pem: &Pem, force: bool) -> Result<PathBuf, CtlError> {
    let cert = dir.join(format!("{name}.pem"));
    write_file(&cert, &pem.cert, 0o644, force)?;
    write_file(&dir.join(format!("{name}.key")), &pem.key, 0o600, force)?;
    Ok(cert)
}

/// Writes the CA and every node's certificate into `dir`; prints what it wrote to `out`.
pub fn init(
    config: &mmm_config::Config,
    dir: &Path,
    force: bool,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let nodes = nodes(config)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| CtlError::Config(format!("cannot create {}: {e}", dir.display())))?;
    if !force && (dir.join("ca.key").exists() || dir.join("ca.pem").exists()) {
        return Err(CtlError::Config(format!(
            "{} already holds a CA (ca.pem/ca.key): refusing to replace it (use --force to start over)",
            dir.display()
        )));
    }
    let err = |e: mmm_tls::TlsError| CtlError::Config(e.to_string());
    let ca = Authority::new("mmm-rs cluster CA").map_err(err)?;
    write_pair(dir, "ca", &ca.pem, force)?;
    writeln!(out, "CA: {}", dir.join("ca.pem").display())?;
    for (name, (what, ips)) in &nodes {
        let pem = ca.issue(name, ips).map_err(err)?;
        let cert = write_pair(dir, name, &pem, force)?;
        let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
        writeln!(
            out,
            "{what} {name}{}: {}",
            if ips.is_empty() {
                String::new()
            } else {
                format!(" ({})", ips.join(", "))
            },
            cert.display()
        )?;
    }
    writeln!(
        out,
        "\nOn each node (mmm_mon.conf, mmm_agent.conf; mmmctl's config uses {OPERATOR}):\n\
         <socket>\n    type      ssl\n    cert_file {d}/NAME.pem\n    key_file  {d}/NAME.key\n    ca_file   {d}/ca.pem\n</socket>\n\
         Copy ca.pem, NAME.pem and NAME.key to each node; keep ca.key offline.",
        d = dir.display()
    )?;
    Ok(())
}

/// Writes `<name>.pem` / `<name>.key` signed by the CA in `dir` (`ca.pem`, `ca.key`); the IPs are
/// `ips` if given, else the node's in `config`. Prints what it wrote to `out`.
pub fn issue(
    config: Option<&mmm_config::Config>,
    name: &str,
    ips: &[IpAddr],
    dir: &Path,
    force: bool,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let known = match config {
        Some(c) => nodes(c)?.remove(name),
        None => None,
    };
    let (what, ips) = match (known, ips.is_empty()) {
        (_, false) => ("node", ips.to_vec()),
        (Some((what, ips)), true) => (what, ips),
        (None, true) => {
            return Err(CtlError::Config(format!(
                "'{name}' is neither a <monitor_node> nor a <host> of the configuration: \
                 give its address with --ip"
            )))
        }
    };
    if name.is_empty() || name == "ca" || name.contains(['/', '\0']) || name.starts_with('.') {
        return Err(CtlError::Config(format!(
            "'{name}' cannot name a certificate (ca is the CA's own)"
        )));
    }
    let read = |file: &str| {
        let p = dir.join(file);
        std::fs::read_to_string(&p).map_err(|e| {
            CtlError::Config(format!(
                "cannot read the CA's {} ({e}): run `mmmctl certs init` first, or give --dir",
                p.display()
            ))
        })
    };
    let (ca_cert, ca_key) = (read("ca.pem")?, read("ca.key")?);
    let cert_path = dir.join(format!("{name}.pem"));
    if !force && (cert_path.exists() || dir.join(format!("{name}.key")).exists()) {
        return Err(CtlError::Config(format!(
            "{} already exists: refusing to replace it (use --force)",
            cert_path.display()
        )));
    }
    let err = |e: mmm_tls::TlsError| CtlError::Config(e.to_string());
    let ca = Authority::load(&ca_cert, &ca_key).map_err(err)?;
    let pem = ca.issue(name, &ips).map_err(err)?;
    let cert = write_pair(dir, name, &pem, force)?;
    let shown: Vec<String> = ips.iter().map(ToString::to_string).collect();
    writeln!(
        out,
        "{what} {name}{}: {} (signed by {})",
        if shown.is_empty() {
            String::new()
        } else {
            format!(" ({})", shown.join(", "))
        },
        cert.display(),
        dir.join("ca.pem").display()
    )?;
    Ok(())
}
