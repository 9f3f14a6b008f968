//! Command line of `mmm-agent`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `mmm-agent [@CLUSTER] [--config FILE] [--check-config | --forget-cluster | --keep-writer SECONDS]`
#[derive(Debug, Parser)]
#[command(
    name = "mmm-agent",
    version,
    about = "mmm-rs agent: VIPs, read_only, replication and fencing on one DB host"
)]
pub struct Args {
    /// `@CLUSTER` selects `mmm_agent_CLUSTER.conf` (several clusters on one machine).
    #[arg(value_name = "@CLUSTER", value_parser = parse_cluster)]
    pub cluster: Option<String>,
    /// Read this file instead of searching /etc, /etc/mmm, /etc/mysql-mmm.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print it (passwords masked) and exit: 0 when valid, 1 otherwise.
    #[arg(long)]
    pub check_config: bool,
    /// Remove the persisted epoch and monitor cluster id (printing them first) and exit, so that the
    /// agent adopts the next monitor cluster that talks to it: after the whole monitor cluster was
    /// replaced. Stop the agent first.
    #[arg(long, conflicts_with = "check_config")]
    pub forget_cluster: bool,
    /// Migration from MMM: keep this host's running writer writing across the agent's first start,
    /// by keeping a writer lease of SECONDS (at most 300) in mysqld's fence; the agent adopts it at
    /// start and the monitors renew it once they adopt this host as the writer. Refused unless mysqld
    /// is writable (read_only=0) and the agent is stopped. Exits after setting the lease.
    #[arg(
        long,
        value_name = "SECONDS",
        conflicts_with_all = ["check_config", "forget_cluster"]
    )]
    pub keep_writer: Option<u64>,
    /// Log format on stderr (filter with RUST_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

fn parse_cluster(s: &str) -> Result<String, String> {
    match s.strip_prefix('@') {
        Some(name)
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Ok(name.to_string())
        }
        _ => Err(format!(
            "expected @CLUSTER (letters, digits, '_' or '-'), got {s:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_and_flags() {
        let a = Args::try_parse_from([
            "mmm-agent",
            "@prod",
            "--config",
            "/x.conf",
            "--check-config",
        ])
        .unwrap();
        assert_eq!(a.cluster.as_deref(), Some("prod"));
        assert_eq!(a.config, Some(PathBuf::from("/x.conf")));
        assert!(a.check_config);
        assert!(Args::try_parse_from(["mmm-agent", "prod"]).is_err());
        let a = Args::try_parse_from(["mmm-agent", "--log-format", "json"]).unwrap();
        assert_eq!(a.log_format, LogFormat::Json);
        assert!(!a.forget_cluster);
        let a = Args::try_parse_from(["mmm-agent", "@prod", "--forget-cluster"]).unwrap();
        assert!(a.forget_cluster);
        assert_eq!(a.cluster.as_deref(), Some("prod"));
        assert!(
            Args::try_parse_from(["mmm-agent", "--forget-cluster", "--check-config"]).is_err(),
            "one action at a time"
        );
        let a = Args::try_parse_from(["mmm-agent", "--keep-writer", "60"]).unwrap();
        assert_eq!(a.keep_writer, Some(60));
        assert!(
            Args::try_parse_from(["mmm-agent", "--keep-writer", "60", "--forget-cluster"]).is_err(),
            "one action at a time"
        );
    }
}
