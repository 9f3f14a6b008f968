//! What one round of decisions asks the leader to do: commit proposals (in order), then carry out actions.

use mmm_consensus::{Epoch, HostState, Request};

/// Severity of a [`Action::Log`] line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Normal progress.
    Info,
    /// Something an operator should look at.
    Warn,
    /// Something is stuck or unsafe and needs an operator.
    Error,
}

/// Something the leader does after committing the round's proposals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Push the committed status of `host` (see [`super::agent_status_for`], computed on the state after
    /// this round's commits) to its agent, with the writer lease when it is the writer.
    PushStatus {
        /// The host whose agent gets the push.
        host: String,
    },
    /// Run `kill_host_bin` against the old writer of the failover started at `epoch` (it is unreachable and
    /// its lease cannot be trusted to have run out); report success as `AgentFacts::kill_host_ok_at`.
    RunKillHost {
        /// The host to kill.
        host: String,
        /// The failover's start epoch.
        epoch: Epoch,
    },
    /// Ask the candidate to apply everything it received from the old writer (`MASTER_GTID_WAIT` with a
    /// timeout) and report `AgentFacts::caught_up_for = Some(epoch)` when done.
    WaitCatchUp {
        /// The candidate.
        host: String,
        /// The failover's start epoch.
        epoch: Epoch,
    },
    /// Tell a replica to replicate from `master` (GTID auto-positioning); report
    /// `AgentFacts::repointed_to = Some(master)` when done.
    Repoint {
        /// The replica.
        host: String,
        /// The new master.
        master: String,
        /// The failover's start epoch (fences the request).
        epoch: Epoch,
    },
    /// Log a line (with `tracing`); nothing else to do.
    Log {
        /// Severity.
        level: LogLevel,
        /// The host concerned, if one.
        host: Option<String>,
        /// What to say.
        message: String,
    },
}

/// The result of one round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Requests to commit, in order; each is one decision. Stop at the first one refused on apply (the
    /// later ones were computed assuming it succeeded); the next round recomputes.
    pub proposals: Vec<Request>,
    /// Things to do after committing.
    pub actions: Vec<Action>,
}

/// What an agent is told: the committed status of its host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredStatus {
    /// The host's MMM state.
    pub state: HostState,
    /// (role, ip) pairs the host holds, sorted by role then IP.
    pub roles: Vec<(String, String)>,
    /// The master replicas should follow (the failover's target once re-pointing started).
    pub active_master: Option<String>,
    /// The host holds the writer role: allow writes, keep the writer VIP, renew its lease.
    pub writer: bool,
    /// The host is handing the writer role over in a planned switchover: it holds writes and keeps
    /// the writer VIP until the new writer is open.
    pub hold_writes: bool,
    /// The committed cluster id ("" until one is committed): agents accept statuses only from the
    /// cluster they adopted.
    pub cluster_id: String,
    /// The failover's candidate during catch-up: the failover's start epoch and the position to apply
    /// (the old writer's last position, "" for what it received).
    pub catch_up: Option<(mmm_consensus::Epoch, String)>,
    /// The hosts nobody may replicate from now (not ONLINE, or with errant transactions). A returning
    /// old master is ONLINE only once checked, so its unacknowledged tail never flows into the writer or
    /// a future candidate.
    pub isolate_from: Vec<String>,
    /// The hosts of `isolate_from` that are HARD_OFFLINE (unreachable by a majority of monitors, or
    /// their mysqld down): an agent stopping replication from one gives it less time to answer.
    pub hard_offline: Vec<String>,
    /// The errant transactions this host's agent must save, undo, and rejoin from (the automatic
    /// rejoin, [`super::errant`]); `None` when none is asked.
    pub rejoin: Option<String>,
}
