//! Which monitors to ask: `--monitor HOST:PORT`… or, as mmm_control did, the configuration
//! (`mmm_mon[_CLUSTER].conf`: every `<monitor_node>`, or MMM's single `<monitor> ip/port`), and the
//! TLS settings of `<socket>`. On a DB host, which has no monitor file, the agent's
//! `mmm_agent[_CLUSTER].conf` is read instead: the common file it includes names every monitor.

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::cli::Cli;
use crate::error::CtlError;

/// One monitor to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorAddr {
    /// Its `<monitor_node>` name, when known (TLS server name, messages).
    pub name: Option<String>,
    /// `HOST:PORT`.
    pub addr: String,
}

/// The monitors to try, in order, and the TLS settings to use with them.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Monitors in the order they are tried.
    pub monitors: Vec<MonitorAddr>,
    /// Mutual TLS (`<socket> type ssl`), or None for plain connections.
    pub tls: Option<ClientTlsConfig>,
}

/// The monitors named on the command line, else those of the configuration. The configuration is
/// read whenever `--monitor` is not given or `--config` is (for `<socket>`).
pub fn targets(cli: &Cli) -> Result<Targets, CtlError> {
    let from_args: Vec<MonitorAddr> = cli
        .monitors
        .iter()
        .map(|a| MonitorAddr {
            name: None,
            addr: a.clone(),
        })
        .collect();
    if !from_args.is_empty() && cli.config.is_none() {
        return Ok(Targets {
            monitors: from_args,
            tls: None,
        });
    }
    let config = load_config(
        cli.cluster.as_deref(),
        cli.config.as_deref(),
        &mmm_config::LoadOptions::default(),
    )?;
    let tls = tls_config(&config)?;
    let monitors = if from_args.is_empty() {
        from_config(&config)
    } else {
        from_args
    };
    Ok(Targets { monitors, tls })
}

/// The configuration mmmctl reads: `explicit` when given; else the monitor file, and when there is none
/// (a DB host), the agent file, whose included common file lists the monitors. When neither can be
/// read, the error gives both reasons.
pub fn load_config(
    cluster: Option<&str>,
    explicit: Option<&std::path::Path>,
    opts: &mmm_config::LoadOptions,
) -> Result<mmm_config::Config, CtlError> {
    let control = mmm_config::load_with(mmm_config::Program::Control, cluster, explicit, opts);
    let control_err = match control {
        Ok(c) => return Ok(c),
        Err(e) if explicit.is_some() => return Err(CtlError::Config(e.to_string())),
        Err(e) => e,
    };
    match mmm_config::load_with(mmm_config::Program::Agent, cluster, None, opts) {
        Ok(c) if !c.monitor_nodes.is_empty() => Ok(c),
        Ok(_) => Err(CtlError::Config(format!(
            "{control_err}; the agent's configuration names no <monitor_node>"
        ))),
        Err(agent_err) => Err(CtlError::Config(format!(
            "{control_err}; and no agent configuration either: {agent_err}"
        ))),
    }
}

/// Every monitor node of the configuration, the local one (`this`) first.
pub fn from_config(config: &mmm_config::Config) -> Vec<MonitorAddr> {
    let mut nodes: Vec<MonitorAddr> = config
        .monitor_nodes
        .values()
        .map(|n| MonitorAddr {
            name: Some(n.name.clone()),
            addr: host_port(n.ip, n.port),
        })
        .collect();
    if let Some(this) = config.this.as_deref() {
        nodes.sort_by_key(|n| n.name.as_deref() != Some(this));
    }
    nodes
}

/// `ip:port`, with brackets for IPv6.
fn host_port(ip: std::net::IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// The client side of `<socket> type ssl`.
fn tls_config(config: &mmm_config::Config) -> Result<Option<ClientTlsConfig>, CtlError> {
    if config.socket.kind != mmm_config::SocketKind::Ssl {
        return Ok(None);
    }
    let read = |what: &str, p: &Option<std::path::PathBuf>| -> Result<Vec<u8>, CtlError> {
        let p = p
            .as_ref()
            .ok_or_else(|| CtlError::Config(format!("<socket> type ssl needs {what}")))?;
        std::fs::read(p)
            .map_err(|e| CtlError::Config(format!("cannot read {what} {}: {e}", p.display())))
    };
    let ca = read("ca_file", &config.socket.ca_file)?;
    let cert = read("cert_file", &config.socket.cert_file)?;
    let key = read("key_file", &config.socket.key_file)?;
    Ok(Some(
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .identity(Identity::from_pem(cert, key)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &std::path::Path) -> mmm_config::LoadOptions {
        mmm_config::LoadOptions {
            search_path: vec![dir.to_path_buf()],
            check_permissions: false,
        }
    }

    /// On a DB host only the agent file and its common file exist: the monitors come from there.
    #[test]
    fn a_db_host_finds_the_monitors_through_the_agent_files_include() {
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
        let dir = tempfile::tempdir().expect("tempdir");
        for f in ["mmm_agent.conf", "mmm_common.conf"] {
            std::fs::copy(examples.join(f), dir.path().join(f)).expect("copy example");
        }
        let config = load_config(None, None, &opts(dir.path())).expect("agent file read");
        let monitors = from_config(&config);
        let addrs: Vec<&str> = monitors.iter().map(|m| m.addr.as_str()).collect();
        assert_eq!(
            addrs,
            ["10.0.0.21:9988", "10.0.0.22:9988", "10.0.0.23:9988"],
            "{monitors:?}"
        );
    }

    /// With neither file, both reasons are given.
    #[test]
    fn no_file_at_all_says_what_was_looked_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = load_config(None, None, &opts(dir.path())).expect_err("nothing to read");
        let msg = e.to_string();
        assert!(
            msg.contains("mmm_mon") && msg.contains("mmm_agent"),
            "{msg}"
        );
    }
}
