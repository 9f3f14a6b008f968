//! What every part of a running monitor shares: its name, configuration, Raft node, checks,
//! agent links, the observation reports and the metrics.

use std::sync::Arc;

use mmm_config::Config;
use mmm_consensus::ConsensusNode;

use crate::agents::AgentHub;
use crate::checks::Checker;
use crate::metrics::{MonitorMetrics, Readiness};
use crate::reports::ReportStore;

/// The shared parts of one monitor node.
pub struct MonitorContext {
    /// This monitor's `<monitor_node>` name.
    pub name: String,
    /// The configuration it was started with.
    pub config: Arc<Config>,
    /// The Raft node holding the replicated cluster state.
    pub consensus: Arc<ConsensusNode>,
    /// This monitor's own checks of every host.
    pub checker: Arc<Checker>,
    /// Links to every agent.
    pub agents: Arc<AgentHub>,
    /// Latest observations of every monitor (read on the leader).
    pub reports: Arc<ReportStore>,
    /// Exported metrics.
    pub metrics: Arc<MonitorMetrics>,
    /// Replication facts polled from the agents (for people and dashboards; no decision reads them).
    pub topology: Arc<crate::topology::TopologyCache>,
    /// When the leader last accepted this monitor's report (how fresh a follower's answers are).
    pub leader_contact: crate::staleness::LeaderContact,
    /// Client side of mutual TLS for calls to other monitors (`None`: plain text, `<socket> type plain`).
    pub tls: Option<mmm_tls::ClientTls>,
}

impl Readiness for MonitorContext {
    fn ready(&self) -> Result<(), String> {
        if self.consensus.leader().is_none() {
            return Err("no Raft leader known".into());
        }
        if self.checker.snapshot().is_empty() && !self.config.hosts.is_empty() {
            return Err("checks have not run yet".into());
        }
        Ok(())
    }
}
