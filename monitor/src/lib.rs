//! mmm-monitor: one node of the monitor cluster.
//!
//! - [`checks`]: MMM's checks of every host, run concurrently.
//! - [`engine`]: the pure decision engine (MMM's state machine, role placement, failover steps).
//! - [`leader`]: the loop the Raft leader runs: gather, decide, commit, push to agents.
//! - [`control`] / [`operator`]: the control service for mmmctl and the operator commands.
//! - [`agents`], [`reports`], [`reporter`], [`convert`]: links to agents, observation reports between monitors.
//! - [`metrics`], [`observe`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`http`]: the read-only JSON API (`/api/v1/...`) and the status page (`/`) on the metrics port.
//! - [`topology`], [`staleness`]: replication facts polled from the agents, and how fresh an answer is.
//! - [`node`]: wiring and `run`; [`logging`]: log set-up and the shutdown signal; [`cli`]: the
//!   command line.

pub mod agents;
pub mod checks;
pub mod cli;
pub mod context;
pub mod control;
pub mod convert;
pub mod engine;
pub mod errant;
pub mod hooks;
pub mod http;
pub mod leader;
pub mod lease;
pub mod logging;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod observe;
pub mod operator;
pub mod reporter;
pub mod reports;
pub mod staleness;
#[cfg(test)]
mod test_support;
pub mod topology;
