//! Runs the checks of every host and keeps their results.
//!
//! Two tasks per host: one pings, one runs the MySQL checks over the host's kept connection. Every
//! MySQL check runs every `check_period` with its own `timeout`, so a slow or hung host delays only its
//! own checks; the ping probes more often (`ping::probe_interval`: a fortieth of `trap_period`, within
//! a budget of echoes a second), probes overlapping. A third task pings `ping_ips` every
//! `ping_interval` (the network self-check).
//! Every change of a status bumps a `watch` counter so the leader loop and the reporter react at
//! once rather than on their next period.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mmm_config::{Checks, Config};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::mysql::{self, MysqlProbe};
use super::ping::{self, Icmp, PING_TIMEOUT};
use super::status::{CheckOutcome, CheckStatus, CheckTrack};

/// Index of each check in [`Checks::NAMES`].
const PING: usize = 0;
const MYSQL: usize = 1;
const REP_THREADS: usize = 2;
const REP_BACKLOG: usize = 3;

/// One (host, check) as seen now: what `mmmctl checks`, the metrics and the reports show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSnapshot {
    /// Host name (`<host NAME>`).
    pub host: String,
    /// Check name (`ping`, `mysql`, `rep_threads`, `rep_backlog`).
    pub check: String,
    /// Status of the latest run.
    pub status: CheckStatus,
    /// How long `status` has lasted (the leader applies `trap_period` to this).
    pub lasted: Duration,
    /// Unix seconds of the last change of `counted_ok` (MMM's "last change").
    pub last_change_unix: i64,
    /// Message of the latest run, without the `OK: `/`ERROR: ` prefix.
    pub message: String,
    /// The status after `trap_period`: failures count once they lasted it, recoveries at once.
    pub counted_ok: bool,
}

/// Called with (host, check name, duration) after every check run (the metrics' histogram).
pub type DurationObserver = Box<dyn Fn(&str, &str, Duration) + Send + Sync>;

/// A host to check: address and MySQL account.
#[derive(Debug, Clone)]
pub struct HostTarget {
    /// Host name (`<host NAME>`).
    pub name: String,
    /// Address pinged and connected to.
    pub ip: IpAddr,
    /// MySQL port.
    pub mysql_port: u16,
    /// `monitor_user`.
    pub user: String,
    /// `monitor_password`.
    pub password: String,
}

/// The running checks of every host and their results.
pub struct Checker {
    /// Results by (host, index in [`Checks::NAMES`]); kept in host then MMM check order.
    tracks: Mutex<BTreeMap<(String, usize), CheckTrack>>,
    /// Result of the latest network self-check.
    network_ok: AtomicBool,
    /// Bumped on every change of a status or a counted status, and of `network_ok`.
    changes: watch::Sender<u64>,
    /// Monotonic zero of `CheckTrack`'s millisecond times.
    started: Instant,
    /// Timing of each check (`trap_period` is applied here).
    checks: Checks,
    /// Told how long every check run took; set once, by the metrics.
    durations: OnceLock<DurationObserver>,
}

impl Checker {
    /// Starts checking every `<host>` of `cfg` and the monitor's `ping_ips`, until `shutdown`
    /// turns true or its sender is dropped. Must be called inside a tokio runtime.
    pub fn start(cfg: &Config, shutdown: watch::Receiver<bool>) -> Arc<Checker> {
        let targets = cfg
            .hosts
            .values()
            .map(|h| HostTarget {
                name: h.name.clone(),
                ip: h.ip,
                mysql_port: h.mysql_port,
                user: h.monitor_user.clone(),
                password: h.monitor_password.expose().to_string(),
            })
            .collect();
        Self::start_with(
            targets,
            cfg.checks,
            cfg.monitor.ping_ips.clone(),
            cfg.monitor.ping_interval,
            shutdown,
        )
    }

