//! `--json`: the replies as plain, stable JSON documents (names in words, not wire numbers).

use serde::{Deserialize, Serialize};

use crate::format::{mode_name, state_name};

/// A command's outcome (`ping`, `set_*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandView {
    /// True when the command succeeded.
    pub ok: bool,
    /// MMM's words ("OK: ..." / "ERROR: ...").
    pub message: String,
}

/// One role IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleView {
    /// Role name.
    pub role: String,
    /// The IP.
    pub ip: String,
}

/// One host of `show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostJson {
    /// Host name.
    pub name: String,
    /// Host address.
    pub ip: String,
    /// `master` or `slave`.
    pub mode: String,
    /// MMM state name.
    pub state: String,
    /// Role IPs held, sorted by role then IP.
    pub roles: Vec<RoleView>,
    /// Whether the host's agent answers.
    pub agent_reachable: bool,
    /// Errant GTIDs, when the host has transactions no other host has.
    pub errant_gtids: String,
    /// Replication facts from the host's agent (`show --extended` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<TopologyJson>,
}

/// What a host's agent last said of its server (`show --extended`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyJson {
    /// The monitor's last poll of the agent was answered.
    pub agent_answered: bool,
    /// Why the last poll failed ("" when answered).
    pub poll_error: String,
    /// Age of these facts in milliseconds.
    pub age_ms: u64,
    /// mysqld answered the agent.
    pub mysql_reachable: bool,
    /// Why it did not ("" when it did).
    pub mysql_error: String,
    /// `@@read_only`.
    pub read_only: bool,
    /// Replication source `host:port` ("" when not a replica).
    pub replicates_from: String,
    /// The configured host that source is ("" when none).
    pub replicates_from_host: String,
    /// Replication IO thread running.
    pub io_running: bool,
    /// Replication SQL thread running.
    pub sql_running: bool,
    /// Seconds_Behind_Master (`None` when NULL or not a replica).
    pub seconds_behind: Option<i64>,
    /// Last IO thread error.
    pub last_io_error: String,
    /// Last SQL thread error.
    pub last_sql_error: String,
    /// `gtid_binlog_pos`.
    pub gtid_binlog_pos: String,
    /// `gtid_slave_pos`.
    pub gtid_slave_pos: String,
    /// `gtid_current_pos`.
    pub gtid_current_pos: String,
    /// Transactions the writer has that this host lacks (`None` when unknown).
    pub transactions_behind_writer: Option<i64>,
    /// Semi-sync on the source side ("ON"/"OFF"/"").
    pub semi_sync_source: String,
    /// Semi-sync on the replica side ("ON"/"OFF"/"").
    pub semi_sync_replica: String,
    /// Role VIPs present on the host's interface.
    pub vips_present: Vec<String>,
    /// mysqld's version.
    pub server_version: String,
    /// Server settings not as required or advised for the writer role.
    pub setting_problems: Vec<String>,
}

impl From<&mmm_proto::HostTopology> for TopologyJson {
    fn from(t: &mmm_proto::HostTopology) -> Self {
        TopologyJson {
            agent_answered: t.agent_answered,
            poll_error: t.poll_error.clone(),
            age_ms: t.age_millis,
            mysql_reachable: t.mysql_reachable,
            mysql_error: t.mysql_error.clone(),
            read_only: t.read_only,
            replicates_from: t.replicates_from.clone(),
            replicates_from_host: t.replicates_from_host.clone(),
            io_running: t.io_running,
            sql_running: t.sql_running,
            seconds_behind: (t.seconds_behind >= 0).then_some(t.seconds_behind),
            last_io_error: t.last_io_error.clone(),
            last_sql_error: t.last_sql_error.clone(),
            gtid_binlog_pos: t.gtid_binlog_pos.clone(),
            gtid_slave_pos: t.gtid_slave_pos.clone(),
            gtid_current_pos: t.gtid_current_pos.clone(),
            transactions_behind_writer: (t.transactions_behind_writer >= 0)
                .then_some(t.transactions_behind_writer),
            semi_sync_source: t.semi_sync_source.clone(),
            semi_sync_replica: t.semi_sync_replica.clone(),
            vips_present: t.vips_present.clone(),
            server_version: t.server_version.clone(),
            setting_problems: t.setting_problems.clone(),
        }
    }
}

/// How fresh an answer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StalenessJson {
    /// The monitor that answered.
    pub monitor: String,
    /// It is the leader with a quorum, or a follower in contact with the leader.
    pub leader_contact: bool,
    /// The leader it knows ("" when none).
    pub leader: String,
    /// Milliseconds since it last knew its state current.
    pub age_ms: u64,
    /// Why the answer may be old ("" when in contact).
    pub reason: String,
}

