//! MMM's host state machine (mmm-reference.md section 3), judged on the combined evidence.
//!
//! Only verdicts that a majority (or definite agent evidence) supports move a host; `Unknown` verdicts
//! never do. Role removal is not done here: placement takes roles away from hosts that are no longer
//! eligible (in active mode only, so that manual and wait modes keep roles on failed hosts).

use std::collections::BTreeMap;

use mmm_consensus::{ClusterState, Command, HostRecord, HostState};

use super::config::{EngineConfig, HostKind};
use super::evidence::HostEvidence;
use super::round::Round;

/// A state change for one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The new state.
    pub to: HostState,
    /// Why, naming the evidence.
    pub reason: String,
    /// The host's flapping mark is cleared with this change (`flap_duration` passed quietly).
    pub clear_flapping: bool,
}

fn go(to: HostState, reason: impl Into<String>) -> Option<Transition> {
    Some(Transition {
        to,
        reason: reason.into(),
        clear_flapping: false,
    })
}

/// The host whose health decides whether `host`'s replication problems are its own: the configured peer
/// of a master, the active master for a slave.
pub fn peer_of(state: &ClusterState, cfg: &EngineConfig, host: &str) -> Option<String> {
    match cfg.hosts.get(host) {
        Some(h) if h.kind == HostKind::Master => h.peer.clone(),
        _ => state.active_master.clone().filter(|m| m != host),
    }
}

fn none() -> HostEvidence {
    HostEvidence::default()
}

/// Decides the next state of `host`, or `None` to stay.
///
/// A host that is not the active master goes ONLINE only once an errant-transaction check started after
/// it entered its state has cleared it (`HostEvidence::errant_unchecked`): a returning old master may
/// carry transactions nobody else has, and ONLINE is what lets the writer replicate from it again.
pub fn next_state(
    state: &ClusterState,
    cfg: &EngineConfig,
    evidence: &BTreeMap<String, HostEvidence>,
    host: &str,
    now: u64,
) -> Option<Transition> {
    let t = judge_state(state, cfg, evidence, host, now)?;
    let unchecked = evidence.get(host).is_some_and(|e| e.errant_unchecked);
    if t.to == HostState::Online && unchecked && state.active_master.as_deref() != Some(host) {
        return None;
    }
    Some(t)
}

