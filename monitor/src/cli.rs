//! Command line of `mmm-monitor` (in the library so the man page can be generated from it).

use std::path::PathBuf;

use clap::Parser;

/// Command line of the monitor.
#[derive(Parser, Debug)]
#[command(
    name = "mmm-monitor",
    version,
    about = "mmm-rs monitor: one node of the Raft monitor cluster"
)]
pub struct Args {
    /// `@NAME` selects the cluster's configuration `mmm_mon_NAME.conf`.
    #[arg(value_name = "@CLUSTER")]
    pub cluster: Option<String>,
    /// Configuration file (default: mmm_mon[_CLUSTER].conf in /etc, /etc/mmm, /etc/mysql-mmm).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print it with defaults filled in (passwords masked) and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: crate::logging::LogFormat,
}