impl From<&mmm_proto::Staleness> for StalenessJson {
    fn from(s: &mmm_proto::Staleness) -> Self {
        StalenessJson {
            monitor: s.monitor.clone(),
            leader_contact: s.leader_contact,
            leader: s.leader.clone(),
            age_ms: s.age_millis,
            reason: s.reason.clone(),
        }
    }
}

/// A role not on its preferred host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreferenceView {
    /// Role name.
    pub role: String,
    /// The configured `prefer` host.
    pub preferred_host: String,
    /// Where it is now.
    pub current_host: String,
}

/// `show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowView {
    /// MMM mode name.
    pub mode: String,
    /// Why the monitor is passive (empty otherwise).
    pub passive_cause: String,
    /// Current writer host.
    pub active_master: String,
    /// Hosts sorted by name.
    pub hosts: Vec<HostJson>,
    /// Roles away from their preferred host.
    pub preferences: Vec<PreferenceView>,
    /// How fresh the answer is (absent from monitors that do not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staleness: Option<StalenessJson>,
    /// Milliseconds left on the writer's lease as granted by the answering monitor (`show --extended`
    /// on the leader only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_lease_left_ms: Option<i64>,
}

/// One check of `checks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckJson {
    /// Host name.
    pub host: String,
    /// Check name.
    pub check: String,
    /// Counted status.
    pub ok: bool,
    /// Unix seconds of the last change of `ok`.
    pub last_change: i64,
    /// Message of the latest run.
    pub message: String,
}

/// `checks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksView {
    /// Checks in the monitor's order (host, then MMM's check order).
    pub checks: Vec<CheckJson>,
    /// How fresh the answer is (absent from monitors that do not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staleness: Option<StalenessJson>,
}

/// `mode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeView {
    /// MMM mode name.
    pub mode: String,
    /// Why the monitor is passive (empty otherwise).
    pub passive_cause: String,
    /// How fresh the answer is (absent from monitors that do not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staleness: Option<StalenessJson>,
}

/// One step of `move_role`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    /// What happened.
    pub step: String,
    /// Milliseconds since the move began.
    pub elapsed_ms: u64,
    /// Epoch of the decision, `term.index`, when known.
    pub epoch: Option<String>,
}

/// `move_role`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveRoleView {
    /// Steps as they were reported.
    pub steps: Vec<StepView>,
    /// True when the move succeeded.
    pub ok: bool,
    /// MMM's words.
    pub message: String,
    /// How long no host accepted writes (0 when unknown).
    pub writes_blocked_ms: u64,
}

/// One monitor of `cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberJson {
    /// Raft node id.
    pub id: u64,
    /// Monitor name.
    pub name: String,
    /// gRPC address.
    pub addr: String,
    /// Voter (else learner).
    pub voter: bool,
    /// Whether the leader reaches it.
    pub reachable: bool,
    /// Highest log index known replicated to it.
    pub matched_index: u64,
    /// Entries behind the leader.
    pub lag: u64,
}

/// `cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The node that answered.
    pub node_name: String,
    /// Its id.
    pub node_id: u64,
    /// Leader name (empty when none).
    pub leader_name: String,
    /// Leader id.
    pub leader_id: u64,
    /// Raft term.
    pub term: u64,
    /// Commit index.
    pub commit_index: u64,
    /// Applied index.
    pub applied_index: u64,
    /// Whether a quorum is reachable.
    pub has_quorum: bool,
    /// Members.
    pub members: Vec<MemberJson>,
    /// The monitor cluster's id (empty until made), which the agents follow.
    #[serde(default)]
    pub cluster_id: String,
}

/// One decision of `history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionJson {
    /// Unix milliseconds.
    pub time_millis: i64,
    /// `term.index`, when known.
    pub epoch: Option<String>,
    /// Host concerned.
    pub host: String,
    /// Role concerned.
    pub role: String,
    /// Previous value.
    pub from: String,
    /// New value.
    pub to: String,
    /// Why.
    pub reason: String,
    /// One-line summary.
    pub summary: String,
}

/// `history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryView {
    /// Decisions, oldest first.
    pub decisions: Vec<DecisionJson>,
    /// How fresh the answer is (absent from monitors that do not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staleness: Option<StalenessJson>,
}

fn epoch(e: Option<&mmm_proto::Epoch>) -> Option<String> {
    e.map(|e| format!("{}.{}", e.term, e.index))
}

impl From<&mmm_proto::CommandReply> for CommandView {
    fn from(r: &mmm_proto::CommandReply) -> Self {
        CommandView {
            ok: r.ok,
            message: r.message.clone(),
        }
    }
}

