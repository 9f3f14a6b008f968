//! The writer role: discovering the existing writer of a new cluster, starting a failover when the active
//! master is lost (or a preferred master is back), and driving the committed failover steps.
//!
//! Steps (each committed before it is carried out, so a new leader resumes where the old one stopped):
//! 1. `BeginFailover` with the writer IP taken from the old writer (pushes tell it to deny writes).
//! 2. `DemoteOld` → `CatchUp` once the old writer acknowledged a status denying it writes at an epoch ≥
//!    the failover's start (the agent acknowledges only what it verified), or its lease and the fence in
//!    mysqld have certainly run out, or `kill_host_bin` succeeded against it.
//! 3. `CatchUp` → `Repoint` once the candidate reports its relay log applied for this failover. A
//!    candidate that cannot catch up within `catch_up_timeout_ms` is not promoted blindly: the failover is
//!    abandoned and the cluster goes to PASSIVE with a cause, because any other candidate would be
//!    missing the same transactions; an operator decides (`set_ip` + `set_active`).
//! 4. `Repoint` → `Promote` at once: replicas are told the new master (GTID auto-positioning makes the
//!    order safe) and follow it while the new writer opens; late ones follow when they answer.
//! 5. `Promote`: `EndFailover` + `SetActiveMaster` + writer IP owner, in one decision.
//!
//! A candidate that drops out before promotion ends the failover (abandoned); the next round starts a new
//! one to another candidate, from the same (already demoted) old writer.

use mmm_consensus::{ClusterState, Command, Failover, FailoverStep, HostState, Mode};

use super::config::EngineConfig;
use super::input::{Input, StartupEvidence};
use super::output::{Action, LogLevel};
use super::placement::{eligible, load_halves};
use super::round::Round;

/// States in which the active master keeps the writer role (replication trouble does not stop writes).
fn keeps_writer(state: HostState) -> bool {
    matches!(
        state,
        HostState::Online
            | HostState::ReplicationFail
            | HostState::ReplicationDelay
            | HostState::Unknown
    )
}

/// How long (ms) a host's GTID position must have stood still before a more advanced host passes it
/// over as failover candidate. A position that still moves is still receiving from the old writer, and
/// positions probed up to a probe interval (~100 ms) apart at different hosts would otherwise rank
/// hosts that hold the same transactions; three probe intervals is comfortably past that.
pub const POSITION_SETTLED_MS: u64 = 300;

/// The chosen failover candidate, and why the usual choice was passed over (for the decision's reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The host that takes the writer role.
    pub host: String,
    /// "db3 over db2: …" when a more advanced host was preferred to the first in the usual order.
    pub passed_over: Option<String>,
}

/// Chooses the failover candidate: the old writer's peer, then the preferred host, then the least loaded
/// eligible writer-role host (ties by name) — or, with no previous writer, the first eligible host in the
/// role's `hosts` order; it must be ONLINE, clean, its agent reachable, and miss no required server
/// setting (`mmm_proto::settings`).
///
/// After a failure (`from` set) the most advanced host is preferred: a host in that order is passed
/// over when its position has stood still for [`POSITION_SETTLED_MS`] and another eligible host's
/// position is strictly ahead of it (it holds transactions the first lacks, and lacks none the first
/// has). A position only grows, so that other host certainly holds more; the one that stood still is
/// not receiving them. The candidate still catches up (from the old writer's last position, or from
/// its peers) before it opens: this choice makes that catch-up short, it does not replace it.
pub fn choose_candidate(
    state: &ClusterState,
    cfg: &EngineConfig,
    input: &Input,
    from: Option<&str>,
) -> Option<Candidate> {
    let (wname, wrole) = cfg.writer()?;
    let ok = |h: &str| {
        Some(h) != from
            && eligible(state, cfg, wname, h)
            && input.agent_reachable(h)
            && input.settings_missing(h).is_none()
    };
    let peer = from
        .and_then(|f| cfg.hosts.get(f))
        .and_then(|h| h.peer.clone());
    let mut order: Vec<String> = peer.into_iter().chain(wrole.prefer.clone()).collect();
    let mut rest: Vec<&String> = wrole.hosts.iter().collect();
    // With no previous writer (a new cluster) the role's `hosts` order is the operator's intent
    // (the current master is listed first); after a failure the least loaded host takes over.
    if from.is_some() {
        rest.sort_by_key(|h| (load_halves(state, cfg, h), (*h).clone()));
    }
    order.extend(rest.into_iter().cloned());
    let mut candidates: Vec<String> = Vec::new();
    for h in order {
        if ok(&h) && !candidates.contains(&h) {
            candidates.push(h);
        }
    }
    let first = candidates.first()?.clone();
    if from.is_none() {
        return Some(Candidate {
            host: first,
            passed_over: None,
        });
    }
    let ahead_of = |d: &str, c: &str| -> Option<(String, String, u64)> {
        let pc = input.agents.get(c)?.position.as_ref()?;
        let pd = input.agents.get(d)?.position.as_ref()?;
        (pc.unchanged_ms >= POSITION_SETTLED_MS
            && mmm_proto::gtid::strictly_ahead(&pd.gtid, &pc.gtid))
        .then(|| (pc.gtid.clone(), pd.gtid.clone(), pc.unchanged_ms))
    };
    let host = candidates
        .iter()
        .find(|c| {
            !candidates
                .iter()
                .any(|d| d != *c && ahead_of(d, c).is_some())
        })
        .cloned()
        .unwrap_or_else(|| first.clone());
    let passed_over = (host != first).then(|| match ahead_of(&host, &first) {
        Some((pf, ph, still)) => {
            let n = mmm_proto::gtid::transactions_behind(&pf, &ph).unwrap_or(0);
            format!(
                "{host} chosen over {first}: it has {n} transaction(s) {first} lacks ({first} at {pf}, \
                 unchanged for {still} ms; {host} at {ph})"
            )
        }
        None => format!("{host} chosen over {first}: more advanced than every eligible host"),
    });
    Some(Candidate { host, passed_over })
}