fn judge_state(
    state: &ClusterState,
    cfg: &EngineConfig,
    evidence: &BTreeMap<String, HostEvidence>,
    host: &str,
    now: u64,
) -> Option<Transition> {
    let rec = state.hosts.get(host)?;
    let default = none();
    let ev = evidence.get(host).unwrap_or(&default);
    let is_active_master = state.active_master.as_deref() == Some(host);
    let peer = peer_of(state, cfg, host);
    let peer_rec = peer.as_deref().and_then(|p| state.hosts.get(p));
    let peer_online = peer_rec.is_some_and(|r| r.state == HostState::Online);
    // Replication failures count only when the peer is healthy and settled (MMM's 60 s).
    let peer_ok = peer_online
        && peer_rec.is_some_and(|r| now.saturating_sub(r.since_ms) > cfg.peer_online_min_ms)
        && peer
            .as_deref()
            .and_then(|p| evidence.get(p))
            .is_some_and(|e| e.up());
    let peer_name = peer.as_deref().unwrap_or("-");
    let rep_problem = || -> Option<Transition> {
        if let Some(r) = ev.rep_threads.reason() {
            go(
                HostState::ReplicationFail,
                format!("{r}; peer {peer_name} is ONLINE"),
            )
        } else if let Some(r) = ev.rep_backlog.reason() {
            go(
                HostState::ReplicationDelay,
                format!("{r}; peer {peer_name} is ONLINE"),
            )
        } else {
            None
        }
    };
    // Back to ONLINE, or to AWAITING_RECOVERY for a flapping host.
    let online = |why: String| -> Option<Transition> {
        if rec.flapping {
            go(
                HostState::AwaitingRecovery,
                format!("{why}, but the host is flapping"),
            )
        } else {
            go(HostState::Online, why)
        }
    };
    match rec.state {
        HostState::AdminOffline => None,
        HostState::Unknown => {
            if let Some(r) = ev.down_reason() {
                return go(HostState::HardOffline, r);
            }
            if !ev.up() {
                return None;
            }
            if peer_ok {
                if let Some(t) = rep_problem() {
                    return Some(t);
                }
            }
            let rep_known = !matches!(ev.rep_threads, super::Verdict::Unknown)
                && !matches!(ev.rep_backlog, super::Verdict::Unknown);
            if rep_known || is_active_master {
                go(HostState::Online, "first judgement: ping and mysql OK")
            } else {
                None
            }
        }
        HostState::Online => {
            if let Some(r) = ev.down_reason() {
                return go(HostState::HardOffline, r);
            }
            if !is_active_master && peer_ok {
                return rep_problem();
            }
            None
        }
        HostState::HardOffline => {
            if !ev.up() {
                return None;
            }
            if peer_ok {
                if let Some(mut t) = rep_problem() {
                    t.reason = format!("ping and mysql OK again, but {}", t.reason);
                    return Some(t);
                }
            }
            go(HostState::AwaitingRecovery, "ping and mysql OK again")
        }
        HostState::AwaitingRecovery => {
            if let Some(r) = ev.down_reason() {
                return go(HostState::HardOffline, r);
            }
            if rec.errant_gtids.is_some() || !ev.all_ok() {
                return None;
            }
            if rec.flapping {
                let last_drop = rec.online_drops_ms.last().copied().unwrap_or(0);
                let quiet = now.saturating_sub(last_drop);
                if quiet >= cfg.flap_duration_ms {
                    return Some(Transition {
                        to: HostState::Online,
                        reason: format!(
                            "all checks OK and no drop for {} s (flap_duration {} s)",
                            quiet / 1000,
                            cfg.flap_duration_ms / 1000
                        ),
                        clear_flapping: true,
                    });
                }
                return None;
            }
            if let (Some(then), Some(nowup)) = (rec.agent_uptime_s, ev.agent_uptime_s) {
                let down_s = nowup.saturating_sub(then);
                if nowup > then && down_s.saturating_mul(1000) < cfg.short_outage_ms {
                    return go(
                        HostState::Online,
                        format!(
                            "all checks OK; host was down for only {down_s} s (agent uptime {then} s -> {nowup} s, no reboot)"
                        ),
                    );
                }
            }
            let waited = now.saturating_sub(rec.since_ms);
            if cfg.auto_set_online_ms > 0 && waited >= cfg.auto_set_online_ms {
                return go(
                    HostState::Online,
                    format!(
                        "all checks OK for a host in AWAITING_RECOVERY for {} s (auto_set_online {} s)",
                        waited / 1000,
                        cfg.auto_set_online_ms / 1000
                    ),
                );
            }
            None
        }
        HostState::ReplicationFail | HostState::ReplicationDelay => {
            if let Some(r) = ev.down_reason() {
                return go(HostState::HardOffline, r);
            }
            if !peer_online {
                return online(format!("peer {peer_name} is not ONLINE"));
            }
            if ev.rep_threads.is_ok() && ev.rep_backlog.is_ok() {
                return online("replication checks OK again".to_string());
            }
            match (rec.state, &ev.rep_threads, &ev.rep_backlog) {
                (HostState::ReplicationFail, t, b) if t.is_ok() && b.is_failed() => {
                    go(HostState::ReplicationDelay, b.reason().unwrap_or_default())
                }
                (HostState::ReplicationDelay, t, _) if t.is_failed() => {
                    go(HostState::ReplicationFail, t.reason().unwrap_or_default())
                }
                _ => None,
            }
        }
    }
}

/// The commands that carry out `t` for `host`: the state change, plus the flapping mark and the agent
/// uptime at the moment of a drop from ONLINE (to recognise a short outage later).
pub fn transition_commands(
    rec: &HostRecord,
    cfg: &EngineConfig,
    ev: Option<&HostEvidence>,
    host: &str,
    t: &Transition,
    now: u64,
) -> (Vec<Command>, String) {
    let mut cmds = Vec::new();
    let mut reason = t.reason.clone();
    if t.clear_flapping {
        cmds.push(Command::ClearFlapping {
            host: host.to_string(),
        });
    }
    cmds.push(Command::SetHostState {
        host: host.to_string(),
        state: t.to,
    });
    if rec.state == HostState::Online && t.to != HostState::Online {
        cmds.push(Command::SetAgentUptime {
            host: host.to_string(),
            uptime_s: ev.and_then(|e| e.agent_uptime_s),
        });
        let window_start = now.saturating_sub(cfg.flap_duration_ms);
        let drops = rec
            .online_drops_ms
            .iter()
            .filter(|&&t| t > window_start)
            .count()
            + 1;
        if drops > cfg.flap_count as usize && !rec.flapping {
            cmds.push(Command::MarkFlapping {
                host: host.to_string(),
            });
            reason = format!(
                "{reason}; flapping: {drops} drops from ONLINE within {} s",
                cfg.flap_duration_ms / 1000
            );
        }
    }
    (cmds, reason)
}

/// Judges every host and proposes each change as one decision.
pub(crate) fn judge_hosts(round: &mut Round<'_>, evidence: &BTreeMap<String, HostEvidence>) {
    let before = round.sim.clone();
    let now = round.now();
    for host in round.cfg.hosts.keys() {
        let Some(rec) = before.hosts.get(host) else {
            continue;
        };
        let Some(t) = next_state(&before, round.cfg, evidence, host, now) else {
            continue;
        };
        let (cmds, why) = transition_commands(rec, round.cfg, evidence.get(host), host, &t, now);
        let reason = format!("{host}: {} -> {}: {why}", rec.state, t.to);
        round.propose_all(reason, cmds);
    }
}
