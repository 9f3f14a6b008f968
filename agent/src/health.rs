//! Local health: the agent keeps a connection to its own mysqld and reads its GTID position every
//! ~100 ms. On an error it confirms with a fresh connect: refused / reset / gone = DOWN (definite),
//! timeout or any other error = UNKNOWN. The latest verdict and position are published on a `watch`
//! channel that WatchHealth streams from: every change of verdict (logged) and of position (so the
//! monitors know which host is the most advanced when they choose a failover candidate, and since
//! when a position has not moved).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mmm_proto::MysqlHealth;
use tokio::sync::watch;

use crate::db::{Db, DbTarget};

/// Interval between two probes.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// Longest a probe query may take before the verdict is UNKNOWN.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The latest verdict on the local mysqld.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// UP, DOWN or UNKNOWN (UNSPECIFIED before the first probe).
    pub mysql: MysqlHealth,
    /// Why (error text, or "ok").
    pub detail: String,
    /// When this verdict was reached (milliseconds since the Unix epoch).
    pub observed_at_millis: u64,
    /// The server's GTID position at the last answered probe ("" before one).
    pub position: String,
    /// When `position` last changed (this agent's monotonic clock).
    pub position_since: Instant,
}

impl Default for HealthSnapshot {
    fn default() -> Self {
        HealthSnapshot {
            mysql: MysqlHealth::Unspecified,
            detail: "not probed yet".into(),
            observed_at_millis: now_millis(),
            position: String::new(),
            position_since: Instant::now(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs the probe loop forever, publishing every change of verdict or position on `tx`.
pub async fn probe_loop(target: DbTarget, tx: watch::Sender<HealthSnapshot>) {
    let mut target = target;
    target.connect_timeout = PROBE_TIMEOUT;
    target.stmt_timeout = PROBE_TIMEOUT;
    let mut conn: Option<Db> = None;
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = Instant::now();
        let (health, detail, position) = probe(&target, &mut conn).await;
        let mut changed = false;
        tx.send_if_modified(|cur| {
            let mut notify = false;
            if cur.mysql != health || cur.detail != detail {
                cur.mysql = health;
                cur.detail = detail.clone();
                cur.observed_at_millis = now_millis();
                changed = true;
                notify = true;
            }
            if let Some(p) = position.filter(|p| *p != cur.position) {
                cur.position = p;
                cur.position_since = Instant::now();
                notify = true;
            }
            notify
        });
        if changed {
            let level_down = health != MysqlHealth::Up;
            if level_down {
                tracing::warn!(mysql = health.as_str_name(), detail = %detail, probe = ?started.elapsed(), "mysqld health changed");
            } else {
                tracing::info!(mysql = health.as_str_name(), detail = %detail, "mysqld health changed");
            }
        }
    }
}

/// One probe: the verdict, its words, and the position when the server answered.
async fn probe(target: &DbTarget, conn: &mut Option<Db>) -> (MysqlHealth, String, Option<String>) {
    if let Some(c) = conn.as_mut() {
        match c.probe_position(PROBE_TIMEOUT).await {
            Ok(pos) => return (MysqlHealth::Up, "ok".into(), Some(pos)),
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "health probe failed; confirming with a fresh connect");
                *conn = None;
            }
        }
    }
    match target.connect().await {
        Ok(c) => {
            *conn = Some(c);
            (MysqlHealth::Up, "ok".into(), None)
        }
        Err(e) if e.is_definite() => (MysqlHealth::Down, e.to_string(), None),
        Err(e) => (MysqlHealth::Unknown, e.to_string(), None),
    }
}