fn writer_ips(cfg: &EngineConfig) -> Vec<String> {
    cfg.writer().map(|(_, r)| r.ips.clone()).unwrap_or_default()
}

/// Whether `host` owns every writer IP in `state`: only such an active master is expected writable
/// (its agent keeps one without them read-only by design). The leader asks it too, to know when the
/// time a writer was not kept writable runs.
pub fn holds_writer_ips(state: &ClusterState, cfg: &EngineConfig, host: &str) -> bool {
    writer_ips(cfg).iter().all(|ip| {
        state
            .role_ips
            .get(ip)
            .is_some_and(|r| r.owner.as_deref() == Some(host))
    })
}

/// The commands that start moving the writer role from `from` to `to`.
pub fn begin_commands(
    state: &ClusterState,
    cfg: &EngineConfig,
    from: Option<&str>,
    to: &str,
    planned: bool,
) -> Vec<Command> {
    let Some((wname, _)) = cfg.writer() else {
        return Vec::new();
    };
    let mut cmds = vec![Command::BeginFailover {
        role: wname.to_string(),
        from: from.map(str::to_string),
        to: to.to_string(),
        planned,
    }];
    for ip in writer_ips(cfg) {
        if state.role_ips.get(&ip).is_some_and(|r| r.owner.is_some()) {
            cmds.push(Command::SetRoleOwner { ip, owner: None });
        }
    }
    cmds
}

fn derive_startup(round: &Round<'_>) -> StartupEvidence {
    let mut ev = StartupEvidence {
        complete: true,
        ..Default::default()
    };
    let hosts = round
        .cfg
        .writer()
        .map(|(_, r)| r.hosts.clone())
        .unwrap_or_default();
    for h in hosts {
        let facts = round.input.agent(&h);
        if facts.writable {
            ev.writable.insert(h.clone());
        }
        if facts.holds_writer_vip {
            ev.holds_writer_vip.insert(h.clone());
        }
        let dead = round
            .sim
            .hosts
            .get(&h)
            .is_some_and(|r| r.state == HostState::HardOffline);
        if !facts.reachable && !dead {
            ev.complete = false;
        }
    }
    ev
}

