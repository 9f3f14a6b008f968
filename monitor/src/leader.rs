//! The loop the Raft leader runs: gather observations, run the decision engine, commit its
//! proposals, carry out its actions, and push every agent its committed status (renewing the writer's
//! lease only while a quorum of monitors confirms this leadership). What may be pushed at all is the
//! engine's rule ([`engine::push_allowed`]), applied by the round and the renewal task alike: in
//! passive mode nothing but the renewals of the committed writer that still acts as one.
//!
//! Followers run the same task but it idles until they become leader. All it knows about agents
//! (what they acknowledged, when the writer's lease was last renewed) is per leadership: a new leader
//! starts from nothing and assumes the worst about leases granted by its predecessor.
//!
//! Lease renewals have a path of their own (a task per leadership, [`renew_loop`]), so a slow commit or
//! a `pre_failover` hook in the round never lets a healthy writer's lease run out. Every push reads the
//! state and its epoch in one read, so a status always goes out with the epoch of the state it says;
//! an old writer's demotion counts only when the status it acknowledged is a demotion. The arithmetic
//! of when a lease is certainly over is in [`crate::lease`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mmm_consensus::{ClusterState, Command, Epoch, Request};
use mmm_proto::{LeaseStamp, RoleIp, SetStatusRequest};
use tokio::sync::watch;

use crate::context::MonitorContext;
use crate::convert::{host_state_to_proto, now_ms};
use crate::engine::{
    self, Action, AgentFacts, DesiredStatus, EngineConfig, Input, ReportedPosition, StartupEvidence,
};
use crate::lease::{lease_over_at, LeaseBounds};

/// How often the loop runs without a wake-up.
const TICK: Duration = Duration::from_millis(100);
/// Rounds shorter than this are followed at once by the next one (small clusters never wait).
const MIN_ROUND_PAUSE: Duration = Duration::from_millis(2);
/// Longest pause after a long round.
const MAX_ROUND_PAUSE: Duration = Duration::from_millis(20);
/// Longest the old writer of a planned switchover keeps holding client writes once the switchover
/// ended, waiting for the new writer to open (the agent itself gives up after `HOLD_LIMIT`).
const HOLD_RELEASE_WAIT: Duration = Duration::from_secs(1);
/// First wait before pushing again to an agent that could not be reached.
const PUSH_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between two pushes to an agent that cannot be reached.
const PUSH_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Deadline of one status push (the agent may wait for replication up to `catchup_timeout`).
const PUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of one commit.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(2);
/// A commit slower than this is logged (a healthy cluster commits in a few milliseconds).
const SLOW_COMMIT: Duration = Duration::from_millis(500);
/// How often the renewal task looks whether the writer's lease is due (a third of the lease is the
/// renewal period; this only bounds how late within it a renewal goes out).
const RENEW_TICK: Duration = Duration::from_millis(50);

/// What this leader knows of one agent.
#[derive(Default, Clone, Debug)]
struct AgentTrack {
    /// Highest epoch the agent acknowledged to this leader.
    acked_epoch: Option<Epoch>,
    /// The status last acknowledged.
    acked_status: Option<DesiredStatus>,
    /// When the last push was acknowledged.
    acked_at: Option<Instant>,
    /// The latest time a writer lease sent (acknowledged or not: it may still arrive) counts from, on
    /// this monitor's monotonic clock: when the stamp it names was received (the agent made the stamp
    /// before, and counts its lease from it), or when it was sent if it named none.
    lease_counted_from: Option<Instant>,
    /// The stamp of the agent's last reply, and when it arrived (a renewal echoes the freshest stamp
    /// of the agent's current run, from this or its health stream).
    reply_stamp: Option<(LeaseStamp, Instant)>,
    /// Highest epoch at which the agent acknowledged a status that denies it writes (verified by the
    /// agent: read_only read back, or mysqld certainly down).
    demotion_acked_epoch: Option<Epoch>,
    /// The server's GTID position reported with that acknowledgement.
    demoted_gtid: Option<String>,
    /// A push is under way; no second one is started.
    in_flight: bool,
    /// The agent's last reply said it holds the writer role with a valid lease.
    writable: bool,
    /// The agent's last reply said it holds client writes for a planned hand-over, since when.
    writes_held_since: Option<Instant>,
    /// The agent's last reply said it refuses the VIPs it gives up (TCP reset): its hold may end
    /// without waiting for the new writer.
    refuses_given_up_vips: bool,
    /// Failover epoch at which the candidate was found caught up.
    caught_up_for: Option<Epoch>,
    /// What that candidate fetched from peers to catch up ("" when nothing).
    caught_up_from: String,
    /// The errant transactions the agent reported saved and undone, and where it saved them.
    rejoined: Option<(String, String)>,
    /// Master the replica acknowledged as its source.
    repointed_to: Option<String>,
    /// Epoch at which `kill_host_bin` succeeded for this host.
    kill_host_ok_at: Option<Epoch>,
    /// Last push error, for logs.
    last_error: Option<String>,
    /// A renewal of this writer's lease is being held back because its agent sent no recent stamp
    /// (logged when it starts and ends).
    renewal_held: bool,
    /// The last push did not reach the agent (transport error or timeout). A writer's lease is not
    /// renewed again until its health stream is back: every renewal sent counts towards the lease
    /// estimate, so sending into a dead link only delays the failover.
    unreachable: bool,
    /// When that failed push gave up: renewals resume only once the health stream spoke after it.
    unreachable_since: Option<Instant>,
    /// Pushes that did not reach the agent in a row, and when the last one gave up: the next push
    /// to an agent that cannot be reached waits a backoff, unless its health stream speaks again.
    failed_pushes: u32,
    last_failed_push: Option<Instant>,
    /// The agent's health-stream connection count when the last push was sent; a new connection
    /// (the agent restarted) makes the status due at once.
    pushed_connection: u64,
    /// The status the agent last applied with an error, and how many times in a row: the same status
    /// is sent again only after a backoff (a candidate whose SQL thread stopped would otherwise be
    /// pushed in a tight loop); a changed status, or a writer's renewal, goes at once.
    errored_status: Option<DesiredStatus>,
    failed_applies: u32,
    last_failed_apply: Option<Instant>,
    /// Required server settings the host misses, as its agent's last reply said (`None`: none).
    settings_missing: Option<String>,
    /// As the writer, its last reply said semi-sync was OFF (kept after it stops answering: what it was
    /// last seen doing is what a failover away from it must weigh).
    writer_async: bool,
}

