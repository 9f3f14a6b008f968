//! The replicated cluster state (`ClusterState`) and the commands that change it.
//!
//! Every monitor holds the same `ClusterState`, built by applying committed [`Request`]s in log order.
//! `apply` is deterministic: it reads nothing but the state, the request (whose time was stamped by the
//! leader that proposed it) and the log id it was committed at. A request that fails validation leaves the
//! state untouched and its error is returned to the proposer; a `Batch` is applied all-or-nothing.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use mmm_proto::is_cluster_id;
use serde::{Deserialize, Serialize};

/// How many decisions the audit history keeps; older ones are dropped first.
pub const HISTORY_LIMIT: usize = 1000;

/// How many drops from ONLINE a host record keeps for flap detection (far above any sane `flap_count`).
pub const DROPS_LIMIT: usize = 64;

/// The log id of a committed decision (term, index). Agents fence on it.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct Epoch {
    /// Raft term of the entry that made the decision.
    pub term: u64,
    /// Raft log index of that entry.
    pub index: u64,
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.term, self.index)
    }
}

/// MMM's host states (mmm-reference.md section 3).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostState {
    Unknown,
    Online,
    AdminOffline,
    HardOffline,
    AwaitingRecovery,
    ReplicationDelay,
    ReplicationFail,
}

impl HostState {
    /// MMM's spelling, as `mmm_control show` prints it.
    pub fn as_mmm_str(self) -> &'static str {
        match self {
            HostState::Unknown => "UNKNOWN",
            HostState::Online => "ONLINE",
            HostState::AdminOffline => "ADMIN_OFFLINE",
            HostState::HardOffline => "HARD_OFFLINE",
            HostState::AwaitingRecovery => "AWAITING_RECOVERY",
            HostState::ReplicationDelay => "REPLICATION_DELAY",
            HostState::ReplicationFail => "REPLICATION_FAIL",
        }
    }
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_mmm_str())
    }
}

/// MMM's monitor modes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    #[default]
    Active,
    Manual,
    Wait,
    Passive,
}

impl Mode {
    /// MMM's spelling, as `mmm_control mode` prints it.
    pub fn as_mmm_str(self) -> &'static str {
        match self {
            Mode::Active => "ACTIVE",
            Mode::Manual => "MANUAL",
            Mode::Wait => "WAIT",
            Mode::Passive => "PASSIVE",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_mmm_str())
    }
}

/// What the cluster knows of one database host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HostRecord {
    /// The host's MMM state.
    pub state: HostState,
    /// When (leader's clock, ms since the Unix epoch) the host entered `state`; drives `auto_set_online`.
    pub since_ms: u64,
    /// Epoch of the last decision that changed this host.
    pub epoch: Epoch,
    /// Times (ms) the host dropped out of ONLINE, kept within `flap_duration`, for flap detection.
    pub online_drops_ms: Vec<u64>,
    /// Set when the host flapped; it then returns to ONLINE only by operator or after `flap_duration` quiet.
    pub flapping: bool,
    /// The agent's uptime when last seen, to tell a short outage from a reboot.
    pub agent_uptime_s: Option<u64>,
    /// GTIDs this host has that no other host has (an old master returning); kept out of rotation while set.
    pub errant_gtids: Option<String>,
    /// The host was failed over while it ran without semi-synchronous acknowledgements: writes it
    /// acknowledged may exist on it alone, so its errant transactions are never undone automatically.
    #[serde(default)]
    pub acked_alone: bool,
    /// The errant transactions its agent is asked to save and undo before it rejoins as a replica
    /// (`auto_rejoin_errant`); `None` when no rejoin is asked.
    #[serde(default)]
    pub rejoin: Option<String>,
}

impl HostRecord {
    /// A host the cluster has not judged yet.
    pub fn new() -> Self {
        HostRecord {
            state: HostState::Unknown,
            since_ms: 0,
            epoch: Epoch::default(),
            online_drops_ms: Vec::new(),
            flapping: false,
            agent_uptime_s: None,
            errant_gtids: None,
            acked_alone: false,
            rejoin: None,
        }
    }
}

impl Default for HostRecord {
    fn default() -> Self {
        Self::new()
    }
}

/// One role IP and the host that holds it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RoleIpRecord {
    /// The role this IP belongs to.
    pub role: String,
    /// The host holding the IP, `None` when unassigned.
    pub owner: Option<String>,
    /// Epoch of the decision that set `owner`.
    pub epoch: Epoch,
}

/// The steps of a writer failover or switchover, each committed before it is carried out, so that a new
/// leader resumes the sequence where the old one stopped.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailoverStep {
    /// The old writer must deny writes (acknowledge at this epoch), or its lease must run out, or
    /// `kill_host_bin` must succeed.
    DemoteOld,
    /// The candidate applies everything it received from the old writer.
    CatchUp,
    /// Replicas are re-pointed to the candidate.
    Repoint,
    /// The candidate allows writes and takes the writer IP.
    Promote,
}

impl fmt::Display for FailoverStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            FailoverStep::DemoteOld => "demote-old",
            FailoverStep::CatchUp => "catch-up",
            FailoverStep::Repoint => "repoint",
            FailoverStep::Promote => "promote",
        };
        f.write_str(s)
    }
}

/// A writer move in progress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Failover {
    /// The role being moved (the `active_master_role`).
    pub role: String,
    /// The host giving it up, if any.
    pub from: Option<String>,
    /// The host receiving it.
    pub to: String,
    /// The step reached (committed).
    pub step: FailoverStep,
    /// True for an operator's `move_role` (planned), false for a failure.
    pub planned: bool,
    /// When it started (ms), for its duration.
    pub started_ms: u64,
    /// When (ms) the current `step` was reached; step timeouts (catch-up, re-pointing) count from here.
    #[serde(default)]
    pub step_since_ms: u64,
    /// Epoch of the decision that started it.
    pub started_epoch: Epoch,
    /// Why.
    pub reason: String,
    /// The old writer's last GTID position, as it reported with its verified demotion (or its hold):
    /// what the candidate must have applied before it is promoted. `None` when the old writer could not
    /// say (unreachable, dead): the candidate then applies what it received.
    #[serde(default)]
    pub target_gtid: Option<String>,
}

