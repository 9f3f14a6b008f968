//! Which monitors to ask: `--monitor HOST:PORT`… or, as mmm_control did, the configuration
//! (`mmm_mon[_CLUSTER].conf`: every `<monitor_node>`, or MMM's single `<monitor> ip/port`), and the
//! TLS settings of `<socket>`.

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
    let config = mmm_config::load(
        mmm_config::Program::Control,
        cli.cluster.as_deref(),
        cli.config.as_deref(),
    )
    .map_err(|e| CtlError::Config(e.to_string()))?;
    let tls = tls_config(&config)?;
    let monitors = if from_args.is_empty() {
        from_config(&config)
    } else {
        from_args
    };
    Ok(Targets { monitors, tls })
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