impl From<&mmm_proto::ShowReply> for ShowView {
    fn from(r: &mmm_proto::ShowReply) -> Self {
        let mut hosts: Vec<HostJson> = r
            .hosts
            .iter()
            .map(|h| {
                let mut roles: Vec<&mmm_proto::RoleIp> = h.roles.iter().collect();
                roles.sort_by(|a, b| {
                    (
                        a.role.as_str(),
                        a.ip.parse::<std::net::IpAddr>().ok(),
                        a.ip.as_str(),
                    )
                        .cmp(&(
                            b.role.as_str(),
                            b.ip.parse().ok(),
                            b.ip.as_str(),
                        ))
                });
                HostJson {
                    name: h.name.clone(),
                    ip: h.ip.clone(),
                    mode: h.mode.clone(),
                    state: state_name(h.state).into(),
                    roles: roles
                        .iter()
                        .map(|r| RoleView {
                            role: r.role.clone(),
                            ip: r.ip.clone(),
                        })
                        .collect(),
                    agent_reachable: h.agent_reachable,
                    errant_gtids: h.errant_gtids.clone(),
                    topology: h.topology.as_ref().map(TopologyJson::from),
                }
            })
            .collect();
        hosts.sort_by(|a, b| a.name.cmp(&b.name));
        ShowView {
            mode: mode_name(r.mode).into(),
            passive_cause: r.passive_cause.clone(),
            active_master: r.active_master.clone(),
            hosts,
            preferences: r
                .preferences
                .iter()
                .map(|p| PreferenceView {
                    role: p.role.clone(),
                    preferred_host: p.preferred_host.clone(),
                    current_host: p.current_host.clone(),
                })
                .collect(),
            staleness: r.staleness.as_ref().map(StalenessJson::from),
            writer_lease_left_ms: (r.writer_lease_left_millis >= 0
                && r.hosts.iter().any(|h| h.topology.is_some()))
            .then_some(r.writer_lease_left_millis),
        }
    }
}

impl From<&mmm_proto::ChecksReply> for ChecksView {
    fn from(r: &mmm_proto::ChecksReply) -> Self {
        ChecksView {
            checks: r
                .checks
                .iter()
                .map(|c| CheckJson {
                    host: c.host.clone(),
                    check: c.check.clone(),
                    ok: c.ok,
                    last_change: c.last_change,
                    message: c.message.clone(),
                })
                .collect(),
            staleness: r.staleness.as_ref().map(StalenessJson::from),
        }
    }
}

impl From<&mmm_proto::ModeReply> for ModeView {
    fn from(r: &mmm_proto::ModeReply) -> Self {
        ModeView {
            mode: mode_name(r.mode).into(),
            passive_cause: r.passive_cause.clone(),
            staleness: r.staleness.as_ref().map(StalenessJson::from),
        }
    }
}

impl MoveRoleView {
    /// The view of a whole `move_role` stream.
    pub fn from_progress(msgs: &[mmm_proto::MoveRoleProgress]) -> Self {
        let last = msgs.iter().rev().find(|m| m.done);
        MoveRoleView {
            steps: msgs
                .iter()
                .filter(|m| !m.step.is_empty())
                .map(|m| StepView {
                    step: m.step.clone(),
                    elapsed_ms: m.elapsed_millis,
                    epoch: epoch(m.epoch.as_ref()),
                })
                .collect(),
            ok: last.is_some_and(|m| m.ok),
            message: last.map(|m| m.message.clone()).unwrap_or_default(),
            writes_blocked_ms: last.map_or(0, |m| m.writes_blocked_millis),
        }
    }
}

impl From<&mmm_proto::ClusterStatusReply> for ClusterView {
    fn from(r: &mmm_proto::ClusterStatusReply) -> Self {
        ClusterView {
            node_name: r.node_name.clone(),
            node_id: r.node_id,
            leader_name: r.leader_name.clone(),
            leader_id: r.leader_id,
            term: r.term,
            commit_index: r.commit_index,
            applied_index: r.applied_index,
            has_quorum: r.has_quorum,
            cluster_id: r.cluster_id.clone(),
            members: r
                .members
                .iter()
                .map(|m| MemberJson {
                    id: m.id,
                    name: m.name.clone(),
                    addr: m.addr.clone(),
                    voter: m.voter,
                    reachable: m.reachable,
                    matched_index: m.matched_index,
                    lag: m.lag,
                })
                .collect(),
        }
    }
}

impl From<&mmm_proto::HistoryReply> for HistoryView {
    fn from(r: &mmm_proto::HistoryReply) -> Self {
        HistoryView {
            decisions: r
                .decisions
                .iter()
                .map(|d| DecisionJson {
                    time_millis: d.time_millis,
                    epoch: epoch(d.epoch.as_ref()),
                    host: d.host.clone(),
                    role: d.role.clone(),
                    from: d.from.clone(),
                    to: d.to.clone(),
                    reason: d.reason.clone(),
                    summary: d.summary.clone(),
                })
                .collect(),
            staleness: r.staleness.as_ref().map(StalenessJson::from),
        }
    }
}