/// A cluster without an active master: adopt the host that already acts as writer rather than moving
/// the role. Returns true when the round must not name a writer otherwise (adopted, conflicting, or
/// still waiting for evidence).
fn adopt_existing_writer(round: &mut Round<'_>) -> bool {
    let Some((wname, wrole)) = round.cfg.writer() else {
        return false;
    };
    let ev = round
        .input
        .startup
        .clone()
        .unwrap_or_else(|| derive_startup(round));
    let mut hosts: Vec<&String> = wrole.hosts.iter().collect();
    hosts.sort();
    hosts.dedup();
    let describe = |h: &str| {
        let mut what = Vec::new();
        if ev.writable.contains(h) {
            what.push("writable");
        }
        if ev.holds_writer_vip.contains(h) {
            what.push("holds the writer VIP");
        }
        format!("{h} ({})", what.join(", "))
    };
    let looks: Vec<&String> = hosts
        .into_iter()
        .filter(|h| ev.writable.contains(*h) || ev.holds_writer_vip.contains(*h))
        .collect();
    if round.cfg.careful_startup && !ev.complete {
        round.log(
            LogLevel::Info,
            None,
            "no active master yet: waiting for every writer-role host to answer before naming one",
        );
        return true;
    }
    if looks.is_empty() {
        return false;
    }
    if looks.len() > 1 && round.cfg.careful_startup {
        let list: Vec<String> = looks.iter().map(|h| describe(h)).collect();
        let cause = format!(
            "several hosts look like the active master at startup: {}; use set_ip and set_active",
            list.join(", ")
        );
        round.propose(
            format!("careful_startup: {cause}"),
            Command::SetMode {
                mode: Mode::Passive,
                cause: Some(cause.clone()),
            },
        );
        return true;
    }
    let prefer = wrole.prefer.as_deref();
    let score =
        |h: &str| u8::from(ev.writable.contains(h)) + u8::from(ev.holds_writer_vip.contains(h));
    let Some(pick) = looks
        .iter()
        .max_by_key(|h| {
            (
                score(h),
                Some(h.as_str()) == prefer,
                std::cmp::Reverse((**h).clone()),
            )
        })
        .map(|h| (*h).clone())
    else {
        return false;
    };
    let mut reason = format!(
        "no active master yet; {} already acts as {wname}",
        describe(&pick)
    );
    let others: Vec<String> = looks
        .iter()
        .filter(|h| **h != &pick)
        .map(|h| describe(h))
        .collect();
    if !others.is_empty() {
        reason = format!(
            "{reason}; also looking like writers, to be demoted: {}",
            others.join(", ")
        );
    }
    let mut cmds = vec![Command::SetActiveMaster {
        host: Some(pick.clone()),
    }];
    for ip in writer_ips(round.cfg) {
        cmds.push(Command::SetRoleOwner {
            ip,
            owner: Some(pick.clone()),
        });
    }
    round.propose_all(reason, cmds);
    true
}

