//! Keeps the gauges of [`crate::metrics::MonitorMetrics`] in step with the Raft metrics, the applied
//! cluster state, the checks and the agent links (every 500 ms and on every applied entry).

use std::sync::Arc;
use std::time::Duration;

use mmm_consensus::HostState;
use tokio::sync::watch;

use crate::context::MonitorContext;
use crate::metrics::{CheckLabel, HostLabel, HostStateLabel, MemberLabel, RoleLabel};

const ALL_STATES: [HostState; 7] = [
    HostState::Unknown,
    HostState::Online,
    HostState::AdminOffline,
    HostState::HardOffline,
    HostState::AwaitingRecovery,
    HostState::ReplicationDelay,
    HostState::ReplicationFail,
];

/// Refreshes every gauge once.
pub fn refresh(ctx: &MonitorContext) {
    let m = &ctx.metrics;
    let view = ctx.consensus.status();
    m.raft_is_leader.set(i64::from(ctx.consensus.is_leader()));
    m.raft_term.set(view.term as i64);
    m.raft_applied_index
        .set(view.applied_index.unwrap_or(0) as i64);
    m.raft_last_log_index
        .set(view.last_log_index.unwrap_or(0) as i64);
    m.raft_follower_lag_entries.clear();
    if ctx.consensus.is_leader() {
        for member in &view.members {
            if let Some(lag) = member.lag {
                m.raft_follower_lag_entries
                    .get_or_create(&MemberLabel {
                        member: member.name.clone(),
                    })
                    .set(lag as i64);
            }
        }
    }
    let state = ctx.consensus.state();
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

/// Runs until shutdown.
pub async fn run(ctx: Arc<MonitorContext>, mut stop: watch::Receiver<bool>) {
    let mut applied = ctx.consensus.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut was_leader = None;
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
        refresh(&ctx);
    }
}
