//! The writer fence kept inside mysqld: it stops writes when the writer lease runs out even if the agent
//! is dead, paused or restarting.
//!
//! What is installed on every server (in schema `mmm_fence`, with the binary log off for the session, so
//! nothing of it replicates and each server has its own):
//! - `lease`: a table holding one row, the end of the current writer lease in the server's own clock
//!   (microseconds since the Unix epoch). Not a MEMORY table: the first use of a MEMORY table after a
//!   restart writes a `DELETE` to the binary log, whatever the session says, which would be a transaction
//!   only this server has. A restarted mysqld starts read-only (`read_only=1` in its configuration, a
//!   required setting), and only the agent opens it, so a leftover row opens nothing.
//! - `privileged`: the accounts `lock_privileged_accounts` keeps locked where writes are not open
//!   ([`crate::privileged`]); empty without that setting.
//! - `deny_writes()`: locks the accounts listed in `privileged` (they write through `read_only`; without
//!   lock waits, so tried again after the flip in case another account change held the privilege
//!   tables), kills every client session (the rule of [`crate::sql::should_kill`]: not the server's
//!   or replication threads, not the agent's sessions), sets `read_only=1` without waiting for locks
//!   (`lock_wait_timeout=0`: a lock holder was just killed; a new one is killed on the next try), repeats
//!   until `read_only=1` holds, kills again (sessions that connected meanwhile), then turns the event
//!   scheduler off (no application event writes on a server that is not the writer) and notes the time
//!   in `fired`.
//! - `allow_writes()`: sets `read_only=0` only while the lease row has not run out, checked inside mysqld
//!   at that moment: the agent opens writes through it, so an agent paused between its own lease check
//!   and the statement (or a statement delayed on its way) cannot open a server whose lease is over.
//! - `lease_fence`: an event run every second that checks ten times a second, while the server is
//!   writable, whether the lease row has run out, and then calls `deny_writes()`.
//!
//! The agent writes the row before it allows writes and at every renewal, and turns the event scheduler on
//! before it allows writes. The row's end is computed by the agent from its own lease (an `Instant`) and
//! a reading of the server's clock: `server_now + (lease_end - reading_received)`, which is never later
//! than the lease's end in the server's time (the reading was taken before it was received). The value is
//! absolute, so a write that is delayed on its way to the server extends nothing.
//!
//! Bound: writes stop within [`FENCE_BOUND`] after the lease ends, whatever the agent does. Assumed: the
//! event scheduler can run (`event_scheduler` not `DISABLED` in the server's configuration), the agent's
//! account holds the privileges of an administrator (it is the definer), the server's clock is not stepped
//! while it is the writer (NTP slews; a step of the server's wall clock moves the row's end with it), and
//! the server runs (a stalled or paused server runs no event, and may accept writes when it wakes: the
//! agent's last resort, [`crate::last_resort`], kills it).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::db::Db;
use crate::sql::{quote, Flavor, SPARED_COMMANDS, SPARED_USERS};

/// The fence's schema.
pub const SCHEMA: &str = "mmm_fence";
/// How often the event checks the lease (it runs every second and checks this often within that second).
pub const CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// Longest time from the end of the lease kept in mysqld to writes denied by the fence: one check
/// interval, the event's start each second (instances overlap, so at most one more interval), and the
/// kills and flip (a few milliseconds; a lock holder is killed before the flip, which does not wait).
/// The leader adds the later of it and the agent's last resort ([`crate::last_resort`]) to every lease
/// before it trusts the lease to be over.
pub const FENCE_BOUND: Duration = Duration::from_millis(mmm_proto::FENCE_EVENT_BOUND_MILLIS);
/// Version of the installed objects, kept in the event's comment: a newer agent reinstalls.
const VERSION: u32 = 4;