/// What pushing needs, shared by the round and the renewal task of one leadership.
#[derive(Clone)]
struct Pusher {
    /// Per host.
    tracks: Arc<Mutex<BTreeMap<String, AgentTrack>>>,
    /// Signalled when a push finishes, so the next step of a failover follows at once.
    pushed: Arc<tokio::sync::Notify>,
    /// The lease arithmetic of this cluster.
    bounds: LeaseBounds,
}

/// State of one leadership.
struct Leadership {
    /// When this node noticed it became leader: leases of the previous leader are assumed to run
    /// until [`crate::lease::inherited_lease_over_after`] this.
    since: Instant,
    /// Per host, and the push signal.
    pusher: Pusher,
    /// The lease renewal task of this leadership (stopped with it).
    renewer: tokio::task::JoinHandle<()>,
    /// Startup evidence, gathered once when the cluster has no writer yet.
    startup: Option<StartupEvidence>,
    /// Errant transaction checks of returning hosts (polled off the hot path, cached).
    errant: crate::errant::ErrantPoller,
    /// Hook events whose hook this leadership is running (not started twice).
    hooks_running: Arc<Mutex<std::collections::BTreeSet<crate::hooks::EventKey>>>,
    /// When the leader last saw each host's agent report it writable (health stream): an active master
    /// not seen so for long is lost (the engine's rule).
    writable_seen: BTreeMap<String, Instant>,
    /// The active master as this leadership first saw it, and since when: a new writer is given the
    /// rule's whole time to open before it can count as not kept writable.
    active_seen: Option<(String, Instant)>,
    /// The engine's log lines of the last round: a condition that lasts (e.g. waiting for evidence)
    /// is logged when it starts, not once per round.
    logged: std::collections::BTreeSet<(Option<String>, String)>,
    /// When the lease of the writer being replaced is certainly over (from the last round): the loop
    /// wakes then rather than at its next tick, so the failover goes on the moment it may.
    lease_wake: Option<Instant>,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs until shutdown.
pub async fn run(ctx: Arc<MonitorContext>, mut stop: watch::Receiver<bool>) {
    let ecfg = Arc::new(EngineConfig::from(ctx.config.as_ref()));
    let mut agents = ctx.agents.changes();
    let mut reports = ctx.reports.changes();
    let mut checks = ctx.checker.changes();
    let mut applied = ctx.consensus.subscribe();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leadership: Option<Leadership> = None;
    loop {
        let pushed = leadership.as_ref().map(|l| Arc::clone(&l.pusher.pushed));
        let lease_wake = leadership.as_ref().and_then(|l| l.lease_wake);
        tokio::select! {
            _ = tick.tick() => {}
            _ = async { match lease_wake { Some(t) => tokio::time::sleep_until(t.into()).await, None => std::future::pending().await } } => {}
            _ = async { match &pushed { Some(n) => n.notified().await, None => std::future::pending().await } } => {}
            r = agents.changed() => if r.is_err() { return },
            r = reports.changed() => if r.is_err() { return },
            r = checks.changed() => if r.is_err() { return },
            r = applied.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
        if !ctx.consensus.is_leader() {
            if leadership.take().is_some() {
                tracing::warn!(monitor = %ctx.name, "no longer the leader: stopped deciding and pushing");
            }
            continue;
        }
        let l = leadership.get_or_insert_with(|| {
            let pusher = Pusher {
                tracks: Arc::default(),
                pushed: Arc::default(),
                bounds: LeaseBounds::new(Duration::from_millis(ecfg.writer_lease_ms)),
            };
            tracing::info!(
                monitor = %ctx.name,
                inherited_lease_wait_ms = pusher.bounds.after_leadership_start().as_millis() as u64,
                "became leader: taking over decisions"
            );
            Leadership {
                since: Instant::now(),
                renewer: tokio::spawn(renew_loop(
                    Arc::clone(&ctx),
                    Arc::clone(&ecfg),
                    pusher.clone(),
                )),
                pusher,
                startup: None,
                errant: Default::default(),
                hooks_running: Arc::default(),
                writable_seen: BTreeMap::new(),
                active_seen: None,
                logged: Default::default(),
                lease_wake: None,
            }
        });
        let started = Instant::now();
        round(&ctx, &ecfg, l).await;
        // A round over many hosts is not repeated back to back for every change that arrived while
        // it ran: at most half the time goes to rounds, and the next one sees all of them at once.
        let pause = started.elapsed().min(MAX_ROUND_PAUSE);
        if pause >= MIN_ROUND_PAUSE {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// One round: register, decide, commit, act, push.
async fn round(ctx: &Arc<MonitorContext>, ecfg: &Arc<EngineConfig>, l: &mut Leadership) {
    let state = ctx.consensus.state();
    if l.startup.is_none() && state.active_master.is_none() {
        l.startup = Some(gather_startup(ctx).await);
    }
    l.errant.poll(ctx, &state);
    let input = gather_input(ctx, ecfg, l, &state);
    let out = engine::decide(&state, &input, ecfg);
    let committed = commit_round(ctx, out.proposals).await;
    let (state, epoch) = ctx.consensus.state_and_epoch();
    let mut logged = std::collections::BTreeSet::new();
    for action in out.actions {
        if !committed {
            break;
        }
        if let Action::Log { host, message, .. } = &action {
            let key = (host.clone(), message.clone());
            let repeated = l.logged.contains(&key);
            logged.insert(key);
            if repeated {
                continue;
            }
        }
        act(ctx, l, &state, action);
    }
    l.logged = logged;
    push_all(ctx, ecfg, &l.pusher, &state, epoch, false);
    crate::hooks::run_pending(ctx, &l.hooks_running);
}

/// The lease renewal path of one leadership: independent of the round (whose commits and hooks may
/// take seconds), it renews the committed writer's lease when it is due. The epoch pushed is the log
/// id of the last applied entry read together with the state (new leaders commit a blank entry at
/// their term first, so every leader's epochs are higher than its predecessors').
async fn renew_loop(ctx: Arc<MonitorContext>, ecfg: Arc<EngineConfig>, pusher: Pusher) {
    let mut tick = tokio::time::interval(RENEW_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !ctx.consensus.is_leader() {
            continue;
        }
        let (state, epoch) = ctx.consensus.state_and_epoch();
        push_all(&ctx, &ecfg, &pusher, &state, epoch, true);
    }
}

/// Commits a round's proposals in order: each run of ordinary decisions as one log entry, and a
/// failover start that `pre_failover` must allow on its own after the decisions before it. Returns
/// false when one was vetoed, refused or not committed; the rest of the round is then dropped.
async fn commit_round(ctx: &MonitorContext, proposals: Vec<Request>) -> bool {
    let mut run = Vec::new();
    for p in proposals {
        if crate::hooks::needs_pre_failover(ctx, &p) {
            if !commit_run(ctx, std::mem::take(&mut run)).await
                || !crate::hooks::pre_failover_allows(ctx, &p).await
                || !commit(ctx, p).await
            {
                return false;
            }
        } else {
            run.push(p);
        }
    }
    commit_run(ctx, run).await
}

/// Commits decisions as one log entry (a single one as itself).
async fn commit_run(ctx: &MonitorContext, mut run: Vec<Request>) -> bool {
    match run.len() {
        0 => true,
        1 => commit(ctx, run.remove(0)).await,
        n => {
            let req = Request {
                time_ms: run[0].time_ms,
                reason: format!("{n} decisions of one round"),
                command: Command::Round(run),
            };
            commit(ctx, req).await
        }
    }
}

/// Commits one proposal; logs and returns false when it was not committed or refused.
async fn commit(ctx: &MonitorContext, req: Request) -> bool {
    let reason = req.reason.clone();
    let started = Instant::now();
    let result = ctx.consensus.write_with_timeout(req, COMMIT_TIMEOUT).await;
    if started.elapsed() > SLOW_COMMIT {
        // Lease renewals do not wait for this (they have a path of their own); said for the operator.
        tracing::warn!(took = ?started.elapsed(), reason = %reason, "slow commit");
    }
    match result {
        Ok(resp) => match resp.error {
            None => true,
            Some(e) => {
                tracing::error!(error = %e, reason = %reason, "decision refused on apply");
                false
            }
        },
        Err(e) => {
            tracing::error!(error = %e, reason = %reason, "decision not committed");
            false
        }
    }
}

/// Asks every agent what it sees (writable? writer VIP?), to find the current writer of a new cluster.
async fn gather_startup(ctx: &MonitorContext) -> StartupEvidence {
    let writer_ips: Vec<String> = ctx
        .config
        .writer_role()
        .map(|r| r.ips.iter().map(|ip| ip.to_string()).collect())
        .unwrap_or_default();
    let calls = ctx.config.hosts.keys().map(|host| {
        let host = host.clone();
        async move {
            (
                host.clone(),
                ctx.agents
                    .system_status(&host, Duration::from_secs(1))
                    .await,
            )
        }
    });
    let mut ev = StartupEvidence {
        complete: true,
        ..Default::default()
    };
    for (host, r) in futures::future::join_all(calls).await {
        match r {
            Ok(s) => {
                if s.mysql_reachable && !s.read_only {
                    ev.writable.insert(host.clone());
                }
                if s.vips.iter().any(|v| writer_ips.contains(v)) {
                    ev.holds_writer_vip.insert(host);
                }
            }
            Err(e) => {
                tracing::info!(host, error = %e, "startup: agent not reachable");
                ev.complete = false;
            }
        }
    }
    tracing::info!(writable = ?ev.writable, writer_vip = ?ev.holds_writer_vip, complete = ev.complete, "startup evidence");
    ev
}

fn gather_input(
    ctx: &MonitorContext,
    ecfg: &EngineConfig,
    l: &mut Leadership,
    state: &ClusterState,
) -> Input {
    let now = now_ms();
    let fresh = ctx.reports.fresh(Duration::from_millis(ecfg.report_ttl_ms));
    let reports = fresh
        .into_iter()
        .map(|(name, r)| {
            let received_ms = now.saturating_sub(r.received.elapsed().as_millis() as u64);
            (
                name,
                crate::convert::report_from_proto(&r.report, received_ms),
            )
        })
        .collect();
    let tracks = lock(&l.pusher.tracks).clone();
    let mono_now = Instant::now();
    l.lease_wake = None;
    let agents = ctx
        .config
        .hosts
        .keys()
        .map(|host| {
            let health = ctx.agents.health(host);
            let t = tracks.get(host).cloned().unwrap_or_default();
            let holds_writer = state.active_master.as_deref() == Some(host.as_str());
            let old_writer = state
                .failover
                .as_ref()
                .is_some_and(|f| f.from.as_deref() == Some(host.as_str()));
            if health.reachable && health.writable {
                l.writable_seen.insert(host.clone(), mono_now);
            }
            // The rule's time runs only while the active master holds the writer IPs: without them
            // its agent keeps it read-only by design (the role was taken away, e.g. when its mysqld
            // died with no one to take over), and the time starts again when it gets them back.
            let owns_writer_ips = holds_writer && engine::holds_writer_ips(state, ecfg, host);
            let not_writable_ms = if owns_writer_ips {
                let active_since = match &l.active_seen {
                    Some((h, t)) if h == host => *t,
                    _ => {
                        l.active_seen = Some((host.clone(), mono_now));
                        mono_now
                    }
                };
                let seen = l
                    .writable_seen
                    .get(host)
                    .copied()
                    .map_or(active_since, |w| w.max(active_since));
                mono_now.saturating_duration_since(seen).as_millis() as u64
            } else {
                if l.active_seen.as_ref().is_some_and(|(h, _)| h == host) {
                    l.active_seen = None;
                }
                0
            };
            // The writer's lease may have been renewed by the previous leader up to the moment this
            // one took over, and by this one up to its last send; counted on this monitor's monotonic
            // clock and handed to the engine as a time of this round's clock.
            let lease_expires_ms = (holds_writer || old_writer).then(|| {
                let over = lease_over_at(&l.pusher.bounds, l.since, t.lease_counted_from);
                if old_writer {
                    l.lease_wake = (over > mono_now).then_some(over);
                }
                now + over.saturating_duration_since(mono_now).as_millis() as u64
            });
            (
                host.clone(),
                AgentFacts {
                    reachable: health.reachable,
                    acked_epoch: t.acked_epoch,
                    demotion_acked_epoch: t.demotion_acked_epoch,
                    demoted_gtid: t.demoted_gtid.clone(),
                    writable: acts_as_writer(&health, Some(&t)),
                    holds_writer_vip: holds_writer,
                    lease_expires_ms,
                    caught_up_for: t.caught_up_for,
                    caught_up_from: t.caught_up_from.clone(),
                    rejoined: t.rejoined.clone(),
                    repointed_to: t.repointed_to.clone(),
                    gtid_errant: l.errant.errant(host),
                    errant_unchecked: l.errant.unchecked(state, host),
                    kill_host_ok_at: t.kill_host_ok_at,
                    writer_settings_missing: t.settings_missing.clone(),
                    writer_async: t.writer_async,
                    not_writable_ms,
                    position: health.position.as_ref().filter(|_| health.reachable).map(
                        |(gtid, since)| ReportedPosition {
                            gtid: gtid.clone(),
                            unchanged_ms: mono_now.saturating_duration_since(*since).as_millis()
                                as u64,
                        },
                    ),
                },
            )
        })
        .collect();
    Input {
        now_ms: now,
        leader: ctx.name.clone(),
        monitors_total: ctx.config.monitor_nodes.len().max(1),
        reports,
        agents,
        startup: l.startup.clone(),
    }
}

fn act(ctx: &Arc<MonitorContext>, l: &Leadership, _state: &ClusterState, action: Action) {
    match action {
        Action::PushStatus { .. } => {
            // `push_all` sends every status the engine allows that changed or is due for renewal
            // (the same rule, `engine::push_allowed`, on the committed state); an unchanged,
            // acknowledged status is not sent again (the engine names every host every round).
        }
        Action::WaitCatchUp { .. } => {
            // The candidate's status asks it to catch up (`DesiredStatus::catch_up`); its reply says
            // when it did (`record_push`), which lets the next round take the next step.
        }
        Action::Repoint { host, master, .. } => {
            if let Some(t) = lock(&l.pusher.tracks).get_mut(&host) {
                t.acked_status = None;
                t.repointed_to = None;
            }
            tracing::info!(host, master, "re-pointing replica");
        }
        Action::RunKillHost { host, epoch } => {
            let Some(bin) = ctx.config.monitor.kill_host_bin.clone() else {
                return;
            };
            let tracks = Arc::clone(&l.pusher.tracks);
            let timeout = ctx.config.monitor.hook_timeout;
            tokio::spawn(async move {
                let run = tokio::process::Command::new(&bin)
                    .arg(&host)
                    .kill_on_drop(true)
                    .output();
                match tokio::time::timeout(timeout, run).await {
                    Ok(Ok(out)) if out.status.success() => {
                        tracing::warn!(host, bin = %bin.display(), "kill_host_bin succeeded");
                        lock(&tracks).entry(host).or_default().kill_host_ok_at = Some(epoch);
                    }
                    Ok(Ok(out)) => {
                        tracing::error!(host, status = %out.status, stderr = %String::from_utf8_lossy(&out.stderr), "kill_host_bin failed")
                    }
                    Ok(Err(e)) => tracing::error!(host, error = %e, "kill_host_bin could not run"),
                    Err(_) => tracing::error!(host, ?timeout, "kill_host_bin timed out"),
                }
            });
        }
        Action::Log {
            level,
            host,
            message,
        } => match level {
            engine::LogLevel::Info => tracing::info!(host = ?host, "{message}"),
            engine::LogLevel::Warn => tracing::warn!(host = ?host, "{message}"),
            engine::LogLevel::Error => tracing::error!(host = ?host, "{message}"),
        },
    }
}

/// Pushes to every agent whose committed status it has not acknowledged, and renews the writer's
/// lease (and re-asserts everyone's status) every third of a lease. Only what the engine allows is
/// sent ([`may_push`]: in passive mode, the committed writer's renewal alone). `writer_only`: the
/// renewal task's call, which looks at the writer alone.
fn push_all(
    ctx: &Arc<MonitorContext>,
    ecfg: &Arc<EngineConfig>,
    p: &Pusher,
    state: &ClusterState,
    epoch: Epoch,
    writer_only: bool,
) {
    let renew_every = Duration::from_millis(ecfg.writer_lease_ms / 3);
    let confirmed = p
        .bounds
        .may_renew(ctx.consensus.leadership_confirmed_within());
    for host in ctx.config.hosts.keys() {
        let mut desired = engine::agent_status_for(state, host, ecfg);
        if writer_only && !desired.writer {
            continue;
        }
        // Nothing is decided about this host yet (no active master, state UNKNOWN, no role): such a
        // status would only tell its agent "not the writer" and fence a running writer that the
        // startup is about to adopt (a writer kept through the migration from MMM). Its agent needs
        // no push to be safe: it starts fenced unless it holds a lease kept in mysqld.
        if state.active_master.is_none()
            && desired.state == mmm_consensus::HostState::Unknown
            && desired.roles.is_empty()
        {
            continue;
        }
        let health = ctx.agents.health(host);
        let held = {
            let mut tracks = lock(&p.tracks);
            let t = tracks.get(host);
            if !may_push(state, &desired, &health, t) {
                continue;
            }
            if let Some(applied) = passive_renewal(state, t) {
                desired = applied;
            }
            let changed = t.and_then(|t| t.acked_status.as_ref()) != Some(&desired)
                || t.and_then(|t| t.acked_epoch)
                    .is_none_or(|e| e < state.last_epoch);
            let stale = t
                .and_then(|t| t.acked_at)
                .is_none_or(|a| a.elapsed() >= renew_every);
            let reconnected = t.is_some_and(|t| t.pushed_connection != health.connections);
            if changed || stale || reconnected {
                tracing::debug!(
                    host,
                    changed,
                    stale,
                    reconnected,
                    acked_epoch = ?t.and_then(|t| t.acked_epoch),
                    last_epoch = %state.last_epoch,
                    "status due"
                );
            }
            if !(changed || stale || reconnected) || t.is_some_and(|t| t.in_flight) {
                continue;
            }
            let stamp_age = t
                .and_then(|t| freshest_stamp(health.stamp, t.reply_stamp))
                .or(health.stamp)
                .map(|(_, at)| at.elapsed());
            // Not renewed into silence (`crate::lease`): the next stamp, if one comes, renews.
            let held = p.bounds.holds_renewal(desired.writer, changed, stamp_age);
            if let Some(t) = tracks.get_mut(host).filter(|t| t.renewal_held != held) {
                t.renewal_held = held;
                if held {
                    tracing::info!(host, stamp_age_ms = ?stamp_age.map(|a| a.as_millis() as u64),
                        "writer lease renewal held: no recent stamp from the writer's agent");
                } else if desired.writer {
                    tracing::info!(
                        host,
                        "writer lease renewals resume: the writer's agent is heard again"
                    );
                }
            }
            held
        };
        if held {
            continue;
        }
        if releases_hold_too_early(p, state, host, &desired) {
            continue;
        }
        if desired.writer && !confirmed {
            // Without a quorum's confirmation this node may no longer be the leader: renew nothing.
            continue;
        }
        let (failed_at, backoff_from) =
            lock(&p.tracks)
                .get(host)
                .filter(|t| t.unreachable)
                .map_or((None, None), |t| {
                    (
                        t.unreachable_since,
                        t.last_failed_push
                            .map(|at| (at, push_backoff(t.failed_pushes))),
                    )
                });
        let apply_backoff = lock(&p.tracks).get(host).and_then(|t| {
            let same = t.errored_status.as_ref() == Some(&desired);
            t.last_failed_apply
                .filter(|_| same && !desired.writer)
                .map(|at| (at, push_backoff(t.failed_applies)))
        });
        if apply_backoff.is_some_and(|(at, wait)| at.elapsed() < wait) {
            continue;
        }
        let heard_since = |at: Instant| health.last_event.is_some_and(|e| e > at);
        if desired.writer && failed_at.is_some_and(|at| !heard_since(at)) {
            continue;
        }
        if backoff_from.is_some_and(|(at, wait)| at.elapsed() < wait && !heard_since(at)) {
            continue;
        }
        spawn_push(
            ctx,
            p,
            host.clone(),
            desired,
            epoch,
            ecfg.writer_lease_ms,
            &health,
        );
    }
}

/// Whether the agent acts as the writer: its health stream or its last reply said it holds the
/// writer role with a valid lease.
fn acts_as_writer(health: &crate::agents::AgentHealth, track: Option<&AgentTrack>) -> bool {
    health.writable || track.is_some_and(|t| t.writable)
}

/// Whether `desired` may be sent to the agent at all: the engine's rule ([`engine::push_allowed`]: in
/// passive mode only the renewals of the committed writer that still acts as one), applied to the
/// state being pushed, so the round and the renewal task send nothing the engine would not.
fn may_push(
    state: &ClusterState,
    desired: &DesiredStatus,
    health: &crate::agents::AgentHealth,
    track: Option<&AgentTrack>,
) -> bool {
    engine::push_allowed(state, desired, acts_as_writer(health, track))
}

/// In passive mode, what a renewal sends: the status the writer's agent last acknowledged, with a new
/// lease only, so that changes an operator makes while passive (`set_ip` of a reader IP away from the
/// writer) wait for the cluster to leave passive mode like every other agent's. `None` outside passive
/// mode, or when this leadership has no acknowledged writer status (a new leader sends the committed
/// one).
fn passive_renewal(state: &ClusterState, track: Option<&AgentTrack>) -> Option<DesiredStatus> {
    if state.mode != mmm_consensus::Mode::Passive {
        return None;
    }
    track?.acked_status.clone().filter(|s| s.writer)
}

/// True while the status that ends `host`'s hold on writes (the old writer of a planned switchover)
/// should wait: the held client sessions are killed on release, and reconnect at once, so they must
/// find the writer VIP already on the new writer — unless the old writer's agent refuses the VIP it
/// gives up (`mmm_agent::firewall`): then a reconnect is reset at once and retried until the new
/// writer's announcement arrives, and waiting would only lengthen the hold. The wait is bounded by
/// [`HOLD_RELEASE_WAIT`].
fn releases_hold_too_early(
    p: &Pusher,
    state: &ClusterState,
    host: &str,
    desired: &DesiredStatus,
) -> bool {
    if desired.hold_writes {
        return false;
    }
    let tracks = lock(&p.tracks);
    let Some(since) = tracks
        .get(host)
        .filter(|t| !t.refuses_given_up_vips)
        .and_then(|t| t.writes_held_since)
    else {
        return false;
    };
    let Some(writer) = desired.active_master.as_deref().filter(|w| *w != host) else {
        return false;
    };
    let writer_open = tracks
        .get(writer)
        .is_some_and(|t| t.writable && t.acked_epoch.is_some_and(|e| e >= state.last_epoch));
    !writer_open && since.elapsed() < HOLD_RELEASE_WAIT
}

/// How long to wait before pushing again to an agent after `failures` pushes in a row did not reach
/// it: 100 ms, doubling up to a second.
fn push_backoff(failures: u32) -> Duration {
    let first = PUSH_BACKOFF_MIN.as_millis() as u64;
    let ms = first.saturating_mul(1 << failures.saturating_sub(1).min(10));
    Duration::from_millis(ms).min(PUSH_BACKOFF_MAX)
}

/// The freshest stamp of the agent's newest run, from its health stream or its last reply.
fn freshest_stamp(
    stream: Option<(LeaseStamp, Instant)>,
    reply: Option<(LeaseStamp, Instant)>,
) -> Option<(LeaseStamp, Instant)> {
    match (stream, reply) {
        (Some((a, at)), Some((b, bt))) => Some(if a.boot_id == b.boot_id {
            if a.seq >= b.seq {
                (a, at)
            } else {
                (b, bt)
            }
        } else if at >= bt {
            (a, at)
        } else {
            (b, bt)
        }),
        (a, b) => a.or(b),
    }
}

/// Sends `desired` to `host`'s agent in the background; `health` is what its health stream said last
/// (a later reconnect makes the status due again; its stamp may name the lease's start).
fn spawn_push(
    ctx: &Arc<MonitorContext>,
    p: &Pusher,
    host: String,
    desired: DesiredStatus,
    epoch: Epoch,
    lease_ms: u64,
    health: &crate::agents::AgentHealth,
) {
    let tracks = Arc::clone(&p.tracks);
    let pushed = Arc::clone(&p.pushed);
    let stamp = {
        let mut t = lock(&tracks);
        let t = t.entry(host.clone()).or_default();
        t.in_flight = true;
        t.pushed_connection = health.connections;
        let stamp = desired
            .writer
            .then(|| freshest_stamp(health.stamp, t.reply_stamp))
            .flatten();
        if desired.writer {
            // The agent counts this lease from the stamp, which it made before this monitor received
            // it: the estimate counts from its receipt (from now without a stamp). The latest such
            // time over every renewal sent bounds the agent's lease, which only grows.
            let from = stamp.map_or_else(Instant::now, |(_, received)| received);
            t.lease_counted_from = Some(t.lease_counted_from.map_or(from, |p| p.max(from)));
            ctx.metrics.lease_sent(now_ms(), lease_ms);
        }
        stamp.map(|(s, _)| s)
    };
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        let req = SetStatusRequest {
            protocol_version: mmm_proto::PROTOCOL_VERSION,
            host: host.clone(),
            epoch: Some(mmm_proto::Epoch {
                term: epoch.term,
                index: epoch.index,
            }),
            state: host_state_to_proto(desired.state) as i32,
            roles: desired
                .roles
                .iter()
                .map(|(role, ip)| RoleIp {
                    role: role.clone(),
                    ip: ip.clone(),
                })
                .collect(),
            active_master: desired.active_master.clone().unwrap_or_default(),
            lease_millis: if desired.writer { lease_ms } else { 0 },
            monitor: String::new(),
            catchup_timeout_millis: PUSH_TIMEOUT.as_millis() as u64 - 500,
            hold_writes: desired.hold_writes,
            lease_stamp: stamp,
            catch_up: desired.catch_up.is_some(),
            catch_up_gtid: desired
                .catch_up
                .as_ref()
                .map(|(_, g)| g.clone())
                .unwrap_or_default(),
            cluster_id: desired.cluster_id.clone(),
            isolate_from: desired.isolate_from.clone(),
            hard_offline: desired.hard_offline.clone(),
            rejoin_errant: desired.rejoin.clone().unwrap_or_default(),
        };
        let started = Instant::now();
        let result = ctx.agents.set_status(req, PUSH_TIMEOUT).await;
        ctx.metrics.push_took(started.elapsed());
        // An acknowledged status may let a failover take its next step at once; a push that
        // failed changes nothing the next tick would not see.
        let acknowledged = result.is_ok();
        record_push(&ctx, &tracks, &host, desired, epoch, result);
        if acknowledged {
            pushed.notify_one();
        }
    });
}

/// Records the outcome of one push in the host's track.
fn record_push(
    ctx: &MonitorContext,
    tracks: &Mutex<BTreeMap<String, AgentTrack>>,
    host: &str,
    desired: DesiredStatus,
    epoch: Epoch,
    result: Result<mmm_proto::AgentStatus, tonic::Status>,
) {
    let mut tracks = lock(tracks);
    let t = tracks.entry(host.to_string()).or_default();
    t.in_flight = false;
    let was_unreachable = t.unreachable;
    t.unreachable = matches!(
        &result,
        Err(e) if matches!(
            e.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown
        )
    );
    if t.unreachable && !was_unreachable {
        t.unreachable_since = Some(Instant::now());
    }
    if t.unreachable {
        t.failed_pushes = t.failed_pushes.saturating_add(1);
        t.last_failed_push = Some(Instant::now());
    } else {
        t.failed_pushes = 0;
    }
    match result {
        Ok(status) => {
            if let Some(stamp) = status.stamp {
                t.reply_stamp = Some((stamp, Instant::now()));
            }
            let missing = (!status.writer_settings_missing.is_empty())
                .then(|| status.writer_settings_missing.clone());
            if missing != t.settings_missing {
                if let Some(m) = &missing {
                    tracing::error!(host, missing = %m, "host misses server settings required for the writer role: it is not made the writer");
                }
                t.settings_missing = missing;
            }
            if desired.writer {
                if status.semi_sync_off != t.writer_async {
                    if status.semi_sync_off {
                        tracing::warn!(host, "the writer runs without semi-synchronous acknowledgements (semi-sync status OFF, or no semi-sync replica connected): writes it acknowledges may exist on it alone");
                    } else {
                        tracing::info!(
                            host,
                            "the writer's commits wait for semi-synchronous acknowledgements again"
                        );
                    }
                }
                t.writer_async = status.semi_sync_off;
            } else {
                t.writer_async = false;
            }
            if !status.last_error.is_empty() {
                tracing::warn!(host, epoch = %epoch, error = %status.last_error, "agent applied the status with an error");
                t.last_error = Some(status.last_error.clone());
                t.failed_applies = if t.errored_status.as_ref() == Some(&desired) {
                    t.failed_applies.saturating_add(1)
                } else {
                    1
                };
                t.last_failed_apply = Some(Instant::now());
                t.errored_status = Some(desired);
                // Not acknowledged as applied: pushed again after a backoff.
                return;
            }
            t.failed_applies = 0;
            t.errored_status = None;
            if t.last_error.take().is_some() || t.acked_status.as_ref() != Some(&desired) {
                tracing::info!(host, epoch = %epoch, state = %desired.state, roles = ?desired.roles, active_master = ?desired.active_master, "agent applied status");
            }
            t.acked_epoch = Some(epoch);
            t.acked_at = Some(Instant::now());
            if !desired.writer && t.demotion_acked_epoch.is_none_or(|e| e <= epoch) {
                t.demotion_acked_epoch = Some(epoch);
                t.demoted_gtid =
                    (!status.gtid_binlog_pos.is_empty()).then(|| status.gtid_binlog_pos.clone());
            }
            if let (Some((started, target)), true) = (&desired.catch_up, status.caught_up) {
                tracing::info!(host, epoch = %epoch, target = %target, fetched_from_peers = %status.caught_up_from, "failover candidate caught up");
                t.caught_up_for = Some(*started);
                t.caught_up_from = status.caught_up_from.clone();
            }
            let rejoined = (!status.rejoined_errant.is_empty()).then(|| {
                (
                    status.rejoined_errant.clone(),
                    status.rejoin_saved_to.clone(),
                )
            });
            if rejoined.is_some() && rejoined != t.rejoined {
                tracing::info!(host, epoch = %epoch, errant = %status.rejoined_errant, saved_to = %status.rejoin_saved_to, "agent undid its errant transactions (automatic rejoin)");
            }
            t.rejoined = rejoined;
            t.writable = desired.writer && !status.lease_expired;
            t.refuses_given_up_vips = status.refuses_given_up_vips;
            t.writes_held_since = match (status.writes_held, t.writes_held_since) {
                (true, since) => since.or_else(|| Some(Instant::now())),
                (false, _) => None,
            };
            if desired.active_master.is_some() {
                t.repointed_to = desired.active_master.clone();
            }
            t.acked_status = Some(desired);
        }
        Err(e) => {
            ctx.metrics
                .agent_push_errors_total
                .get_or_create(&crate::metrics::HostLabel {
                    host: host.to_string(),
                })
                .inc();
            if t.last_error.as_deref() != Some(e.message()) {
                tracing::warn!(host, epoch = %epoch, error = %e.message(), "status push failed");
            }
            t.last_error = Some(e.message().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(writer: bool) -> DesiredStatus {
        DesiredStatus {
            state: mmm_consensus::HostState::Online,
            roles: Vec::new(),
            active_master: Some("db1".into()),
            writer,
            hold_writes: false,
            cluster_id: String::new(),
            catch_up: None,
            isolate_from: Vec::new(),
            hard_offline: Vec::new(),
            rejoin: None,
        }
    }

    #[test]
    fn a_renewal_names_the_freshest_stamp_and_counts_from_its_receipt() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let st = |boot_id: u64, seq: u64| LeaseStamp { boot_id, seq };
        let cases = [
            // (stream, reply, chosen)
            (None, None, None),
            (Some((st(1, 5), at(10))), None, Some((st(1, 5), at(10)))),
            (None, Some((st(1, 5), at(10))), Some((st(1, 5), at(10)))),
            // Same run: the higher sequence number, with the time it was received.
            (
                Some((st(1, 7), at(30))),
                Some((st(1, 9), at(20))),
                Some((st(1, 9), at(20))),
            ),
            // Another run (the agent restarted): the one received last.
            (
                Some((st(2, 1), at(40))),
                Some((st(1, 9), at(20))),
                Some((st(2, 1), at(40))),
            ),
        ];
        for (stream, reply, want) in cases {
            assert_eq!(freshest_stamp(stream, reply), want, "{stream:?} {reply:?}");
        }
    }

    #[test]
    fn passive_mode_pushes_only_renewals_of_a_writer_that_acts_as_one() {
        let mut state = ClusterState::default();
        let healthy_writer = crate::agents::AgentHealth {
            writable: true,
            ..Default::default()
        };
        let silent = crate::agents::AgentHealth::default();
        let replied_writable = AgentTrack {
            writable: true,
            ..Default::default()
        };
        // (mode, status says writer, health stream says writable, last reply said writable, pushed)
        let rows = [
            (mmm_consensus::Mode::Active, false, false, false, true),
            (mmm_consensus::Mode::Active, true, false, false, true),
            (mmm_consensus::Mode::Manual, false, false, false, true),
            (mmm_consensus::Mode::Passive, true, true, false, true),
            (mmm_consensus::Mode::Passive, true, false, true, true),
            (mmm_consensus::Mode::Passive, true, false, false, false),
            (mmm_consensus::Mode::Passive, false, true, true, false),
            (mmm_consensus::Mode::Passive, false, false, false, false),
        ];
        for (i, (mode, writer, stream, reply, expect)) in rows.into_iter().enumerate() {
            state.mode = mode;
            let health = if stream { &healthy_writer } else { &silent };
            let track = reply.then_some(&replied_writable);
            assert_eq!(
                may_push(&state, &status(writer), health, track),
                expect,
                "row {i}"
            );
        }
    }

    #[test]
    fn a_passive_renewal_resends_what_the_writer_applied() {
        let mut state = ClusterState::default();
        let mut applied = status(true);
        applied.roles = vec![("reader".into(), "10.0.0.101".into())];
        let track = AgentTrack {
            acked_status: Some(applied.clone()),
            ..Default::default()
        };
        state.mode = mmm_consensus::Mode::Passive;
        assert_eq!(passive_renewal(&state, Some(&track)), Some(applied.clone()));
        assert_eq!(passive_renewal(&state, None), None, "a new leader");
        let demoted = AgentTrack {
            acked_status: Some(status(false)),
            ..Default::default()
        };
        assert_eq!(passive_renewal(&state, Some(&demoted)), None);
        state.mode = mmm_consensus::Mode::Active;
        assert_eq!(passive_renewal(&state, Some(&track)), None);
    }

    #[test]
    fn pushes_to_an_unreachable_agent_back_off_to_a_second() {
        let ms = |n| push_backoff(n).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(4)], [100, 200, 400, 800]);
        assert_eq!(ms(5), 1000);
        assert_eq!(ms(u32::MAX), 1000);
    }
}