    /// Like [`Checker::start`] with the parts of the configuration it uses.
    pub fn start_with(
        targets: Vec<HostTarget>,
        checks: Checks,
        ping_ips: Vec<IpAddr>,
        ping_interval: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Checker> {
        let checker = Arc::new(Checker {
            tracks: Mutex::new(BTreeMap::new()),
            network_ok: AtomicBool::new(true),
            changes: watch::Sender::new(0),
            started: Instant::now(),
            checks,
            durations: OnceLock::new(),
        });
        let icmp = Arc::new(Icmp::open());
        tracing::info!(
            hosts = targets.len(),
            ping_ips = ping_ips.len(),
            "checks starting"
        );
        let hosts = targets.len();
        for t in targets {
            tokio::spawn(ping_loop(
                Arc::clone(&checker),
                Arc::clone(&icmp),
                t.clone(),
                ping::probe_interval(&checks.ping, hosts),
                checks.ping.timeout.min(PING_TIMEOUT),
                shutdown.clone(),
            ));
            tokio::spawn(mysql_loop(
                Arc::clone(&checker),
                t,
                checks,
                shutdown.clone(),
            ));
        }
        if !ping_ips.is_empty() {
            tokio::spawn(network_loop(
                Arc::clone(&checker),
                icmp,
                ping_ips,
                ping_interval,
                shutdown,
            ));
        }
        checker
    }

    /// Every (host, check) that has run at least once, sorted by host, then in MMM's check order.
    pub fn snapshot(&self) -> Vec<CheckSnapshot> {
        let now_ms = self.now_ms();
        let tracks = self.tracks.lock().unwrap_or_else(|p| p.into_inner());
        tracks
            .iter()
            .map(|((host, idx), t)| CheckSnapshot {
                host: host.clone(),
                check: Checks::NAMES[*idx].to_string(),
                status: t.status,
                lasted: t.lasted(now_ms),
                last_change_unix: t.last_change_unix,
                message: t.message.clone(),
                counted_ok: t.counted_ok,
            })
            .collect()
    }

    /// Result of the latest network self-check (true until one failed; true without `ping_ips`).
    pub fn network_ok(&self) -> bool {
        self.network_ok.load(Ordering::Relaxed)
    }

    /// Sets the observer of check durations (only the first call counts).
    pub fn on_duration(&self, f: DurationObserver) {
        let _ = self.durations.set(f);
    }

    /// Reports how long a run of `check` (an index in [`Checks::NAMES`]) on `host` took.
    fn took(&self, host: &str, check: usize, d: Duration) {
        if let (Some(f), Some(name)) = (self.durations.get(), Checks::NAMES.get(check)) {
            f(host, name, d);
        }
    }

    /// A counter that changes whenever any status, counted status or `network_ok` changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Takes a result of `check` (an index in [`Checks::NAMES`]) on `host` into account.
    pub fn record(&self, host: &str, check: usize, outcome: CheckOutcome) {
        let Some(name) = Checks::NAMES.get(check) else {
            return;
        };
        let trap = self
            .checks
            .get(name)
            .map_or(Duration::ZERO, |c| c.trap_period);
        let now_ms = self.now_ms();
        let now_unix = unix_now();
        let mut tracks = self.tracks.lock().unwrap_or_else(|p| p.into_inner());
        let changed = match tracks.get_mut(&(host.to_string(), check)) {
            Some(t) => {
                let was_ok = t.counted_ok;
                let c = t.record(&outcome, now_ms, now_unix, trap);
                if c.any() {
                    tracing::info!(host, check = *name, status = outcome.status.as_str(), counted_ok = t.counted_ok,
                        was_ok, message = %outcome.message, "check changed");
                }
                c.any()
            }
            None => {
                let t = CheckTrack::new(&outcome, now_ms, now_unix, trap);
                tracing::info!(host, check = *name, status = outcome.status.as_str(), counted_ok = t.counted_ok,
                    message = %outcome.message, "first check result");
                tracks.insert((host.to_string(), check), t);
                true
            }
        };
        drop(tracks);
        if changed {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Milliseconds since the checker started (monotonic).
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Wall-clock Unix seconds.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A random start within `period` (at most 1 s), so a thousand hosts do not all check at once.
fn first_due(period: Duration) -> Instant {
    let spread = period.min(Duration::from_secs(1)).as_millis() as u64;
    let offset = if spread == 0 {
        0
    } else {
        rand::random::<u64>() % spread
    };
    Instant::now() + Duration::from_millis(offset)
}

/// True once shutdown is asked for (or nobody can ask any more).
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Pings one host every [`ping::probe_interval`]. Probes overlap (one sent while the host answers no
/// more does not wait for the one before to time out), so a probe goes out every interval whatever the
/// timeout; an answer older than one already recorded (a slow reply overtaken by a later probe's) is
/// dropped, so the newest evidence counts. Each probe waits at most `timeout` for its answer.
async fn ping_loop(
    checker: Arc<Checker>,
    icmp: Arc<Icmp>,
    host: HostTarget,
    every: Duration,
    timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval_at(first_due(every), every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let icmp = &*icmp;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut newest_recorded: Option<Instant> = None;
    while !stopping(&stop) {
        tokio::select! {
            _ = tick.tick() => {
                let began = Instant::now();
                let ip = host.ip;
                in_flight.push(async move { (began, icmp.ping(ip, timeout).await) });
            }
            Some((began, r)) = futures::StreamExt::next(&mut in_flight) => {
                checker.took(&host.name, PING, began.elapsed());
                if newest_recorded.is_some_and(|n| n > began) {
                    continue;
                }
                newest_recorded = Some(began);
                checker.record(&host.name, PING, r);
            }
            _ = stop.changed() => {}
        }
    }
}

/// Runs the MySQL checks of one host, each on its own period, over one kept connection. When the
/// connection fails in a round, the replication checks of that round report the same failure
/// instead of waiting for another connect timeout.
async fn mysql_loop(
    checker: Arc<Checker>,
    host: HostTarget,
    checks: Checks,
    mut stop: watch::Receiver<bool>,
) {
    let mut probe = MysqlProbe::new(host.ip, host.mysql_port, &host.user, &host.password);
    let cfgs = [checks.mysql, checks.rep_threads, checks.rep_backlog];
    let start = first_due(checks.mysql.check_period);
    let mut due = [start; 3];
    while !stopping(&stop) {
        let next = due.iter().min().copied().unwrap_or(start);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => continue,
        }
        let round = Instant::now();
        let is_due = due.map(|d| d <= round);
        let mut conn_failure = None;
        if is_due[0] {
            let began = Instant::now();
            let r = probe.check_mysql(cfgs[0].timeout).await;
            checker.took(&host.name, MYSQL, began.elapsed());
            if r.status != CheckStatus::Ok && !probe.connected() {
                conn_failure = Some(r.clone());
            }
            checker.record(&host.name, MYSQL, r);
        }
        if is_due[1] || is_due[2] {
            let timeout = (1..3)
                .filter(|i| is_due[*i])
                .map(|i| cfgs[i].timeout)
                .max()
                .unwrap_or(cfgs[1].timeout);
            let st = match conn_failure {
                Some(f) => Err(f),
                None => {
                    // One query serves both replication checks: each ran as long as it did.
                    let began = Instant::now();
                    let st = probe.slave_status(timeout).await;
                    let took = began.elapsed();
                    if is_due[1] {
                        checker.took(&host.name, REP_THREADS, took);
                    }
                    if is_due[2] {
                        checker.took(&host.name, REP_BACKLOG, took);
                    }
                    st
                }
            };
            if is_due[1] {
                checker.record(&host.name, REP_THREADS, mysql::rep_threads(&st));
            }
            if is_due[2] {
                checker.record(
                    &host.name,
                    REP_BACKLOG,
                    mysql::rep_backlog(&st, cfgs[2].max_backlog),
                );
            }
        }
        for i in 0..3 {
            if is_due[i] {
                due[i] = round + cfgs[i].check_period.max(Duration::from_millis(10));
            }
        }
    }
}

/// Pings `ping_ips` every `interval` and keeps the verdict.
async fn network_loop(
    checker: Arc<Checker>,
    icmp: Arc<Icmp>,
    ips: Vec<IpAddr>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while !stopping(&stop) {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => continue,
        }
        let ok = tokio::select! {
            ok = icmp.network_ok(&ips, PING_TIMEOUT) => ok,
            _ = stop.changed() => continue,
        };
        if checker.network_ok.swap(ok, Ordering::Relaxed) != ok {
            if ok {
                tracing::info!(?ips, "network self-check: ping_ips answer again");
            } else {
                tracing::warn!(
                    ?ips,
                    "network self-check failed: no ping_ips answers; observations do not count"
                );
            }
            checker.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker() -> Checker {
        Checker {
            tracks: Mutex::new(BTreeMap::new()),
            network_ok: AtomicBool::new(true),
            changes: watch::Sender::new(0),
            started: Instant::now(),
            checks: Checks::default(),
            durations: OnceLock::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn snapshot_orders_and_trap_applies_with_paused_time() {
        let mut c = checker();
        c.checks.mysql.trap_period = Duration::from_secs(2);
        let mut changes = c.changes();
        c.record("db2", PING, CheckOutcome::ok("p"));
        c.record("db1", MYSQL, CheckOutcome::ok("m"));
        c.record("db1", PING, CheckOutcome::ok("p"));
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();
        let s = c.snapshot();
        let keys: Vec<_> = s
            .iter()
            .map(|s| (s.host.as_str(), s.check.as_str()))
            .collect();
        assert_eq!(keys, [("db1", "ping"), ("db1", "mysql"), ("db2", "ping")]);

        c.record("db1", MYSQL, CheckOutcome::fail("refused"));
        assert!(
            changes.has_changed().unwrap(),
            "a new failure is a change (followers report it)"
        );
        changes.borrow_and_update();
        tokio::time::advance(Duration::from_millis(1500)).await;
        c.record("db1", MYSQL, CheckOutcome::fail("refused"));
        assert!(
            !changes.has_changed().unwrap(),
            "same status within trap_period: no change"
        );
        let m = c
            .snapshot()
            .into_iter()
            .find(|s| s.check == "mysql")
            .unwrap();
        assert!(m.counted_ok);
        assert_eq!(m.status, CheckStatus::Fail);
        assert_eq!(m.lasted, Duration::from_millis(1500));
        tokio::time::advance(Duration::from_millis(600)).await;
        c.record("db1", MYSQL, CheckOutcome::fail("refused"));
        assert!(changes.has_changed().unwrap());
        let m = c
            .snapshot()
            .into_iter()
            .find(|s| s.check == "mysql")
            .unwrap();
        assert!(!m.counted_ok);
        assert_eq!(m.message, "refused");
    }
}