/// The statements that (re)install the fence for `agent_user` (whose sessions are spared).
pub fn install_sql(flavor: Flavor, agent_user: &str) -> Vec<String> {
    let spared_users: Vec<String> = SPARED_USERS
        .iter()
        .map(|u| quote(u))
        .chain([quote(agent_user)])
        .collect();
    let spared_commands: Vec<String> = SPARED_COMMANDS.iter().map(|c| quote(c)).collect();
    let allow = match flavor {
        Flavor::MariaDb => "SET GLOBAL read_only = 0;",
        Flavor::MySql => "SET GLOBAL super_read_only = 0; SET GLOBAL read_only = 0;",
    };
    let deny = match flavor {
        Flavor::MariaDb => "SET GLOBAL read_only = 1;",
        Flavor::MySql => "SET GLOBAL read_only = 1; SET GLOBAL super_read_only = 1;",
    };
    vec![
        "SET SESSION sql_log_bin = 0".into(),
        format!("CREATE DATABASE IF NOT EXISTS {SCHEMA}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA}.lease (id TINYINT NOT NULL PRIMARY KEY, \
             expires_us BIGINT NOT NULL) ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA}.fired (at_us BIGINT NOT NULL, killed INT NOT NULL) \
             ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA}.privileged (grantee VARCHAR(400) NOT NULL PRIMARY KEY) \
             ENGINE=InnoDB"
        ),
        format!("DROP EVENT IF EXISTS {SCHEMA}.lease_fence"),
        format!("DROP PROCEDURE IF EXISTS {SCHEMA}.kill_clients"),
        format!("DROP PROCEDURE IF EXISTS {SCHEMA}.deny_writes"),
        format!("DROP PROCEDURE IF EXISTS {SCHEMA}.allow_writes"),
        format!("DROP PROCEDURE IF EXISTS {SCHEMA}.lock_privileged"),
        format!(
            "CREATE PROCEDURE {SCHEMA}.allow_writes() \
             BEGIN \
               IF EXISTS (SELECT 1 FROM {SCHEMA}.lease \
                    WHERE id = 1 AND expires_us > UNIX_TIMESTAMP(NOW(6)) * 1000000) THEN \
                 {allow} \
               END IF; \
             END"
        ),
        format!(
            "CREATE PROCEDURE {SCHEMA}.kill_clients(OUT killed INT) \
             BEGIN \
               DECLARE done INT DEFAULT 0; \
               DECLARE tid BIGINT; \
               DECLARE cur CURSOR FOR SELECT ID FROM information_schema.PROCESSLIST \
                 WHERE ID <> CONNECTION_ID() AND USER NOT IN ({users}) AND COMMAND NOT IN ({commands}); \
               DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1; \
               DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN END; \
               SET killed = 0; \
               OPEN cur; \
               k: LOOP \
                 FETCH cur INTO tid; \
                 IF done THEN LEAVE k; END IF; \
                 KILL CONNECTION tid; \
                 SET killed = killed + 1; \
               END LOOP; \
               CLOSE cur; \
             END",
            users = spared_users.join(", "),
            commands = spared_commands.join(", "),
        ),
        format!(
            "CREATE PROCEDURE {SCHEMA}.lock_privileged() \
             BEGIN \
               DECLARE done INT DEFAULT 0; \
               DECLARE g VARCHAR(400); \
               DECLARE cur CURSOR FOR SELECT grantee FROM {SCHEMA}.privileged; \
               DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1; \
               DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN END; \
               OPEN cur; \
               l: LOOP \
                 FETCH cur INTO g; \
                 IF done THEN LEAVE l; END IF; \
                 SET @mmm_fence_lock = CONCAT('ALTER USER ', g, ' ACCOUNT LOCK'); \
                 PREPARE s FROM @mmm_fence_lock; \
                 EXECUTE s; \
                 DEALLOCATE PREPARE s; \
               END LOOP; \
               CLOSE cur; \
             END"
        ),
        format!(
            "CREATE PROCEDURE {SCHEMA}.deny_writes() \
             BEGIN \
               DECLARE n INT DEFAULT 0; \
               DECLARE k INT DEFAULT 0; \
               DECLARE total INT DEFAULT 0; \
               DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN END; \
               SET SESSION sql_log_bin = 0; \
               SET SESSION lock_wait_timeout = 0; \
               CALL {SCHEMA}.lock_privileged(); \
               WHILE @@global.read_only = 0 AND n < 50 DO \
                 CALL {SCHEMA}.kill_clients(k); \
                 SET total = total + k; \
                 {deny} \
                 SET n = n + 1; \
               END WHILE; \
               CALL {SCHEMA}.lock_privileged(); \
               CALL {SCHEMA}.kill_clients(k); \
               SET total = total + k; \
               INSERT INTO {SCHEMA}.fired VALUES (CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED), total); \
               SET GLOBAL event_scheduler = OFF; \
             END"
        ),
        format!(
            "CREATE EVENT {SCHEMA}.lease_fence ON SCHEDULE EVERY 1 SECOND ON COMPLETION PRESERVE ENABLE \
             COMMENT 'mmm-rs writer fence v{VERSION}: denies writes when the writer lease kept here runs out' \
             DO BEGIN \
               DECLARE i INT DEFAULT 0; \
               DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN END; \
               SET SESSION sql_log_bin = 0; \
               WHILE i < 10 DO \
                 IF @@global.read_only = 0 AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.lease \
                      WHERE id = 1 AND expires_us > UNIX_TIMESTAMP(NOW(6)) * 1000000) THEN \
                   CALL {SCHEMA}.deny_writes(); \
                 END IF; \
                 DO SLEEP({interval}); \
                 SET i = i + 1; \
               END WHILE; \
             END",
            interval = CHECK_INTERVAL.as_secs_f64(),
        ),
    ]
}

