//! What the leader gathered for one round of decisions: every monitor's latest report, its own
//! knowledge of each agent, and the clock.

use std::collections::{BTreeMap, BTreeSet};

use mmm_consensus::Epoch;

/// The names of MMM's four checks, in MMM's order.
pub const CHECK_NAMES: [&str; 4] = ["ping", "mysql", "rep_threads", "rep_backlog"];

/// Outcome of one check as one monitor sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CheckStatus {
    /// The check passes.
    Ok,
    /// The check fails.
    Fail,
    /// The check could not tell (e.g. MySQL error 1040, not run yet); never changes a state.
    #[default]
    Unknown,
}

/// One monitor's view of one check on one host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckObs {
    /// Pass, fail or unknown.
    pub status: CheckStatus,
    /// How long (ms) the check has had this status on that monitor; compared with `trap_period`.
    pub lasted_ms: u64,
    /// The check's message (e.g. "connect timeout"), quoted in decision reasons.
    pub message: String,
}

/// One monitor's view of one host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostObservation {
    /// Check results by check name (`ping`, `mysql`, `rep_threads`, `rep_backlog`).
    pub checks: BTreeMap<String, CheckObs>,
    /// The monitor could reach the host's agent.
    pub agent_reachable: bool,
    /// Definite evidence: the host's own agent reports mysqld gone or refusing connections, confirmed by
    /// a second local probe. Acted on at once, without majority or trap period.
    pub agent_says_mysql_down: bool,
    /// The agent's words for it (e.g. "connection refused"), quoted in the reason.
    pub agent_detail: String,
    /// The agent's system uptime, to tell a short outage from a reboot.
    pub agent_uptime_s: Option<u64>,
}

/// The latest report of one monitor, as held by the leader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonitorReport {
    /// When the leader received it (ms, leader's clock); stale reports are ignored.
    pub received_ms: u64,
    /// The monitor's own network check (`ping_ips`) passed; reports from a cut-off monitor are ignored.
    pub network_ok: bool,
    /// What it saw of each host.
    pub hosts: BTreeMap<String, HostObservation>,
}

/// What the leader knows of one agent (from its pushes, acks and health stream).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentFacts {
    /// The leader can talk to the agent now.
    pub reachable: bool,
    /// Highest epoch the agent acknowledged (it applied the status committed at that epoch).
    pub acked_epoch: Option<Epoch>,
    /// Highest epoch at which the agent acknowledged a status denying it writes, verified by the agent
    /// (`read_only` read back, or mysqld certainly down). Only this counts as a demotion: a writer's
    /// lease renewal at the same epoch does not.
    pub demotion_acked_epoch: Option<Epoch>,
    /// The server's GTID position the agent reported with that demotion (what the candidate must reach).
    pub demoted_gtid: Option<String>,
    /// The agent reports `read_only=0` (it acts as a writer).
    pub writable: bool,
    /// The agent reports holding a writer VIP.
    pub holds_writer_vip: bool,
    /// Leader's conservative estimate of when the old writer certainly writes no more: the later of its
    /// own last renewal and its leadership's start, plus the lease, the fence in mysqld and the margins
    /// of `crate::lease`. `None` when the host does not hold the writer role.
    pub lease_expires_ms: Option<u64>,
    /// The failover (by its start epoch) for which this agent, as candidate, reported its relay log applied.
    pub caught_up_for: Option<Epoch>,
    /// What that candidate fetched from peers that had transactions it lacked ("" when nothing).
    pub caught_up_from: String,
    /// The errant transactions this agent saved and undid before rejoining (what the last status's
    /// `rejoin` asked), and the file it saved them to; `None` until it did.
    pub rejoined: Option<(String, String)>,
    /// The master this agent last acknowledged replicating from.
    pub repointed_to: Option<String>,
    /// GTIDs only this host has (an old master returning), as reported by its agent.
    pub gtid_errant: Option<String>,
    /// The host is not ONLINE and no errant-transaction check against the active master has passed
    /// since it entered its state: it stays out of ONLINE (and out of the writer's replication) until
    /// one does.
    pub errant_unchecked: bool,
    /// Required server settings the host misses, as its agent reported (`None`: none, or not known):
    /// such a host is not made the writer (`mmm_proto::settings`).
    pub writer_settings_missing: Option<String>,
    /// The host, as the writer, last reported running without semi-synchronous acknowledgements
    /// (`Rpl_semi_sync_master_status=OFF`): writes it acknowledged may exist on it alone.
    pub writer_async: bool,
    /// The failover (by its start epoch) for which `kill_host_bin` succeeded against this host.
    pub kill_host_ok_at: Option<Epoch>,
    /// For the active master: how long (ms) the leader has not seen its agent keep it writable (health
    /// stream down, or the agent reports writes not allowed, e.g. it cannot reach mysqld). 0 otherwise.
    pub not_writable_ms: u64,
    /// The server's GTID position as its agent's health stream last reported it; `None` when unknown
    /// (no stream, or no answered probe yet).
    pub position: Option<ReportedPosition>,
}

/// A host's GTID position and how long it has stood still, as of this round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportedPosition {
    /// MariaDB `@@gtid_current_pos` (MySQL `gtid_executed`): what the server applied or wrote.
    pub gtid: String,
    /// How long (ms) it has not changed: the agent sends every change, so a position its live stream
    /// has not updated since is still the server's.
    pub unchanged_ms: u64,
}

/// Which hosts look like the current writer, for a cluster that has no active master yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartupEvidence {
    /// Hosts reporting `read_only=0`.
    pub writable: BTreeSet<String>,
    /// Hosts holding a writer VIP.
    pub holds_writer_vip: BTreeSet<String>,
    /// True when every writer-role host answered (the leader asked them all); with `careful_startup` the
    /// engine waits for complete evidence before naming a writer.
    pub complete: bool,
}

/// Everything one round of decisions reads besides the state and the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Input {
    /// Leader's clock (ms since the Unix epoch); stamped on every proposal.
    pub now_ms: u64,
    /// The leader's own monitor name (key in `reports`); its network check gates every decision.
    pub leader: String,
    /// Number of voting monitors; a majority of it is needed for ambiguous evidence.
    pub monitors_total: usize,
    /// Latest report of every monitor, the leader's own included.
    pub reports: BTreeMap<String, MonitorReport>,
    /// What the leader knows of each agent, by host name.
    pub agents: BTreeMap<String, AgentFacts>,
    /// Startup evidence; when `None` the engine derives it from `agents`.
    pub startup: Option<StartupEvidence>,
}

impl Input {
    /// Facts about `host`'s agent (all false/None when unknown).
    pub fn agent(&self, host: &str) -> AgentFacts {
        self.agents.get(host).cloned().unwrap_or_default()
    }

    /// Whether `host`'s agent is reachable from the leader.
    pub fn agent_reachable(&self, host: &str) -> bool {
        self.agents.get(host).is_some_and(|a| a.reachable)
    }

    /// The required server settings `host` misses for the writer role, as its agent reported.
    pub fn settings_missing(&self, host: &str) -> Option<&str> {
        self.agents
            .get(host)
            .and_then(|a| a.writer_settings_missing.as_deref())
    }
}
