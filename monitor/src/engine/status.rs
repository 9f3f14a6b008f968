//! What each agent is told: the committed status of its host.

use std::net::Ipv4Addr;

use mmm_consensus::{ClusterState, FailoverStep, HostState, Mode};

use super::config::EngineConfig;
use super::output::DesiredStatus;

/// The status to push to `host`'s agent, from the committed state.
///
/// `active_master` is the failover's target once re-pointing has started, so that a regular push never
/// sends a re-pointed replica back to the old writer. `writer` is true only for the owner of a writer-role
/// IP, which during a failover is nobody until the target is promoted. The old writer of a planned
/// switchover holds client writes until the failover ends. Every host is told which hosts it must not
/// replicate from (`isolate_from`: errant, or neither ONLINE nor UNKNOWN). A host still UNKNOWN has never
/// been judged: at a cluster's first start every host is, and isolating them would stop every replica's
/// IO thread until its source's first judgement (an errant one is still found by the check that gates
/// ONLINE, and isolated from then on).
pub fn agent_status_for(state: &ClusterState, host: &str, cfg: &EngineConfig) -> DesiredStatus {
    let st = state
        .hosts
        .get(host)
        .map(|r| r.state)
        .unwrap_or(HostState::Unknown);
    let mut roles: Vec<(String, String)> = state
        .role_ips
        .iter()
        .filter(|(_, r)| r.owner.as_deref() == Some(host))
        .map(|(ip, r)| (r.role.clone(), ip.clone()))
        .collect();
    // By role name, then by IP in numeric order (MMM's `show` order).
    roles.sort_by_key(|(role, ip)| (role.clone(), ip.parse::<Ipv4Addr>().ok(), ip.clone()));
    let active_master = match &state.failover {
        Some(f) if f.step >= FailoverStep::Repoint => Some(f.to.clone()),
        _ => state.active_master.clone(),
    };
    let writer = roles.iter().any(|(role, _)| cfg.is_writer_role(role));
    let catch_up = state
        .failover
        .as_ref()
        .filter(|f| f.to == host && f.step == FailoverStep::CatchUp && f.from.is_some())
        .map(|f| (f.started_epoch, f.target_gtid.clone().unwrap_or_default()));
    let hold_writes = state
        .failover
        .as_ref()
        .is_some_and(|f| f.planned && f.from.as_deref() == Some(host));
    let isolate_from = state
        .hosts
        .iter()
        .filter(|(h, r)| {
            *h != host
                && (!matches!(r.state, HostState::Online | HostState::Unknown)
                    || r.errant_gtids.is_some())
        })
        .map(|(h, _)| h.clone())
        .collect();
    let hard_offline = state
        .hosts
        .iter()
        .filter(|(h, r)| *h != host && r.state == HostState::HardOffline)
        .map(|(h, _)| h.clone())
        .collect();
    let rejoin = state.hosts.get(host).and_then(|r| r.rejoin.clone());
    DesiredStatus {
        rejoin,
        isolate_from,
        hard_offline,
        state: st,
        roles,
        active_master,
        writer,
        hold_writes,
        catch_up,
        cluster_id: state.cluster_id.clone(),
    }
}

/// Whether `status` (the committed status of a host, [`agent_status_for`]) may be sent to its agent
/// at all. The one rule for the leader's round and its lease renewal task alike: in passive mode
/// nothing is sent, except lease renewals of the committed writer whose agent still acts as the writer
/// (`acts_as_writer`: it said it holds the writer role with a valid lease); without them writes would
/// stop when its lease runs out. A committed writer that is not writable (a lease that already ran
/// out) is not made writable again before the cluster leaves passive mode.
pub fn push_allowed(state: &ClusterState, status: &DesiredStatus, acts_as_writer: bool) -> bool {
    state.mode != Mode::Passive || (status.writer && acts_as_writer)
}
