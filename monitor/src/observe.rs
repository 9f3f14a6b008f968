//! Keeps the gauges of [`crate::metrics::MonitorMetrics`] in step with the Raft metrics, the applied
//! cluster state, the checks and the agent links (every 500 ms and on every applied entry), derives
//! the failover metrics from the replicated decision history, and writes the audit log: every
//! committed decision is logged once per cluster, by the monitor that led the term it was made in.

use std::sync::Arc;
use std::time::Duration;

use mmm_consensus::{ClusterState, Decision, Epoch, HostState};
use tokio::sync::watch;

use crate::context::MonitorContext;
use crate::metrics::{
    CheckLabel, HostLabel, HostStateLabel, KindLabel, MemberLabel, MonitorMetrics, RoleLabel,
};

const ALL_STATES: [HostState; 7] = [
    HostState::Unknown,
    HostState::Online,
    HostState::AdminOffline,
    HostState::HardOffline,
    HostState::AwaitingRecovery,
    HostState::ReplicationDelay,
    HostState::ReplicationFail,
];

/// `to` of the history entry that starts an unplanned writer move ("db2 (failover started)").
const FAILOVER_STARTED: &str = " (failover started)";
/// `to` of the history entry that starts a planned writer move ("db2 (switchover started)").
const SWITCHOVER_STARTED: &str = " (switchover started)";

/// MMM's log line for a committed host state change, `FATAL State of host 'db1' changed from
/// ONLINE to HARD_OFFLINE`, word for word as MMM's monitor wrote it (operators tail and alert on
/// it); `None` for other decisions. It is logged at ERROR level (MMM's FATAL is a word of the
/// message, so patterns written for MMM's log match), by the monitor that led the term.
pub fn mmm_state_line(d: &Decision) -> Option<String> {
    let is_state = |s: &str| ALL_STATES.iter().any(|st| st.as_mmm_str() == s);
    match (&d.host, &d.role) {
        (Some(host), None) if is_state(&d.from) && is_state(&d.to) => Some(format!(
            "FATAL State of host '{host}' changed from {} to {}",
            d.from, d.to
        )),
        _ => None,
    }
}

/// What [`run`] remembers between refreshes.
#[derive(Debug, Default)]
pub struct Observer {
    /// Epoch of the newest history entry already counted into the failover metrics.
    counted: Option<Epoch>,
    /// Epoch of the newest history entry already considered for the audit log.
    logged: Option<Epoch>,
    /// The latest term in which this node was seen leading: it logs the decisions of that term.
    led_term: Option<u64>,
}

/// A completed writer move found in the history.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletedMove {
    /// "planned" or "unplanned".
    pub kind: &'static str,
    /// From the start to the completion decision, when the start is still in the history.
    pub duration: Option<Duration>,
    /// When it completed (ms since the Unix epoch, the leader's clock).
    pub completed_ms: u64,
}

/// The writer moves from one host to another completed by history entries newer than `after`
/// (assigning a writer to a cluster that had none is not a move).
pub fn completed_moves(history: &[&Decision], after: Option<Epoch>) -> Vec<CompletedMove> {
    let mut out = Vec::new();
    for (i, d) in history.iter().enumerate() {
        if after.is_some_and(|a| d.epoch <= a) || d.to != "completed" {
            continue;
        }
        let start = history[..i].iter().rev().find(|s| {
            s.role == d.role
                && (s.to.ends_with(FAILOVER_STARTED) || s.to.ends_with(SWITCHOVER_STARTED))
        });
        if start.is_some_and(|s| s.from == "-") {
            continue;
        }
        out.push(CompletedMove {
            kind: match start {
                Some(s) if s.to.ends_with(SWITCHOVER_STARTED) => "planned",
                _ => "unplanned",
            },
            duration: start.map(|s| Duration::from_millis(d.time_ms.saturating_sub(s.time_ms))),
            completed_ms: d.time_ms,
        });
    }
    out
}

