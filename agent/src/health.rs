//! Local health: the agent keeps a connection to its own mysqld and runs `SELECT 1` every ~100 ms. On an
//! error it confirms with a fresh connect: refused / reset / gone = DOWN (definite), timeout or any other
//! error = UNKNOWN. The latest verdict is published on a `watch` channel that WatchHealth streams from.

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
}

impl Default for HealthSnapshot {
    fn default() -> Self {
        HealthSnapshot {
            mysql: MysqlHealth::Unspecified,
            detail: "not probed yet".into(),
            observed_at_millis: now_millis(),
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

/// Runs the probe loop forever, publishing every change of verdict on `tx`.
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
        let (health, detail) = probe(&target, &mut conn).await;
        let changed = tx.send_if_modified(|cur| {
            if cur.mysql == health && cur.detail == detail {
                return false;
            }
            *cur = HealthSnapshot {
                mysql: health,
                detail: detail.clone(),
                observed_at_millis: now_millis(),
            };
            true
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

async fn probe(target: &DbTarget, conn: &mut Option<Db>) -> (MysqlHealth, String) {
    if let Some(c) = conn.as_mut() {
        match c.ping(PROBE_TIMEOUT).await {
            Ok(()) => return (MysqlHealth::Up, "ok".into()),
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "health probe failed; confirming with a fresh connect");
                *conn = None;
            }
        }
    }
    match target.connect().await {
        Ok(c) => {
            *conn = Some(c);
            (MysqlHealth::Up, "ok".into())
        }
        Err(e) if e.is_definite() => (MysqlHealth::Down, e.to_string()),
        Err(e) => (MysqlHealth::Unknown, e.to_string()),
    }
}