/// The query telling whether the installed fence is this version.
fn installed_query() -> String {
    format!(
        "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{SCHEMA}' \
         AND EVENT_NAME = 'lease_fence' AND EVENT_COMMENT LIKE 'mmm-rs writer fence v{VERSION}:%'"
    )
}

/// The row that keeps a lease ending `end_us` (server microseconds).
fn arm_sql(end_us: i64) -> String {
    format!("REPLACE INTO {SCHEMA}.lease (id, expires_us) VALUES (1, {end_us})")
}

/// Where the server's clock will be at `at`, from a reading `server_us` received at `received`:
/// conservative (never later than the truth), since the reading was taken before it was received.
pub fn server_time_at(server_us: i64, received: Instant, at: Instant) -> i64 {
    let ahead = at.saturating_duration_since(received);
    let behind = received.saturating_duration_since(at);
    let ahead = i64::try_from(ahead.as_micros()).unwrap_or(i64::MAX);
    let behind = i64::try_from(behind.as_micros()).unwrap_or(i64::MAX);
    server_us.saturating_add(ahead).saturating_sub(behind)
}

impl Db {
    /// Installs (or upgrades) the fence; a no-op when this version is there. Needs the binary log off
    /// for the session, which only this connection's statements see.
    pub async fn install_fence(&mut self, agent_user: &str) -> anyhow::Result<bool> {
        let have: Option<u64> = self.query_first(&installed_query()).await?;
        if have.unwrap_or(0) > 0 {
            self.exec("SET SESSION sql_log_bin = 1").await.ok();
            return Ok(false);
        }
        for s in install_sql(self.flavor, agent_user) {
            self.exec(&s)
                .await
                .with_context(|| "installing the writer fence in mysqld".to_string())?;
        }
        self.exec("SET SESSION sql_log_bin = 1").await?;
        Ok(true)
    }

    /// The server's clock now (microseconds since the Unix epoch) and when the reading arrived.
    async fn server_clock(&mut self) -> anyhow::Result<(i64, Instant)> {
        let v: Option<i64> = self
            .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
            .await?;
        let received = Instant::now();
        Ok((v.context("the server returned no time")?, received))
    }

    /// Keeps the lease ending at `end` in mysqld and turns the event scheduler on, so that the server
    /// denies writes by itself once it is over. Must succeed before writes are allowed.
    pub async fn arm_fence(&mut self, end: Instant) -> anyhow::Result<()> {
        let (now_us, received) = self.server_clock().await?;
        let end_us = server_time_at(now_us, received, end);
        self.exec("SET SESSION sql_log_bin = 0").await?;
        let r = self.exec(&arm_sql(end_us)).await;
        self.exec("SET SESSION sql_log_bin = 1").await?;
        r.context("keeping the writer lease in mysqld")?;
        let on: Option<String> = self.query_first("SELECT @@global.event_scheduler").await?;
        if !on.is_some_and(|v| v.eq_ignore_ascii_case("ON")) {
            self.exec("SET GLOBAL event_scheduler = ON")
                .await
                .context("turning the event scheduler on (the writer fence runs as an event)")?;
        }
        Ok(())
    }

    /// Allows writes through the fence: `read_only=0` only if the lease kept in mysqld has not run out
    /// when the server runs the statement. Fails when writes stay denied.
    pub async fn allow_writes_fenced(&mut self) -> anyhow::Result<()> {
        self.exec(&format!("CALL {SCHEMA}.allow_writes()")).await?;
        if self.read_only().await? {
            bail!("the writer lease kept in mysqld is over: writes stay denied");
        }
        Ok(())
    }