/// One committed decision, for `mmmctl history` and the audit log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Leader's clock when proposed (ms since the Unix epoch).
    pub time_ms: u64,
    /// The log id it was committed at.
    pub epoch: Epoch,
    /// The host concerned, if one.
    pub host: Option<String>,
    /// The role concerned, if one.
    pub role: Option<String>,
    /// Value before.
    pub from: String,
    /// Value after.
    pub to: String,
    /// Why it was decided.
    pub reason: String,
}

/// How many hook runs may wait for the leader; older ones are dropped first (and logged).
pub const PENDING_HOOKS_LIMIT: usize = 64;

/// The operator's programs the leader runs after a committed decision.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookKind {
    /// After a writer failover or switchover completed (`post_failover`).
    PostFailover,
    /// After any role IP changed owner (`post_role_change`).
    PostRoleChange,
}

impl HookKind {
    /// The configuration key naming the program.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::PostFailover => "post_failover",
            HookKind::PostRoleChange => "post_role_change",
        }
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A committed decision whose hook has not run yet. Recorded when the decision is applied, removed by
/// `HookDone` once the leader ran the hook, so a new leader runs exactly the ones still pending.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HookEvent {
    /// Which hook.
    pub hook: HookKind,
    /// The decision's epoch (with `hook` and `ip`, what identifies the event).
    pub epoch: Epoch,
    /// Leader's clock when decided (ms), so very old events can be skipped.
    pub time_ms: u64,
    /// The role concerned.
    pub role: String,
    /// The role IP concerned (empty for a failover: every writer IP moves).
    pub ip: String,
    /// The host that held it, if any.
    pub old_owner: Option<String>,
    /// The host that holds it now, if any.
    pub new_owner: Option<String>,
}

/// The monitors' shared state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterState {
    /// Hosts by name.
    pub hosts: BTreeMap<String, HostRecord>,
    /// Role IPs (their text form) and their owners.
    pub role_ips: BTreeMap<String, RoleIpRecord>,
    /// The host holding the active master role, if any.
    pub active_master: Option<String>,
    /// The cluster's mode.
    pub mode: Mode,
    /// Why the cluster is passive (MMM's "# Cause: ...").
    pub passive_cause: Option<String>,
    /// The writer move in progress, if any.
    pub failover: Option<Failover>,
    /// Bounded audit history, oldest first.
    pub history: VecDeque<Decision>,
    /// Log id of the last applied request.
    pub last_epoch: Epoch,
    /// Decisions whose `post_*` hook the leader has still to run (oldest first, bounded).
    #[serde(default)]
    pub pending_hooks: VecDeque<HookEvent>,
    /// The cluster's identity (32 hex digits), set by the first `Register` that carries one and never
    /// changed. Every status pushed to an agent carries it, and an agent that adopted it refuses
    /// statuses of any other cluster: a rebuilt monitor cluster (new log, low epochs) or anyone else
    /// reaching the agent port cannot pass as this one. Empty until set (a state from before ids).
    #[serde(default)]
    pub cluster_id: String,
    /// The host an operator named for the writer role with `set_ip` while the cluster is passive. The
    /// agents are not told: the active master keeps the role (and its lease) until the cluster leaves
    /// passive mode, when the move is started as a planned switchover through the committed failover
    /// steps (the old writer is demoted first). Cleared when the cluster leaves passive mode.
    #[serde(default)]
    pub planned_writer: Option<String>,
}

/// A change to the state. Each is validated when applied.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Registers hosts and role IPs (from the configuration) not yet known. Never removes anything.
    Register {
        /// Host names.
        hosts: Vec<String>,
        /// (role, ip) pairs.
        role_ips: Vec<(String, String)>,
        /// A cluster id chosen (at random) by the proposer, kept only when the state has none yet, so
        /// every replica applies the same value and the first one committed stays for good.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster_id: Option<String>,
    },
    /// Changes a host's state.
    SetHostState { host: String, state: HostState },
    /// Gives a role IP to a host, or takes it away (`None`).
    SetRoleOwner { ip: String, owner: Option<String> },
    /// Names the active master.
    SetActiveMaster { host: Option<String> },
    /// Changes the mode. Leaving passive mode clears the planned writer.
    SetMode { mode: Mode, cause: Option<String> },
    /// Names the host the writer role is to move to when the cluster leaves passive mode (`None`:
    /// no move planned).
    PlanWriter { host: Option<String> },
    /// Records the agent's uptime as last seen.
    SetAgentUptime { host: String, uptime_s: Option<u64> },
    /// Marks or clears errant transactions on a host (clearing them also clears `rejoin` and
    /// `acked_alone`: the host is clean again).
    SetErrant { host: String, gtids: Option<String> },
    /// Marks a host failed over while it ran without semi-synchronous acknowledgements.
    SetAckedAlone { host: String },
    /// Asks (or stops asking) a host's agent to save and undo its errant transactions and rejoin.
    SetRejoin { host: String, gtids: Option<String> },
    /// Starts a writer move.
    BeginFailover {
        role: String,
        from: Option<String>,
        to: String,
        planned: bool,
    },
    /// Records that a failover step is reached.
    FailoverStep { step: FailoverStep },
    /// Records the GTID position the failover's candidate must apply before promotion (the old
    /// writer's last position).
    CatchUpTarget { gtid: String },
    /// Ends the writer move (completed or abandoned).
    EndFailover { completed: bool },
    /// Clears the flapping mark of a host (operator `set_online`, or `flap_duration` quiet).
    ClearFlapping { host: String },
    /// Marks a host as flapping (more than `flap_count` drops from ONLINE within `flap_duration`).
    MarkFlapping { host: String },
    /// Several commands applied all-or-nothing as one decision.
    Batch(Vec<Command>),
    /// The decisions of one leader round in one log entry, so a round deciding about many hosts costs
    /// one commit. Applied in order, each all-or-nothing with its own reason and clock; the first one
    /// refused stops the rest (later decisions of a round may depend on it). Rounds do not nest.
    Round(Vec<Request>),
    /// The leader ran (or gave up on) the hook of a decision: it is not run again by any leader.
    HookDone {
        /// The decision's epoch.
        epoch: Epoch,
        /// Which hook.
        hook: HookKind,
        /// The role IP of the event (empty for a failover).
        ip: String,
    },
}