impl Observer {
    /// Counts the writer moves completed since the last call into the failover metrics.
    fn count_failovers(&mut self, m: &MonitorMetrics, state: &ClusterState) {
        let history: Vec<&Decision> = state.history.iter().collect();
        for mv in completed_moves(&history, self.counted) {
            m.failovers_total
                .get_or_create(&KindLabel {
                    kind: mv.kind.to_string(),
                })
                .inc();
            if let Some(d) = mv.duration {
                m.failover_duration_seconds.observe(d.as_secs_f64());
            }
            m.failover_last_timestamp_seconds
                .set((mv.completed_ms / 1000) as i64);
        }
        if let Some(last) = state.history.back() {
            self.counted = Some(last.epoch);
        }
    }

    /// Logs, once per cluster, the decisions committed in the term this node led; a host state
    /// change is also logged with MMM's words (see [`mmm_state_line`]). Returns those MMM lines.
    fn log_decisions(&mut self, name: &str, state: &ClusterState) -> Vec<String> {
        let mut mmm_lines = Vec::new();
        for d in &state.history {
            if self.logged.is_some_and(|l| d.epoch <= l) {
                continue;
            }
            if Some(d.epoch.term) == self.led_term {
                tracing::info!(monitor = %name, epoch = %d.epoch, host = %d.host.as_deref().unwrap_or("-"),
                    role = %d.role.as_deref().unwrap_or("-"), from = %d.from, to = %d.to, reason = %d.reason,
                    "decision committed");
                if let Some(line) = mmm_state_line(d) {
                    tracing::error!(monitor = %name, epoch = %d.epoch, reason = %d.reason, "{line}");
                    mmm_lines.push(line);
                }
            }
        }
        if let Some(last) = state.history.back() {
            self.logged = Some(last.epoch);
        }
        mmm_lines
    }

    /// Refreshes every gauge once, counts new failovers and logs new decisions.
    pub fn refresh(&mut self, ctx: &MonitorContext) {
        let m = &ctx.metrics;
        let view = ctx.consensus.status();
        let is_leader = ctx.consensus.is_leader();
        m.raft_is_leader.set(i64::from(is_leader));
        m.raft_term.set(view.term as i64);
        m.raft_applied_index
            .set(view.applied_index.unwrap_or(0) as i64);
        m.raft_commit_index
            .set(view.commit_index.unwrap_or(0) as i64);
        m.raft_last_log_index
            .set(view.last_log_index.unwrap_or(0) as i64);
        m.raft_follower_lag_entries.clear();
        if is_leader {
            self.led_term = Some(view.term);
            for member in &view.members {
                if let Some(lag) = member.lag {
                    m.raft_follower_lag_entries
                        .get_or_create(&MemberLabel {
                            member: member.name.clone(),
                        })
                        .set(lag as i64);
                }
            }
        } else {
            m.lease_forgotten();
        }
        let state = ctx.consensus.state();
        let _ = self.log_decisions(&ctx.name, &state);
        self.count_failovers(m, &state);
        for (host, rec) in &state.hosts {
            for s in ALL_STATES {
                m.host_state
                    .get_or_create(&HostStateLabel {
                        host: host.clone(),
                        state: s.to_string(),
                    })
                    .set(i64::from(rec.state == s));
            }
        }
        m.role_owner.clear();
        for (ip, r) in &state.role_ips {
            m.role_owner
                .get_or_create(&RoleLabel {
                    role: r.role.clone(),
                    ip: ip.clone(),
                    host: r.owner.clone().unwrap_or_default(),
                })
                .set(1);
        }
        for c in ctx.checker.snapshot() {
            m.check_ok
                .get_or_create(&CheckLabel {
                    host: c.host.clone(),
                    check: c.check.clone(),
                })
                .set(i64::from(c.counted_ok));
        }
        for host in ctx.config.hosts.keys() {
            m.agent_reachable
                .get_or_create(&HostLabel { host: host.clone() })
                .set(i64::from(ctx.agents.health(host).reachable));
        }
    }
}