    /// Removes the lease kept in mysqld (the host is no longer the writer) and turns the event scheduler
    /// off. Called once writes are denied.
    pub async fn disarm_fence(&mut self) -> anyhow::Result<()> {
        self.exec("SET SESSION sql_log_bin = 0").await?;
        let r = self.exec(&format!("DELETE FROM {SCHEMA}.lease")).await;
        self.exec("SET SESSION sql_log_bin = 1").await?;
        r?;
        self.exec("SET GLOBAL event_scheduler = OFF").await
    }

    /// What is left of the lease kept in mysqld, by the server's clock (zero when none or over).
    pub async fn fence_remaining(&mut self) -> anyhow::Result<Duration> {
        let v: Option<Option<i64>> = self
            .query_first(&format!(
                "SELECT MAX(expires_us) - CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED) FROM {SCHEMA}.lease"
            ))
            .await?;
        let left = v.flatten().unwrap_or(0).max(0);
        Ok(Duration::from_micros(left as u64))
    }

    /// When the fence last denied writes by itself (server microseconds) and how many sessions it
    /// killed then; `None` when it never fired since mysqld started.
    pub async fn fence_fired(&mut self) -> anyhow::Result<Option<(i64, i64)>> {
        let v: Option<(i64, i64)> = self
            .query_first(&format!(
                "SELECT at_us, killed FROM {SCHEMA}.fired ORDER BY at_us DESC LIMIT 1"
            ))
            .await?;
        Ok(v)
    }
}

/// Checks that a fence can be installed by this account on this server: the event scheduler must not be
/// `DISABLED` in the server's configuration.
pub async fn check_scheduler(db: &mut Db) -> anyhow::Result<()> {
    let v: Option<String> = db.query_first("SELECT @@global.event_scheduler").await?;
    if v.as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("DISABLED"))
    {
        bail!(
            "event_scheduler is DISABLED in the server's configuration: the writer fence kept in mysqld \
             cannot run; remove `event_scheduler=DISABLED` (mmm-agent turns the scheduler on and off itself)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_end_in_server_time_is_never_later_than_the_truth() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        // Reading 1_000_000 us received at t0: a lease ending 2 s later ends at 3_000_000 us or earlier.
        assert_eq!(server_time_at(1_000_000, t0, t0 + 2000 * ms), 3_000_000);
        // An end already past when the reading arrived lies before the reading.
        assert_eq!(server_time_at(1_000_000, t0 + 500 * ms, t0), 500_000);
        assert_eq!(server_time_at(i64::MAX - 1, t0, t0 + ms), i64::MAX);
    }

    #[test]
    fn the_fence_spares_what_a_demotion_spares_and_never_replicates() {
        let sql = install_sql(Flavor::MariaDb, "mmm_agent").join(";\n");
        assert!(sql.starts_with("SET SESSION sql_log_bin = 0"));
        for u in SPARED_USERS.iter().chain(&["mmm_agent"]) {
            assert!(sql.contains(&quote(u)), "{u} spared");
        }
        for c in SPARED_COMMANDS {
            assert!(sql.contains(&quote(c)), "{c} spared");
        }
        assert!(
            !sql.contains("MEMORY"),
            "a MEMORY table logs a DELETE at its first use after a restart"
        );
        assert!(sql.contains("SET SESSION lock_wait_timeout = 0"));
        assert!(sql.contains("SET GLOBAL event_scheduler = OFF"));
        assert!(
            sql.contains("CREATE PROCEDURE mmm_fence.allow_writes()")
                && sql.contains(
                    "expires_us > UNIX_TIMESTAMP(NOW(6)) * 1000000) THEN SET GLOBAL read_only = 0;"
                ),
            "writes open only under a lease, checked by the server"
        );
        assert!(!sql.contains("super_read_only"));
        let my = install_sql(Flavor::MySql, "a'b").join(";\n");
        assert!(my.contains("SET GLOBAL super_read_only = 1"));
        assert!(my.contains("'a''b'"), "the agent user is quoted");
        assert!(installed_query().contains(&format!("v{VERSION}:")));
        assert_eq!(
            arm_sql(42),
            "REPLACE INTO mmm_fence.lease (id, expires_us) VALUES (1, 42)"
        );
    }
}