/// Starts, resumes or repairs the writer role. `start` is the committed state at the round's start.
pub(crate) fn manage_writer(round: &mut Round<'_>, start: &ClusterState) {
    let Some((wname, wrole)) = round.cfg.writer() else {
        return;
    };
    let mode = round.sim.mode;
    if mode == Mode::Passive {
        return;
    }
    if let Some(f) = start.failover.clone() {
        progress(round, &f);
        return;
    }
    if round.sim.failover.is_some() {
        return;
    }
    let cfg = round.cfg;
    let Some(am) = round.sim.active_master.clone() else {
        if adopt_existing_writer(round) || mode == Mode::Wait {
            return;
        }
        // A new cluster names its first writer only once every host that may hold the role has been
        // judged (UNKNOWN lasts one check round, or a trap period), so the choice follows `prefer` and
        // the configured order rather than whichever check happened to answer first.
        let unjudged = wrole.hosts.iter().any(|h| {
            round
                .sim
                .hosts
                .get(h)
                .is_some_and(|r| r.state == HostState::Unknown)
        });
        if unjudged {
            return;
        }
        let Some(Candidate { host: to, .. }) = choose_candidate(&round.sim, cfg, round.input, None)
        else {
            return;
        };
        let cmds = begin_commands(&round.sim, cfg, None, &to, false);
        round.propose_all(format!("no active master; {to} takes role {wname}"), cmds);
        return;
    };
    let Some(rec) = round.sim.hosts.get(&am).cloned() else {
        return;
    };
    let unwritable = round.input.agent(&am).not_writable_ms;
    // Only an active master that holds the writer IPs is expected writable: one whose role was taken
    // away (its mysqld died and no one could take over) is given it back below once it is ONLINE.
    let holds_role = holds_writer_ips(&round.sim, cfg, &am);
    let stuck = mode == Mode::Active
        && rec.state != HostState::Unknown
        && holds_role
        && unwritable >= cfg.writer_unwritable_after_ms;
    if stuck && keeps_writer(rec.state) && rec.errant_gtids.is_none() {
        // The writer's agent has not kept it writable for longer than a lease and the fence: writes
        // are denied there whatever its checks say. Move the role if someone can take it.
        let why = format!(
            "the agent of active master {am} has not kept it writable for {unwritable} ms (agent \
             unreachable, or it cannot reach mysqld): its lease ran out and the fence in mysqld denies writes"
        );
        match choose_candidate(&round.sim, cfg, round.input, Some(&am)) {
            Some(to) => fail_over(round, &am, &to, &why),
            None => round.log(
                LogLevel::Error,
                Some(&am),
                format!("{why}; {}", no_candidate(round, wname)),
            ),
        }
        return;
    }
    let lost = !keeps_writer(rec.state) || rec.errant_gtids.is_some();
    if lost {
        // Manual and wait modes keep roles on failed hosts; an operator's set_offline still moves it.
        if mode != Mode::Active && rec.state != HostState::AdminOffline {
            return;
        }
        let why = match &rec.errant_gtids {
            Some(g) => format!("active master {am} has errant transactions ({g})"),
            None => format!("active master {am} is {}", rec.state),
        };
        match choose_candidate(&round.sim, cfg, round.input, Some(&am)) {
            Some(to) => fail_over(round, &am, &to, &why),
            None => {
                let owned: Vec<String> = writer_ips(cfg)
                    .into_iter()
                    .filter(|ip| {
                        round
                            .sim
                            .role_ips
                            .get(ip)
                            .is_some_and(|r| r.owner.as_deref() == Some(&am))
                    })
                    .collect();
                let cmds: Vec<Command> = owned
                    .into_iter()
                    .map(|ip| Command::SetRoleOwner { ip, owner: None })
                    .collect();
                if !cmds.is_empty() {
                    round.propose_all(
                        format!("{why}; no candidate for role {wname}: removed"),
                        cmds,
                    );
                }
                round.log(
                    LogLevel::Error,
                    Some(&am),
                    format!("{why}; {}", no_candidate(round, wname)),
                );
            }
        }
        return;
    }
    // The active master keeps the role: make sure it holds the writer IP (after an abandoned move).
    if rec.state != HostState::Unknown {
        for ip in writer_ips(cfg) {
            let owner = round.sim.role_ips.get(&ip).and_then(|r| r.owner.clone());
            if owner.as_deref() != Some(am.as_str()) {
                let reason = format!("active master {am} holds role {wname}({ip})");
                round.propose(
                    reason,
                    Command::SetRoleOwner {
                        ip,
                        owner: Some(am.clone()),
                    },
                );
            }
        }
    }
    // Active mode: move the writer back to its preferred host.
    let prefer = cfg.writer().and_then(|(_, r)| r.prefer.clone());
    if let Some(p) = prefer {
        let ready = mode == Mode::Active
            && p != am
            && rec.state == HostState::Online
            && eligible(&round.sim, cfg, wname, &p)
            && round.input.agent_reachable(&p)
            && round.input.settings_missing(&p).is_none();
        if ready {
            let cmds = begin_commands(&round.sim, cfg, Some(&am), &p, true);
            round.propose_all(
                format!("role {wname} prefers {p}, which is ONLINE; moving it from {am}"),
                cmds,
            );
        }
    }
}

/// Why the old writer counts as demoted, if it does.
fn demoted(round: &Round<'_>, f: &Failover) -> Option<String> {
    let Some(old) = f.from.as_deref() else {
        return Some("there is no previous writer".into());
    };
    let facts = round.input.agent(old);
    if let Some(e) = facts.demotion_acked_epoch.filter(|e| *e >= f.started_epoch) {
        return Some(format!("{old} acknowledged its demotion at epoch {e}"));
    }
    if facts.kill_host_ok_at.is_some_and(|e| e >= f.started_epoch) {
        return Some(format!("kill_host_bin succeeded against {old}"));
    }
    // The leader's estimate covers every renewal it sent and the leases its predecessors may have
    // granted; no renewal is sent once the failover began (the old writer's status has no writer
    // role). Without an estimate, assume a lease renewed at the moment the failover began.
    let cfg = round.cfg;
    let expiry = facts.lease_expires_ms.unwrap_or_else(|| {
        f.started_ms
            .saturating_add(cfg.writer_lease_ms + cfg.lease_margin_ms)
    });
    if round.now() >= expiry {
        return Some(format!(
            "the writer lease of {old} has certainly expired ({} ms after the failover began)",
            round.now().saturating_sub(f.started_ms)
        ));
    }
    None
}

