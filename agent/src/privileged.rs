//! `lock_privileged_accounts`: application accounts that write through `read_only` may log in only where
//! writes are open.
//!
//! MariaDB has no `super_read_only`: an account holding `READ_ONLY ADMIN` (part of `ALL PRIVILEGES`;
//! `SUPER` before 10.11) writes on a read-only server — a demoted old writer, or any replica. Killing its
//! sessions (every demotion and lease lapse does) does not keep it from logging in again. With this
//! setting, the agent keeps such accounts locked (`ALTER USER … ACCOUNT LOCK`, binary log off: each
//! server's lock is its own, nothing replicates) on this server whenever it is not the open writer:
//! - before a demotion kills sessions, so a killed session cannot come back;
//! - on every apply of a host that is not the writer (a replica included);
//! - unlocked right after this host's writes were opened;
//! - and the fence kept in mysqld (`crate::fence`) locks them too when a lease runs out with no agent to
//!   do it: the accounts are listed in `mmm_fence.privileged`, which the agent keeps.
//!
//! Which accounts: those the agent warns about at start ([`crate::db::Db::privileged_app_accounts`]:
//! not the server's own, not the MMM accounts, not a `root` that logs in only locally), learned at the
//! agent's start, except `root` from anywhere (the administrator's account is never locked out; an
//! application must not use it). Turning the setting off unlocks the accounts listed at the next start.

use anyhow::Context;

use crate::db::Db;
use crate::fence::SCHEMA;
use crate::sql::quote;

/// `ALTER USER` locking or unlocking `grantee` (as `information_schema` writes it: `'user'@'host'`).
pub fn lock_sql(grantee: &str, locked: bool) -> String {
    let what = if locked { "LOCK" } else { "UNLOCK" };
    format!("ALTER USER {grantee} ACCOUNT {what}")
}

/// True when `grantee` has the shape `'user'@'host'` with no quote inside either part, so it can be put
/// into a statement as it is.
pub fn well_formed(grantee: &str) -> bool {
    let Some(inner) = grantee
        .strip_prefix('\'')
        .and_then(|g| g.strip_suffix('\''))
    else {
        return false;
    };
    match inner.split_once("'@'") {
        Some((u, h)) => {
            !u.contains('\'') && !h.contains('\'') && !u.contains('\\') && !h.contains('\\')
        }
        None => false,
    }
}

/// True when a `SHOW CREATE USER` text says the account is locked.
pub fn shows_locked(create_user: &str) -> bool {
    create_user.contains(" ACCOUNT LOCK")
}

/// True for an account this module may lock: well formed, and not `root`.
pub fn lockable(grantee: &str) -> bool {
    well_formed(grantee) && crate::sql::grantee_user(grantee) != "root"
}

impl Db {
    /// Locks or unlocks `grantees` on this server only (binary log off for these statements).
    pub async fn set_accounts_locked(
        &mut self,
        grantees: &[String],
        locked: bool,
    ) -> anyhow::Result<()> {
        if grantees.is_empty() {
            return Ok(());
        }
        self.exec("SET SESSION sql_log_bin = 0").await?;
        let mut result = Ok(());
        for g in grantees.iter().filter(|g| well_formed(g)) {
            if let Err(e) = self.exec(&lock_sql(g, locked)).await {
                result = Err(e);
                break;
            }
        }
        self.exec("SET SESSION sql_log_bin = 1").await?;
        result
    }

    /// Those of `grantees` whose lock state on this server differs from `locked` (`SHOW CREATE USER`
    /// says `ACCOUNT LOCK` for a locked account, on MariaDB and MySQL alike).
    pub async fn accounts_to_change(
        &mut self,
        grantees: &[String],
        locked: bool,
    ) -> anyhow::Result<Vec<String>> {
        let mut change = Vec::new();
        for g in grantees.iter().filter(|g| well_formed(g)) {
            let rows: Vec<String> = self
                .query(
                    &format!("SHOW CREATE USER {g}"),
                    std::time::Duration::from_secs(2),
                )
                .await?;
            let is_locked = rows.iter().any(|r| shows_locked(r));
            if is_locked != locked {
                change.push(g.clone());
            }
        }
        Ok(change)
    }

    /// Kills the sessions of the users of `grantees` (a lock keeps new sessions out, not old ones).
    pub async fn kill_sessions_of(&mut self, grantees: &[String]) -> anyhow::Result<usize> {
        let users: Vec<&str> = grantees
            .iter()
            .map(|g| crate::sql::grantee_user(g))
            .collect();
        self.kill_sessions_where(|user| users.contains(&user)).await
    }

    /// Keeps the list the fence locks when a lease runs out without the agent (binary log off).
    pub async fn record_privileged(&mut self, grantees: &[String]) -> anyhow::Result<()> {
        self.exec("SET SESSION sql_log_bin = 0").await?;
        let r = async {
            self.exec(&format!("DELETE FROM {SCHEMA}.privileged"))
                .await?;
            for g in grantees.iter().filter(|g| well_formed(g)) {
                self.exec(&format!(
                    "INSERT INTO {SCHEMA}.privileged (grantee) VALUES ({})",
                    quote(g)
                ))
                .await?;
            }
            anyhow::Ok(())
        }
        .await
        .context("recording the privileged accounts in mysqld");
        self.exec("SET SESSION sql_log_bin = 1").await?;
        r
    }

    /// The accounts the fence's list names (what an earlier run with the setting on recorded).
    pub async fn recorded_privileged(&mut self) -> anyhow::Result<Vec<String>> {
        self.query(
            &format!("SELECT grantee FROM {SCHEMA}.privileged ORDER BY grantee"),
            std::time::Duration::from_secs(2),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_and_shapes() {
        assert_eq!(
            lock_sql("'superapp'@'%'", true),
            "ALTER USER 'superapp'@'%' ACCOUNT LOCK"
        );
        assert_eq!(
            lock_sql("'superapp'@'10.0.%'", false),
            "ALTER USER 'superapp'@'10.0.%' ACCOUNT UNLOCK"
        );
        assert!(shows_locked(
            "CREATE USER `superapp`@`%` IDENTIFIED BY PASSWORD '*AB' ACCOUNT LOCK"
        ));
        assert!(!shows_locked(
            "CREATE USER `superapp`@`%` IDENTIFIED BY PASSWORD '*AB'"
        ));
        assert!(well_formed("'superapp'@'%'"));
        assert!(lockable("'superapp'@'%'"));
        assert!(
            well_formed("'root'@'%'") && !lockable("'root'@'%'"),
            "root is never locked"
        );
        assert!(well_formed("'a b'@'localhost'"));
        for bad in [
            "superapp@%",
            "'superapp'",
            "'x' ; DROP TABLE t; --'@'%'",
            "'x\\'@'%'",
            "'x'@'%'; DROP",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
