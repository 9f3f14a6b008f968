//! The lab: real MariaDB servers and mmm-rs processes on one machine, each in its own network namespace on a
//! private Linux bridge, with fault injection (kill -9, link down, nftables drops between namespaces).
//!
//! Everything needs root. A lab takes a *slot* (0..=250) so several labs run at once; the slot fixes the names
//! (`mmm{N}b` bridge, `mmm{N}-db1` namespaces) and the subnet `10.213.N.0/24`. Dropping a [`Lab`] tears it all
//! down; [`cleanup_all_leftovers`] removes what a crashed run left behind.
//!
//! Besides kill -9, pulled links and full blocks, the lab injects the faults that break leases in real
//! deployments: paused processes (SIGSTOP), one-way blocks and multi-node partitions (with client
//! namespaces on either side), skewed clocks (libfaketime), sessions holding locks, a password changed on
//! one server, and a full disk (see the `nemesis` items).

mod bins;
pub mod browser;
pub mod cluster;
mod cmd;
mod configs;
pub mod demo;
mod firewall;
pub mod http;
mod lab;
mod mariadb;
mod names;
mod nemesis;
mod net;
pub mod oracle;
mod process;
pub mod random_nemesis;
pub mod scenario;
mod slot;
pub mod users;
pub mod workload;

pub use bins::{try_workspace_bin, workspace_bin};
pub use configs::{LabConfigs, AGENT_PORT, METRICS_PORT, MONITOR_PORT};
pub use lab::{ClientNs, DbHost, HostMode, Lab, LabSpec, MonitorNs, KEEP_DIR_ENV};
pub use nemesis::{
    faketime_library, is_mounted, ClockSkew, HolderOutcome, LockHolder, SmallDisk, NEMESIS_TABLE,
};
pub use process::LabProcess;
pub use slot::cleanup_all_leftovers;

/// Sets up `tracing` output for tests and the lab binary (`RUST_LOG`, default `info`); safe to call often.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,mysql_async=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