/// Starts the unplanned failover of the writer role from `am` to `to` (`why`: the cause). When `am` was
/// last seen running without semi-synchronous acknowledgements, writes it acknowledged may exist on it
/// alone: with `async_failover` the failover goes ahead and its history entry says so; without, the
/// cluster goes PASSIVE with the cause instead (the operator brings `am` back or chooses by hand).
fn fail_over(round: &mut Round<'_>, am: &str, candidate: &Candidate, why: &str) {
    let cfg = round.cfg;
    let Some((wname, _)) = cfg.writer() else {
        return;
    };
    let to = candidate.host.as_str();
    let why = match &candidate.passed_over {
        Some(note) => format!("{why}; {note}"),
        None => why.to_string(),
    };
    let cmds = begin_commands(&round.sim, cfg, Some(am), to, false);
    if !round.input.agent(am).writer_async {
        round.propose_all(format!("{why}; failing over role {wname} to {to}"), cmds);
        return;
    }
    let risk = format!(
        "{am} was last seen running without semi-synchronous acknowledgements: writes it acknowledged \
         last may exist on it alone"
    );
    if cfg.async_failover {
        round.log(
            LogLevel::Warn,
            Some(am),
            format!("failing over role {wname} to {to} although {risk}"),
        );
        // Its errant transactions, if it comes back with any, may have been acknowledged: never
        // undone automatically.
        let mut cmds = cmds;
        cmds.push(Command::SetAckedAlone {
            host: am.to_string(),
        });
        round.propose_all(
            format!("{why}; failing over role {wname} to {to}; {risk} (async_failover 1)"),
            cmds,
        );
    } else {
        let cause = format!(
            "{why}; no failover to {to}: {risk} (async_failover 0); bring {am} back, or choose the \
             writer by hand (set_ip, set_active)"
        );
        round.log(LogLevel::Error, Some(am), cause.clone());
        round.propose_all(
            cause.clone(),
            vec![Command::SetMode {
                mode: Mode::Passive,
                cause: Some(cause),
            }],
        );
    }
}

/// Why no host can take the writer role, naming hosts kept out by missing server settings.
fn no_candidate(round: &Round<'_>, wname: &str) -> String {
    let blocked: Vec<String> = round
        .cfg
        .hosts
        .keys()
        .filter_map(|h| round.input.settings_missing(h).map(|m| format!("{h}: {m}")))
        .collect();
    if blocked.is_empty() {
        format!("no ONLINE host with a reachable agent can take role {wname}")
    } else {
        format!(
            "no ONLINE host with a reachable agent and the required server settings can take role \
             {wname} (missing settings: {})",
            blocked.join("; ")
        )
    }
}

/// Hosts that must follow the new master before it is promoted.
fn replicas(round: &Round<'_>, f: &Failover) -> Vec<String> {
    round
        .cfg
        .hosts
        .keys()
        .filter(|h| **h != f.to)
        .filter(|h| {
            round.sim.hosts.get(*h).is_some_and(|r| {
                r.errant_gtids.is_none()
                    && matches!(
                        r.state,
                        HostState::Online
                            | HostState::ReplicationFail
                            | HostState::ReplicationDelay
                    )
            })
        })
        .filter(|h| round.input.agent_reachable(h))
        .cloned()
        .collect()
}