/// Runs until shutdown.
pub async fn run(ctx: Arc<MonitorContext>, mut stop: watch::Receiver<bool>) {
    let metrics = Arc::clone(&ctx.metrics);
    ctx.checker.on_duration(Box::new(move |host, check, d| {
        metrics.check_took(host, check, d)
    }));
    let mut applied = ctx.consensus.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut was_leader = None;
    let mut observer = Observer::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = applied.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
        let leader = ctx.consensus.leader().map(|(id, _)| id);
        if was_leader.is_some() && was_leader != Some(leader) {
            ctx.metrics.raft_leader_changes_total.inc();
        }
        was_leader = Some(leader);
        observer.refresh(&ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(index: u64, time_ms: u64, from: &str, to: &str) -> Decision {
        Decision {
            time_ms,
            epoch: Epoch { term: 1, index },
            host: Some("db2".into()),
            role: Some("writer".into()),
            from: from.into(),
            to: to.into(),
            reason: "test".into(),
        }
    }

    #[test]
    fn host_state_changes_are_logged_with_mmms_words_once_by_the_term_leader() {
        use mmm_consensus::{Command, Request};
        let mut s = ClusterState::default();
        let apply = |s: &mut ClusterState, index, command| {
            let r = s.apply(
                Epoch { term: 2, index },
                &Request {
                    time_ms: 1000,
                    reason: "test".into(),
                    command,
                },
            );
            assert_eq!(r.error, None);
        };
        apply(
            &mut s,
            1,
            Command::Register {
                hosts: vec!["db1".into()],
                role_ips: vec![("writer".into(), "10.0.0.100".into())],
                cluster_id: None,
            },
        );
        let to = |state| Command::SetHostState {
            host: "db1".into(),
            state,
        };
        apply(&mut s, 2, to(HostState::Online));
        apply(&mut s, 3, to(HostState::HardOffline));
        apply(
            &mut s,
            4,
            Command::SetRoleOwner {
                ip: "10.0.0.100".into(),
                owner: Some("db1".into()),
            },
        );
        // A node that did not lead term 2 logs nothing (the leader does).
        let mut follower = Observer::default();
        assert!(follower.log_decisions("mon2", &s).is_empty());
        let mut leader = Observer {
            led_term: Some(2),
            ..Observer::default()
        };
        assert_eq!(
            leader.log_decisions("mon1", &s),
            vec![
                "FATAL State of host 'db1' changed from UNKNOWN to ONLINE".to_string(),
                "FATAL State of host 'db1' changed from ONLINE to HARD_OFFLINE".to_string(),
            ]
        );
        // Logged once.
        assert!(leader.log_decisions("mon1", &s).is_empty());
    }

    #[test]
    fn completed_moves_are_counted_once_by_kind_with_duration() {
        let h = [
            // Assigning the first writer is not a move.
            d(1, 0, "-", "db1 (failover started)"),
            d(2, 10, "demote-old", "completed"),
            d(3, 1000, "db1", "db2 (failover started)"),
            d(4, 1200, "demote-old", "promote"),
            d(5, 3500, "promote", "completed"),
            d(6, 5000, "db2", "db1 (switchover started)"),
            d(7, 5400, "promote", "abandoned"),
            d(8, 6000, "db2", "db1 (switchover started)"),
            d(9, 6250, "promote", "completed"),
        ];
        let refs: Vec<&Decision> = h.iter().collect();
        let all = completed_moves(&refs, None);
        assert_eq!(
            all,
            vec![
                CompletedMove {
                    kind: "unplanned",
                    duration: Some(Duration::from_millis(2500)),
                    completed_ms: 3500
                },
                CompletedMove {
                    kind: "planned",
                    duration: Some(Duration::from_millis(250)),
                    completed_ms: 6250
                },
            ]
        );
        let newer = completed_moves(&refs, Some(Epoch { term: 1, index: 5 }));
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].kind, "planned");
        assert!(completed_moves(&refs, Some(Epoch { term: 1, index: 9 })).is_empty());
    }
}