/// A proposed decision: what to change, why, and the proposing leader's clock.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Leader's clock when proposed (ms since the Unix epoch). The only time `apply` uses.
    pub time_ms: u64,
    /// Why (goes to the history and logs).
    pub reason: String,
    /// The change.
    pub command: Command,
}

/// What applying a request returned.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// The epoch it was applied at.
    pub epoch: Epoch,
    /// `Some` when the request was refused on apply; the state is then unchanged.
    pub error: Option<String>,
}

/// Why a command could not be applied.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ApplyError {
    #[error("unknown host '{0}'")]
    UnknownHost(String),
    #[error("unknown role IP '{0}'")]
    UnknownIp(String),
    #[error("cluster id '{0}' is not 32 lower-case hex digits")]
    BadClusterId(String),
    #[error("a round of decisions cannot contain another round")]
    NestedRound,
    #[error("no failover in progress")]
    NoFailover,
    #[error("a failover of role '{role}' to '{to}' is already in progress")]
    FailoverInProgress { role: String, to: String },
    #[error("failover step {to} cannot follow {from}")]
    StepBackwards {
        from: FailoverStep,
        to: FailoverStep,
    },
}

thread_local! {
    /// Set while [`ClusterState::simulate`] runs, so that trial applications are not logged as committed.
    static SIMULATING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl ClusterState {
    /// Applies a request that is not committed (the leader's decision engine predicting the state its
    /// proposals lead to). Same result as [`ClusterState::apply`], but nothing is logged.
    pub fn simulate(&mut self, epoch: Epoch, req: &Request) -> Response {
        SIMULATING.with(|s| s.set(true));
        let r = self.apply(epoch, req);
        SIMULATING.with(|s| s.set(false));
        r
    }

    /// Applies a committed request at `epoch`. On error the state is unchanged except `last_epoch`
    /// (and, for a [`Command::Round`], the decisions before the refused one).
    pub fn apply(&mut self, epoch: Epoch, req: &Request) -> Response {
        let result = match &req.command {
            Command::Round(decisions) => decisions.iter().try_for_each(|d| {
                self.apply_decision(epoch, d).map_err(|e| {
                    format!(
                        "{e} (decision: {}; later ones of its round not applied)",
                        d.reason
                    )
                })
            }),
            _ => self.apply_decision(epoch, req).map_err(|e| e.to_string()),
        };
        self.last_epoch = epoch;
        Response {
            epoch,
            error: result.err(),
        }
    }

    /// Applies one decision all-or-nothing. Every single command checks before it changes anything,
    /// so only a batch (which may fail half-way) is applied to a copy; a large state is not copied
    /// for every decision.
    fn apply_decision(&mut self, epoch: Epoch, req: &Request) -> Result<(), ApplyError> {
        match &req.command {
            Command::Batch(_) => {
                let mut next = self.clone();
                next.apply_command(epoch, req, &req.command)?;
                *self = next;
                Ok(())
            }
            Command::Round(_) => Err(ApplyError::NestedRound),
            cmd => self.apply_command(epoch, req, cmd),
        }
    }

    fn record(&mut self, d: Decision) {
        if !SIMULATING.with(|s| s.get()) {
            // Every monitor applies it; the monitor that led the term logs it at info (once per cluster).
            tracing::debug!(epoch = %d.epoch, host = ?d.host, role = ?d.role, from = %d.from, to = %d.to, reason = %d.reason, "decision applied");
        }
        self.history.push_back(d);
        while self.history.len() > HISTORY_LIMIT {
            self.history.pop_front();
        }
    }

    /// Queues a hook event. Events are known by (epoch, hook, IP), so when one log entry (a round of
    /// decisions) moves the same IP twice, the two become one event with the net change.
    fn push_hook(&mut self, ev: HookEvent) {
        let same = |e: &HookEvent| e.epoch == ev.epoch && e.hook == ev.hook && e.ip == ev.ip;
        if let Some(pos) = self.pending_hooks.iter().rposition(same) {
            let first = &mut self.pending_hooks[pos];
            first.new_owner = ev.new_owner;
            first.time_ms = ev.time_ms;
            if first.old_owner == first.new_owner {
                self.pending_hooks.remove(pos);
            }
            return;
        }
        self.pending_hooks.push_back(ev);
        while self.pending_hooks.len() > PENDING_HOOKS_LIMIT {
            if let Some(old) = self.pending_hooks.pop_front() {
                if !SIMULATING.with(|s| s.get()) {
                    tracing::warn!(hook = %old.hook, epoch = %old.epoch, "too many pending hooks: dropped the oldest");
                }
            }
        }
    }

    fn host_mut(&mut self, host: &str) -> Result<&mut HostRecord, ApplyError> {
        self.hosts
            .get_mut(host)
            .ok_or_else(|| ApplyError::UnknownHost(host.to_string()))
    }

    fn apply_command(
        &mut self,
        epoch: Epoch,
        req: &Request,
        cmd: &Command,
    ) -> Result<(), ApplyError> {
        let now = req.time_ms;
        let decision =
            |host: Option<&str>, role: Option<&str>, from: String, to: String| Decision {
                time_ms: now,
                epoch,
                host: host.map(str::to_string),
                role: role.map(str::to_string),
                from,
                to,
                reason: req.reason.clone(),
            };
        match cmd {
            Command::Register {
                hosts,
                role_ips,
                cluster_id,
            } => {
                if let Some(id) = cluster_id {
                    if !is_cluster_id(id) {
                        return Err(ApplyError::BadClusterId(id.clone()));
                    }
                    if self.cluster_id.is_empty() {
                        self.cluster_id = id.clone();
                        let d = decision(None, Some("cluster_id"), "-".into(), id.clone());
                        self.record(d);
                    }
                }
                for h in hosts {
                    self.hosts.entry(h.clone()).or_default();
                }
                for (role, ip) in role_ips {
                    self.role_ips
                        .entry(ip.clone())
                        .or_insert_with(|| RoleIpRecord {
                            role: role.clone(),
                            owner: None,
                            epoch,
                        });
                }
            }
            Command::SetHostState { host, state } => {
                let rec = self.host_mut(host)?;
                let from = rec.state;
                if from != *state {
                    if from == HostState::Online {
                        rec.online_drops_ms.push(now);
                        let excess = rec.online_drops_ms.len().saturating_sub(DROPS_LIMIT);
                        rec.online_drops_ms.drain(..excess);
                    }
                    rec.state = *state;
                    rec.since_ms = now;
                    rec.epoch = epoch;
                    let d = decision(Some(host), None, from.to_string(), state.to_string());
                    self.record(d);
                }
            }
            Command::SetRoleOwner { ip, owner } => {
                if let Some(o) = owner {
                    if !self.hosts.contains_key(o) {
                        return Err(ApplyError::UnknownHost(o.clone()));
                    }
                }
                let rec = self
                    .role_ips
                    .get_mut(ip)
                    .ok_or_else(|| ApplyError::UnknownIp(ip.clone()))?;
                if rec.owner != *owner {
                    let from = rec.owner.clone().unwrap_or_else(|| "-".into());
                    let ev = HookEvent {
                        hook: HookKind::PostRoleChange,
                        epoch,
                        time_ms: now,
                        role: rec.role.clone(),
                        ip: ip.clone(),
                        old_owner: rec.owner.clone(),
                        new_owner: owner.clone(),
                    };
                    rec.owner = owner.clone();
                    rec.epoch = epoch;
                    let role = format!("{}({})", rec.role, ip);
                    self.push_hook(ev);
                    let to = owner.clone().unwrap_or_else(|| "-".into());
                    let d = decision(owner.as_deref(), Some(&role), from, to);
                    self.record(d);
                }
            }
            Command::SetActiveMaster { host } => {
                if let Some(h) = host {
                    if !self.hosts.contains_key(h) {
                        return Err(ApplyError::UnknownHost(h.clone()));
                    }
                }
                if self.active_master != *host {
                    let from = self.active_master.clone().unwrap_or_else(|| "-".into());
                    self.active_master = host.clone();
                    let to = host.clone().unwrap_or_else(|| "-".into());
                    let d = decision(host.as_deref(), Some("active_master"), from, to);
                    self.record(d);
                }
            }
            Command::SetMode { mode, cause } => {
                if self.mode != *mode || self.passive_cause != *cause {
                    let from = self.mode.to_string();
                    self.mode = *mode;
                    self.passive_cause = if *mode == Mode::Passive {
                        cause.clone()
                    } else {
                        None
                    };
                    let d = decision(None, None, from, mode.to_string());
                    self.record(d);
                }
                if *mode != Mode::Passive {
                    // A plan is carried out by the decision that leaves passive mode, or not at all:
                    // it must not surface after a later set_passive / set_active.
                    self.planned_writer = None;
                }
            }
            Command::PlanWriter { host } => {
                if let Some(h) = host {
                    if !self.hosts.contains_key(h) {
                        return Err(ApplyError::UnknownHost(h.clone()));
                    }
                }
                if self.planned_writer != *host {
                    let from = self.planned_writer.clone().unwrap_or_else(|| "-".into());
                    self.planned_writer = host.clone();
                    let to = host.clone().unwrap_or_else(|| "-".into());
                    let d = decision(host.as_deref(), Some("planned_writer"), from, to);
                    self.record(d);
                }
            }
            Command::SetAgentUptime { host, uptime_s } => {
                self.host_mut(host)?.agent_uptime_s = *uptime_s;
            }
            Command::SetErrant { host, gtids } => {
                let rec = self.host_mut(host)?;
                if gtids.is_none() {
                    rec.rejoin = None;
                    rec.acked_alone = false;
                }
                if rec.errant_gtids != *gtids {
                    let from = rec.errant_gtids.clone().unwrap_or_else(|| "-".into());
                    rec.errant_gtids = gtids.clone();
                    let to = gtids.clone().unwrap_or_else(|| "-".into());
                    let d = decision(Some(host), Some("errant_gtids"), from, to);
                    self.record(d);
                }
            }
            Command::SetAckedAlone { host } => {
                let rec = self.host_mut(host)?;
                if !rec.acked_alone {
                    rec.acked_alone = true;
                    let d = decision(Some(host), Some("acked_alone"), "-".into(), "yes".into());
                    self.record(d);
                }
            }
            Command::SetRejoin { host, gtids } => {
                let rec = self.host_mut(host)?;
                if rec.rejoin != *gtids {
                    let from = rec.rejoin.clone().unwrap_or_else(|| "-".into());
                    rec.rejoin = gtids.clone();
                    let to = gtids.clone().unwrap_or_else(|| "-".into());
                    let d = decision(Some(host), Some("rejoin"), from, to);
                    self.record(d);
                }
            }
            Command::BeginFailover {
                role,
                from,
                to,
                planned,
            } => {
                if let Some(f) = &self.failover {
                    return Err(ApplyError::FailoverInProgress {
                        role: f.role.clone(),
                        to: f.to.clone(),
                    });
                }
                for h in from.iter().chain(std::iter::once(to)) {
                    if !self.hosts.contains_key(h) {
                        return Err(ApplyError::UnknownHost(h.clone()));
                    }
                }
                self.failover = Some(Failover {
                    role: role.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    step: FailoverStep::DemoteOld,
                    planned: *planned,
                    started_ms: now,
                    step_since_ms: now,
                    started_epoch: epoch,
                    reason: req.reason.clone(),
                    target_gtid: None,
                });
                let d = decision(
                    Some(to),
                    Some(role),
                    from.clone().unwrap_or_else(|| "-".into()),
                    if *planned {
                        format!("{to} (switchover started)")
                    } else {
                        format!("{to} (failover started)")
                    },
                );
                self.record(d);
            }
            Command::FailoverStep { step } => {
                let f = self.failover.as_mut().ok_or(ApplyError::NoFailover)?;
                if *step < f.step {
                    return Err(ApplyError::StepBackwards {
                        from: f.step,
                        to: *step,
                    });
                }
                let from = f.step.to_string();
                if f.step != *step {
                    f.step_since_ms = now;
                }
                f.step = *step;
                let (to_host, role) = (f.to.clone(), f.role.clone());
                let d = decision(Some(&to_host), Some(&role), from, step.to_string());
                self.record(d);
            }
            Command::CatchUpTarget { gtid } => {
                let f = self.failover.as_mut().ok_or(ApplyError::NoFailover)?;
                let from = f.target_gtid.clone().unwrap_or_else(|| "-".into());
                f.target_gtid = Some(gtid.clone());
                let to_host = f.to.clone();
                let d = decision(Some(&to_host), Some("catch_up_target"), from, gtid.clone());
                self.record(d);
            }
            Command::EndFailover { completed } => {
                let f = self.failover.take().ok_or(ApplyError::NoFailover)?;
                let to = if *completed { "completed" } else { "abandoned" };
                // The first writer of a new cluster is no failover (its post_role_change runs).
                if *completed && f.from.is_some() {
                    self.push_hook(HookEvent {
                        hook: HookKind::PostFailover,
                        epoch,
                        time_ms: now,
                        role: f.role.clone(),
                        ip: String::new(),
                        old_owner: f.from.clone(),
                        new_owner: Some(f.to.clone()),
                    });
                }
                let d = decision(
                    Some(&f.to),
                    Some(&f.role),
                    f.step.to_string(),
                    to.to_string(),
                );
                self.record(d);
            }
            Command::ClearFlapping { host } => {
                let rec = self.host_mut(host)?;
                if rec.flapping {
                    let d = decision(Some(host), Some("flapping"), "yes".into(), "no".into());
                    self.record(d);
                }
                let rec = self.host_mut(host)?;
                rec.flapping = false;
                rec.online_drops_ms.clear();
            }
            Command::MarkFlapping { host } => {
                let rec = self.host_mut(host)?;
                if !rec.flapping {
                    rec.flapping = true;
                    let d = decision(Some(host), Some("flapping"), "no".into(), "yes".into());
                    self.record(d);
                }
            }
            Command::Batch(cmds) => {
                for c in cmds {
                    self.apply_command(epoch, req, c)?;
                }
            }
            Command::Round(_) => return Err(ApplyError::NestedRound),
            Command::HookDone {
                epoch: done,
                hook,
                ip,
            } => {
                // Unknown events are ignored: a second leader may report the same run.
                self.pending_hooks
                    .retain(|e| !(e.epoch == *done && e.hook == *hook && e.ip == *ip));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(time_ms: u64, command: Command) -> Request {
        Request {
            time_ms,
            reason: "test".into(),
            command,
        }
    }

    fn ep(index: u64) -> Epoch {
        Epoch { term: 1, index }
    }

    fn registered() -> ClusterState {
        let mut s = ClusterState::default();
        let r = s.apply(
            ep(1),
            &req(
                0,
                Command::Register {
                    hosts: vec!["db1".into(), "db2".into()],
                    role_ips: vec![("writer".into(), "10.0.0.100".into())],
                    cluster_id: None,
                },
            ),
        );
        assert_eq!(r.error, None);
        s
    }

    #[test]
    fn a_planned_writer_is_recorded_and_cleared_when_passive_mode_ends() {
        let mut s = registered();
        let plan = |h: Option<&str>| Command::PlanWriter {
            host: h.map(str::to_string),
        };
        let r = s.apply(ep(2), &req(1, plan(Some("dbx"))));
        assert_eq!(r.error.as_deref(), Some("unknown host 'dbx'"));
        assert_eq!(s.planned_writer, None);
        let r = s.apply(ep(3), &req(2, plan(Some("db2"))));
        assert_eq!(r.error, None);
        assert_eq!(s.planned_writer.as_deref(), Some("db2"));
        assert_eq!(
            s.history.back().map(|d| (d.role.as_deref(), d.to.as_str())),
            Some((Some("planned_writer"), "db2"))
        );
        // Entering passive mode keeps it; leaving passive mode clears it.
        let mode = |mode| Command::SetMode { mode, cause: None };
        s.apply(ep(4), &req(3, mode(Mode::Passive)));
        assert_eq!(s.planned_writer.as_deref(), Some("db2"));
        s.apply(ep(5), &req(4, mode(Mode::Active)));
        assert_eq!(s.planned_writer, None);
    }

    const ID_A: &str = "0123456789abcdef0123456789abcdef";
    const ID_B: &str = "fedcba9876543210fedcba9876543210";

    fn register_id(id: &str) -> Command {
        Command::Register {
            hosts: vec![],
            role_ips: vec![],
            cluster_id: Some(id.into()),
        }
    }

    #[test]
    fn the_first_registered_cluster_id_stays_for_good() {
        let mut s = registered();
        assert_eq!(s.cluster_id, "", "no id before one is registered");
        assert_eq!(s.apply(ep(2), &req(1, register_id(ID_A))).error, None);
        assert_eq!(s.cluster_id, ID_A);
        assert_eq!(
            s.history.back().map(|d| (d.role.as_deref(), d.to.as_str())),
            Some((Some("cluster_id"), ID_A)),
            "the id is in the audit history"
        );
        let history = s.history.len();
        // Another proposer's id (a later leader, or a racing one) is ignored, not an error: the
        // hosts it registers are still registered.
        let r = s.apply(
            ep(3),
            &req(
                2,
                Command::Register {
                    hosts: vec!["db3".into()],
                    role_ips: vec![],
                    cluster_id: Some(ID_B.into()),
                },
            ),
        );
        assert_eq!(r.error, None);
        assert_eq!(s.cluster_id, ID_A, "never replaced");
        assert!(s.hosts.contains_key("db3"));
        assert_eq!(
            s.history.len(),
            history,
            "nothing changed, nothing recorded"
        );
        s.apply(ep(4), &req(3, register_id(ID_A)));
        assert_eq!(s.cluster_id, ID_A);
    }

    #[test]
    fn a_malformed_cluster_id_is_refused_and_changes_nothing() {
        let mut s = registered();
        for bad in ["", "xyz", "0123456789ABCDEF0123456789ABCDEF", &ID_A[1..]] {
            let before = s.clone();
            let r = s.apply(ep(9), &req(1, register_id(bad)));
            assert!(
                r.error.as_deref().is_some_and(|e| e.contains("cluster id")),
                "{bad:?}: {r:?}"
            );
            assert_eq!(s.cluster_id, "", "{bad:?}");
            assert_eq!(s.hosts, before.hosts);
        }
        assert!(is_cluster_id(ID_A));
        assert!(!is_cluster_id("g123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn a_state_from_before_cluster_ids_reads_with_none_and_the_id_round_trips() {
        let mut s = registered();
        let mut old = serde_json::to_value(&s).expect("serialize");
        old.as_object_mut().expect("object").remove("cluster_id");
        let back: ClusterState = serde_json::from_value(old).expect("old state reads");
        assert_eq!(back.cluster_id, "");
        // An old Register entry (no `cluster_id` key) still reads.
        let cmd: Command = serde_json::from_str(r#"{"Register":{"hosts":["db9"],"role_ips":[]}}"#)
            .expect("old Register reads");
        assert_eq!(
            cmd,
            Command::Register {
                hosts: vec!["db9".into()],
                role_ips: vec![],
                cluster_id: None
            }
        );
        s.apply(ep(2), &req(1, register_id(ID_A)));
        let json = serde_json::to_string(&s).expect("serialize");
        let back: ClusterState = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back.cluster_id, ID_A);
    }

    #[test]
    fn register_adds_unknown_hosts_and_unassigned_ips_and_never_removes() {
        let mut s = registered();
        assert_eq!(s.hosts["db1"].state, HostState::Unknown);
        assert_eq!(s.role_ips["10.0.0.100"].owner, None);
        s.apply(
            ep(2),
            &req(
                5,
                Command::SetRoleOwner {
                    ip: "10.0.0.100".into(),
                    owner: Some("db1".into()),
                },
            ),
        );
        s.apply(
            ep(3),
            &req(
                6,
                Command::Register {
                    hosts: vec!["db3".into()],
                    role_ips: vec![],
                    cluster_id: None,
                },
            ),
        );
        assert_eq!(s.hosts.len(), 3);
        assert_eq!(s.role_ips["10.0.0.100"].owner.as_deref(), Some("db1"));
        assert_eq!(s.last_epoch, ep(3));
    }

    #[test]
    fn set_host_state_records_since_epoch_drops_and_history() {
        let mut s = registered();
        s.apply(
            ep(2),
            &req(
                1000,
                Command::SetHostState {
                    host: "db1".into(),
                    state: HostState::Online,
                },
            ),
        );
        let h = &s.hosts["db1"];
        assert_eq!(
            (h.state, h.since_ms, h.epoch),
            (HostState::Online, 1000, ep(2))
        );
        assert!(h.online_drops_ms.is_empty());
        s.apply(
            ep(3),
            &req(
                2000,
                Command::SetHostState {
                    host: "db1".into(),
                    state: HostState::HardOffline,
                },
            ),
        );
        assert_eq!(s.hosts["db1"].online_drops_ms, vec![2000]);
        let last = s.history.back().expect("history entry");
        assert_eq!(
            (last.from.as_str(), last.to.as_str()),
            ("ONLINE", "HARD_OFFLINE")
        );
        // Same state again: no change, no history entry.
        let n = s.history.len();
        s.apply(
            ep(4),
            &req(
                3000,
                Command::SetHostState {
                    host: "db1".into(),
                    state: HostState::HardOffline,
                },
            ),
        );
        assert_eq!(s.history.len(), n);
        assert_eq!(s.hosts["db1"].since_ms, 2000);
    }

    #[test]
    fn role_changes_and_completed_failovers_leave_pending_hooks_until_done() {
        let mut s = registered();
        s.apply(
            ep(2),
            &req(
                5,
                Command::SetRoleOwner {
                    ip: "10.0.0.100".into(),
                    owner: Some("db1".into()),
                },
            ),
        );
        assert_eq!(s.pending_hooks.len(), 1);
        let ev = s.pending_hooks[0].clone();
        assert_eq!(
            (ev.hook, ev.epoch, ev.old_owner, ev.new_owner.as_deref()),
            (HookKind::PostRoleChange, ep(2), None, Some("db1"))
        );
        s.apply(
            ep(3),
            &req(
                6,
                Command::BeginFailover {
                    role: "writer".into(),
                    from: Some("db1".into()),
                    to: "db2".into(),
                    planned: false,
                },
            ),
        );
        s.apply(ep(4), &req(7, Command::EndFailover { completed: true }));
        assert_eq!(s.pending_hooks.len(), 2);
        assert_eq!(s.pending_hooks[1].hook, HookKind::PostFailover);
        assert_eq!(s.pending_hooks[1].old_owner.as_deref(), Some("db1"));
        let done = |e: Epoch, hook, ip: &str| Command::HookDone {
            epoch: e,
            hook,
            ip: ip.into(),
        };
        s.apply(
            ep(5),
            &req(8, done(ep(2), HookKind::PostRoleChange, "10.0.0.100")),
        );
        s.apply(ep(6), &req(9, done(ep(4), HookKind::PostFailover, "")));
        assert!(s.pending_hooks.is_empty());
        // Reported twice (a second leader): no error, nothing changes.
        let r = s.apply(ep(7), &req(9, done(ep(4), HookKind::PostFailover, "")));
        assert_eq!(r.error, None);
        // A state saved before hooks existed still loads.
        let mut v = serde_json::to_value(&s).expect("to json");
        v.as_object_mut().expect("object").remove("pending_hooks");
        let back: ClusterState = serde_json::from_value(v).expect("old state loads");
        assert!(back.pending_hooks.is_empty());
    }

    #[test]
    fn online_drops_are_bounded() {
        let mut s = registered();
        for i in 0..(DROPS_LIMIT as u64 + 10) {
            s.apply(
                ep(2 * i + 2),
                &req(
                    i * 10,
                    Command::SetHostState {
                        host: "db1".into(),
                        state: HostState::Online,
                    },
                ),
            );
            s.apply(
                ep(2 * i + 3),
                &req(
                    i * 10 + 5,
                    Command::SetHostState {
                        host: "db1".into(),
                        state: HostState::HardOffline,
                    },
                ),
            );
        }
        let drops = &s.hosts["db1"].online_drops_ms;
        assert_eq!(drops.len(), DROPS_LIMIT);
        assert_eq!(
            drops.last().copied(),
            Some((DROPS_LIMIT as u64 + 9) * 10 + 5)
        );
    }

    #[test]
    fn unknown_host_or_ip_is_refused_and_state_unchanged() {
        let mut s = registered();
        let before = s.clone();
        let cases = vec![
            Command::SetHostState {
                host: "nope".into(),
                state: HostState::Online,
            },
            Command::SetRoleOwner {
                ip: "10.9.9.9".into(),
                owner: Some("db1".into()),
            },
            Command::SetRoleOwner {
                ip: "10.0.0.100".into(),
                owner: Some("nope".into()),
            },
            Command::SetActiveMaster {
                host: Some("nope".into()),
            },
            Command::SetErrant {
                host: "nope".into(),
                gtids: None,
            },
            Command::MarkFlapping {
                host: "nope".into(),
            },
            Command::FailoverStep {
                step: FailoverStep::CatchUp,
            },
            Command::EndFailover { completed: true },
        ];
        for (i, c) in cases.into_iter().enumerate() {
            let r = s.apply(ep(10 + i as u64), &req(1, c.clone()));
            assert!(r.error.is_some(), "{c:?} should be refused");
            let mut expect = before.clone();
            expect.last_epoch = ep(10 + i as u64);
            assert_eq!(s, expect, "{c:?} changed the state");
        }
    }

    #[test]
    fn batch_is_all_or_nothing() {
        let mut s = registered();
        let r = s.apply(
            ep(2),
            &req(
                1,
                Command::Batch(vec![
                    Command::SetHostState {
                        host: "db1".into(),
                        state: HostState::Online,
                    },
                    Command::SetHostState {
                        host: "nope".into(),
                        state: HostState::Online,
                    },
                ]),
            ),
        );
        assert_eq!(r.error.as_deref(), Some("unknown host 'nope'"));
        assert_eq!(s.hosts["db1"].state, HostState::Unknown);
        let r = s.apply(
            ep(3),
            &req(
                1,
                Command::Batch(vec![
                    Command::SetActiveMaster {
                        host: Some("db1".into()),
                    },
                    Command::SetRoleOwner {
                        ip: "10.0.0.100".into(),
                        owner: Some("db1".into()),
                    },
                ]),
            ),
        );
        assert_eq!(r.error, None);
        assert_eq!(s.active_master.as_deref(), Some("db1"));
        assert_eq!(s.role_ips["10.0.0.100"].epoch, ep(3));
    }

    #[test]
    fn failover_steps_move_forward_only_and_track_step_time() {
        let mut s = registered();
        let begin = Command::BeginFailover {
            role: "writer".into(),
            from: Some("db1".into()),
            to: "db2".into(),
            planned: false,
        };
        assert_eq!(s.apply(ep(2), &req(100, begin.clone())).error, None);
        let f = s.failover.clone().expect("failover");
        assert_eq!(
            (f.step, f.started_epoch, f.started_ms, f.step_since_ms),
            (FailoverStep::DemoteOld, ep(2), 100, 100)
        );
        // A second begin is refused.
        assert!(s.apply(ep(3), &req(110, begin)).error.is_some());
        assert_eq!(
            s.apply(
                ep(4),
                &req(
                    200,
                    Command::FailoverStep {
                        step: FailoverStep::CatchUp
                    }
                )
            )
            .error,
            None
        );
        assert_eq!(
            s.failover.as_ref().map(|f| (f.step, f.step_since_ms)),
            Some((FailoverStep::CatchUp, 200))
        );
        let r = s.apply(
            ep(5),
            &req(
                300,
                Command::FailoverStep {
                    step: FailoverStep::DemoteOld,
                },
            ),
        );
        assert!(r.error.unwrap_or_default().contains("cannot follow"));
        // Re-committing the same step (a resumed leader) is harmless and keeps the step time.
        assert_eq!(
            s.apply(
                ep(6),
                &req(
                    400,
                    Command::FailoverStep {
                        step: FailoverStep::CatchUp
                    }
                )
            )
            .error,
            None
        );
        assert_eq!(s.failover.as_ref().map(|f| f.step_since_ms), Some(200));
        assert_eq!(
            s.apply(ep(7), &req(500, Command::EndFailover { completed: true }))
                .error,
            None
        );
        assert!(s.failover.is_none());
        assert_eq!(s.history.back().map(|d| d.to.as_str()), Some("completed"));
    }

    #[test]
    fn flapping_mark_and_clear() {
        let mut s = registered();
        s.apply(
            ep(2),
            &req(
                1,
                Command::SetHostState {
                    host: "db1".into(),
                    state: HostState::Online,
                },
            ),
        );
        s.apply(
            ep(3),
            &req(
                2,
                Command::SetHostState {
                    host: "db1".into(),
                    state: HostState::HardOffline,
                },
            ),
        );
        s.apply(ep(4), &req(3, Command::MarkFlapping { host: "db1".into() }));
        assert!(s.hosts["db1"].flapping);
        s.apply(
            ep(5),
            &req(4, Command::ClearFlapping { host: "db1".into() }),
        );
        assert!(!s.hosts["db1"].flapping);
        assert!(s.hosts["db1"].online_drops_ms.is_empty());
    }

    #[test]
    fn mode_errant_uptime() {
        let mut s = registered();
        s.apply(
            ep(2),
            &req(
                1,
                Command::SetMode {
                    mode: Mode::Passive,
                    cause: Some("two writers".into()),
                },
            ),
        );
        assert_eq!(
            (s.mode, s.passive_cause.as_deref()),
            (Mode::Passive, Some("two writers"))
        );
        s.apply(
            ep(3),
            &req(
                1,
                Command::SetMode {
                    mode: Mode::Active,
                    cause: Some("ignored".into()),
                },
            ),
        );
        assert_eq!((s.mode, s.passive_cause.as_deref()), (Mode::Active, None));
        s.apply(
            ep(4),
            &req(
                1,
                Command::SetErrant {
                    host: "db1".into(),
                    gtids: Some("0-1-5".into()),
                },
            ),
        );
        assert_eq!(s.hosts["db1"].errant_gtids.as_deref(), Some("0-1-5"));
        s.apply(
            ep(5),
            &req(
                1,
                Command::SetAgentUptime {
                    host: "db1".into(),
                    uptime_s: Some(77),
                },
            ),
        );
        assert_eq!(s.hosts["db1"].agent_uptime_s, Some(77));
    }

    #[test]
    fn state_round_trips_through_serde() {
        let mut s = registered();
        s.apply(
            ep(2),
            &req(
                100,
                Command::BeginFailover {
                    role: "writer".into(),
                    from: None,
                    to: "db2".into(),
                    planned: true,
                },
            ),
        );
        let json = serde_json::to_string(&s).expect("serialize");
        let back: ClusterState = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, s);
    }

    fn decision(reason: &str, command: Command) -> Request {
        Request {
            time_ms: 7,
            reason: reason.into(),
            command,
        }
    }

    fn online(host: &str) -> Command {
        Command::SetHostState {
            host: host.into(),
            state: HostState::Online,
        }
    }

    #[test]
    fn a_round_applies_its_decisions_in_order_each_with_its_own_reason() {
        let mut s = registered();
        let round = Command::Round(vec![
            decision("db1 answers", online("db1")),
            decision("db2 answers", online("db2")),
            decision(
                "db1 takes the writer",
                Command::SetRoleOwner {
                    ip: "10.0.0.100".into(),
                    owner: Some("db1".into()),
                },
            ),
        ]);
        let r = s.apply(ep(2), &req(7, round));
        assert_eq!(r.error, None);
        let reasons: Vec<&str> = s.history.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(
            reasons,
            ["db1 answers", "db2 answers", "db1 takes the writer"]
        );
        assert!(s.history.iter().all(|d| d.epoch == ep(2)));
        assert_eq!(s.hosts["db2"].state, HostState::Online);
        assert_eq!(s.last_epoch, ep(2));
    }

    #[test]
    fn a_refused_decision_stops_its_round_and_keeps_the_ones_before() {
        let mut s = registered();
        let round = Command::Round(vec![
            decision("db1 answers", online("db1")),
            decision("nobody", online("db9")),
            decision("db2 answers", online("db2")),
        ]);
        let r = s.apply(ep(2), &req(7, round));
        let err = r.error.expect("refused");
        assert!(
            err.contains("unknown host 'db9'") && err.contains("nobody"),
            "{err}"
        );
        assert_eq!(s.hosts["db1"].state, HostState::Online);
        assert_eq!(
            s.hosts["db2"].state,
            HostState::Unknown,
            "after the refused one"
        );
        assert_eq!(s.last_epoch, ep(2));
    }

    #[test]
    fn a_failed_batch_inside_a_round_changes_nothing_of_its_own() {
        let mut s = registered();
        let round = Command::Round(vec![decision(
            "half a batch",
            Command::Batch(vec![online("db1"), online("db9")]),
        )]);
        assert!(s.apply(ep(2), &req(7, round)).error.is_some());
        assert_eq!(s.hosts["db1"].state, HostState::Unknown);
        assert!(s.history.is_empty());
    }

    #[test]
    fn rounds_do_not_nest() {
        let mut s = registered();
        let inner = Command::Round(vec![decision("db1 answers", online("db1"))]);
        let r = s.apply(
            ep(2),
            &req(7, Command::Round(vec![decision("outer", inner)])),
        );
        assert_eq!(
            r.error.as_deref(),
            Some("a round of decisions cannot contain another round (decision: outer; later ones of its round not applied)")
        );
        assert_eq!(s.hosts["db1"].state, HostState::Unknown);
    }

    #[test]
    fn one_entry_moving_an_ip_twice_leaves_one_hook_event_with_the_net_change() {
        let mut s = registered();
        let owner = |o: &str| Command::SetRoleOwner {
            ip: "10.0.0.100".into(),
            owner: Some(o.into()),
        };
        let r = s.apply(
            ep(2),
            &req(
                7,
                Command::Round(vec![
                    decision("to db1", owner("db1")),
                    decision("to db2", owner("db2")),
                ]),
            ),
        );
        assert_eq!(r.error, None);
        let events: Vec<(Option<&str>, Option<&str>)> = s
            .pending_hooks
            .iter()
            .map(|e| (e.old_owner.as_deref(), e.new_owner.as_deref()))
            .collect();
        assert_eq!(events, [(None, Some("db2"))]);
        // Moved away and back in one entry: no change, no event.
        let r = s.apply(
            ep(3),
            &req(
                8,
                Command::Round(vec![
                    decision("to db1", owner("db1")),
                    decision("back", owner("db2")),
                ]),
            ),
        );
        assert_eq!(r.error, None);
        assert!(s.pending_hooks.iter().all(|e| e.epoch != ep(3)));
    }
}