fn progress(round: &mut Round<'_>, f: &Failover) {
    let cfg = round.cfg;
    let now = round.now();
    let to = f.to.clone();
    let candidate_ok = round.sim.hosts.get(&to).is_some_and(|r| {
        r.errant_gtids.is_none()
            && (r.state == HostState::Online
                || (f.planned
                    && matches!(
                        r.state,
                        HostState::ReplicationFail | HostState::ReplicationDelay
                    )))
    });
    if !candidate_ok {
        let st = round
            .sim
            .hosts
            .get(&to)
            .map(|r| r.state.to_string())
            .unwrap_or_default();
        round.propose(
            format!("candidate {to} is {st}; failover of role {} abandoned, another candidate is chosen next", f.role),
            Command::EndFailover { completed: false },
        );
        return;
    }
    let mut step = f.step;
    let since = |s: FailoverStep| if s == f.step { f.step_since_ms } else { now };
    loop {
        match step {
            FailoverStep::DemoteOld => match demoted(round, f) {
                Some(why) => {
                    let mut cmds = vec![Command::FailoverStep {
                        step: FailoverStep::CatchUp,
                    }];
                    // The old writer's last position, reported with its verified demotion: the
                    // candidate applies up to it before it is promoted.
                    let target = f.from.as_deref().and_then(|old| {
                        let facts = round.input.agent(old);
                        facts
                            .demotion_acked_epoch
                            .filter(|e| *e >= f.started_epoch)
                            .and(facts.demoted_gtid)
                    });
                    if let Some(gtid) = target.filter(|g| !g.is_empty()) {
                        cmds.push(Command::CatchUpTarget { gtid });
                    }
                    if !round.propose_all(why, cmds) {
                        return;
                    }
                    step = FailoverStep::CatchUp;
                }
                None => {
                    if let Some(old) = f.from.as_deref() {
                        let facts = round.input.agent(old);
                        if cfg.kill_host_configured && !facts.reachable {
                            round.act(Action::RunKillHost {
                                host: old.to_string(),
                                epoch: f.started_epoch,
                            });
                        }
                    }
                    return;
                }
            },
            FailoverStep::CatchUp => {
                let caught = round.input.agent(&to).caught_up_for == Some(f.started_epoch);
                if f.from.is_none() || caught {
                    let fetched = &round.input.agent(&to).caught_up_from;
                    let why = if caught && !fetched.is_empty() {
                        format!("{to} applied its relay log and fetched what it lacked from peers ({fetched}) (caught up)")
                    } else if caught {
                        format!("{to} applied its relay log (caught up)")
                    } else {
                        "no previous writer to catch up with".to_string()
                    };
                    if !round.propose(
                        why,
                        Command::FailoverStep {
                            step: FailoverStep::Repoint,
                        },
                    ) {
                        return;
                    }
                    step = FailoverStep::Repoint;
                } else if now.saturating_sub(since(step)) >= cfg.catch_up_timeout_ms {
                    let cause = format!(
                        "failover of role {} to {to} abandoned: {to} did not apply its relay log within {} s; choose the writer by hand (set_ip, set_active)",
                        f.role,
                        cfg.catch_up_timeout_ms / 1000
                    );
                    round.propose_all(
                        cause.clone(),
                        vec![
                            Command::EndFailover { completed: false },
                            Command::SetMode {
                                mode: Mode::Passive,
                                cause: Some(cause.clone()),
                            },
                        ],
                    );
                    round.log(LogLevel::Error, Some(&to), cause);
                    return;
                } else {
                    round.act(Action::WaitCatchUp {
                        host: to.clone(),
                        epoch: f.started_epoch,
                    });
                    return;
                }
            }
            FailoverStep::Repoint => {
                // Replicas re-point with GTID auto-positioning, which does not depend on the new
                // master's position at that moment, so the promotion need not wait for them: they are
                // told now (and keep being told by every push) and the writer opens at once. This
                // keeps the write outage to the demotion and the candidate's catch-up.
                let pending: Vec<String> = replicas(round, f)
                    .into_iter()
                    .filter(|h| round.input.agent(h).repointed_to.as_deref() != Some(to.as_str()))
                    .collect();
                let why = if pending.is_empty() {
                    format!("every reachable replica follows {to}")
                } else {
                    format!(
                        "{} told to follow {to} (GTID auto-positioning; promotion does not wait for them)",
                        pending.join(", ")
                    )
                };
                for h in pending {
                    round.act(Action::Repoint {
                        host: h,
                        master: to.clone(),
                        epoch: f.started_epoch,
                    });
                }
                if !round.propose(
                    why,
                    Command::FailoverStep {
                        step: FailoverStep::Promote,
                    },
                ) {
                    return;
                }
                step = FailoverStep::Promote;
            }
            FailoverStep::Promote => {
                let mut cmds = vec![
                    Command::EndFailover { completed: true },
                    Command::SetActiveMaster {
                        host: Some(to.clone()),
                    },
                ];
                for ip in writer_ips(cfg) {
                    cmds.push(Command::SetRoleOwner {
                        ip,
                        owner: Some(to.clone()),
                    });
                }
                let from = f.from.as_deref().unwrap_or("-");
                round.propose_all(
                    format!(
                        "{to} promoted: new active master (role {} moved from {from}; {})",
                        f.role, f.reason
                    ),
                    cmds,
                );
                round.act(Action::PushStatus { host: to.clone() });
                return;
            }
        }
    }
}
