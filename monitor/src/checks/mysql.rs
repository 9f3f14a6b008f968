//! The MySQL checks of one host, over one connection that is kept while it works (reconnected
//! after an error), so a check costs one round trip: `mysql` (`SELECT NOW()`), `rep_threads`
//! (`SHOW SLAVE STATUS`: no row = not set up, an IO or SQL thread not running = broken) and
//! `rep_backlog` (`Seconds_Behind_Master` above `max_backlog`; NULL counts as 0).
//!
//! MySQL error 1040 (too many connections) is Unknown: the server is alive but could not tell.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row};

use super::status::CheckOutcome;

/// ER_CON_COUNT_ERROR: too many connections.
const ER_CON_COUNT: u16 = 1040;
/// ER_PARSE_ERROR: the server does not know `SHOW SLAVE STATUS` (MySQL 8.4+).
const ER_PARSE: u16 = 1064;

/// What `SHOW SLAVE STATUS` says, reduced to what the checks need.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlaveStatus {
    /// `Slave_IO_Running` (`Yes`, `No`, `Connecting`).
    pub io_running: String,
    /// `Slave_SQL_Running` (`Yes`, `No`).
    pub sql_running: String,
    /// `Seconds_Behind_Master`; None when NULL.
    pub seconds_behind: Option<u64>,
    /// `Last_IO_Error` / `Last_SQL_Error`, for the message of a broken replication.
    pub last_error: String,
}

/// A host's MySQL server as the checks see it, with its kept connection.
pub struct MysqlProbe {
    /// `ip:port`, for messages.
    addr: String,
    /// `monitor_user`, for messages.
    user: String,
    /// Connection options (monitor_user, no socket, no statement cache).
    opts: Opts,
    /// The kept connection; None after an error.
    conn: Option<Conn>,
}

impl MysqlProbe {
    /// A probe of `ip:port` as `user`.
    pub fn new(ip: IpAddr, port: u16, user: &str, password: &str) -> Self {
        let opts = OptsBuilder::default()
            .ip_or_hostname(ip.to_string())
            .tcp_port(port)
            .user(Some(user))
            .pass(Some(password))
            .prefer_socket(false)
            .stmt_cache_size(0)
            .tcp_nodelay(true);
        MysqlProbe {
            addr: format!("{ip}:{port}"),
            user: user.to_string(),
            opts: opts.into(),
            conn: None,
        }
    }

    /// True while a connection is kept.
    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The `mysql` check: connect if needed and run `SELECT NOW()`, all within `timeout`.
    pub async fn check_mysql(&mut self, timeout: Duration) -> CheckOutcome {
        let start = Instant::now();
        match self
            .query(timeout, |c| {
                Box::pin(async move { c.query_drop("SELECT NOW()").await })
            })
            .await
        {
            Ok(()) => CheckOutcome::ok(format!(
                "Checked in {:.4} seconds",
                start.elapsed().as_secs_f64()
            )),
            Err(e) => e,
        }
    }

    /// `SHOW SLAVE STATUS` (or `SHOW REPLICA STATUS` where the former is gone) within `timeout`;
    /// `Ok(None)` when the server is no replica.
    pub async fn slave_status(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<SlaveStatus>, CheckOutcome> {
        let row: Option<Row> = self
            .query(timeout, |c| {
                Box::pin(async move {
                    match c.query_first::<Row, _>("SHOW SLAVE STATUS").await {
                        Err(mysql_async::Error::Server(e)) if e.code == ER_PARSE => {
                            c.query_first::<Row, _>("SHOW REPLICA STATUS").await
                        }
                        r => r,
                    }
                })
            })
            .await?;
        Ok(row.map(|r| parse_slave_status(&r)))
    }

    /// Runs `f` on the connection (made if needed) within `timeout`. A timeout or a transport error
    /// drops the connection; a server error (bad permission, 1040) keeps it.
    async fn query<T>(
        &mut self,
        timeout: Duration,
        f: impl for<'c> FnOnce(
            &'c mut Conn,
        ) -> futures::future::BoxFuture<'c, Result<T, mysql_async::Error>>,
    ) -> Result<T, CheckOutcome> {
        let was_connected = self.conn.is_some();
        let opts = self.opts.clone();
        let slot = &mut self.conn;
        let run = async move {
            let c = match slot.take() {
                Some(c) => c,
                None => Conn::new(opts).await.map_err(|e| (true, e))?,
            };
            f(slot.insert(c)).await.map_err(|e| (false, e))
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err((connecting, e))) => {
                if !matches!(e, mysql_async::Error::Server(_)) || connecting {
                    self.conn = None;
                }
                Err(self.classify(connecting, &e))
            }
            Err(_) => {
                self.conn = None;
                let what = if was_connected {
                    "Query timed out"
                } else {
                    "Connect timed out"
                };
                let msg = format!(
                    "{what} (host = {}, user = {})! No answer within {:.1} s",
                    self.addr,
                    self.user,
                    timeout.as_secs_f64()
                );
                Err(CheckOutcome::fail(msg))
            }
        }
    }

    /// MMM's words for an error; 1040 is Unknown.
    fn classify(&self, connecting: bool, e: &mysql_async::Error) -> CheckOutcome {
        let what = if connecting {
            "Connect error"
        } else {
            "Query error"
        };
        let msg = format!("{what} (host = {}, user = {})! {e}", self.addr, self.user);
        match e {
            mysql_async::Error::Server(s) if s.code == ER_CON_COUNT => CheckOutcome::unknown(msg),
            _ => CheckOutcome::fail(msg),
        }
    }
}

/// The first of `names` that the row has and is not NULL.
fn col(row: &Row, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        row.get_opt::<Option<String>, _>(*n)
            .and_then(Result::ok)
            .flatten()
    })
}

/// Reads the columns the checks need (MariaDB/MySQL names and MySQL 8.4's `Replica_`/`Source` names).
pub fn parse_slave_status(row: &Row) -> SlaveStatus {
    let io_error = col(row, &["Last_IO_Error"]).unwrap_or_default();
    let sql_error = col(row, &["Last_SQL_Error"]).unwrap_or_default();
    SlaveStatus {
        io_running: col(row, &["Slave_IO_Running", "Replica_IO_Running"]).unwrap_or_default(),
        sql_running: col(row, &["Slave_SQL_Running", "Replica_SQL_Running"]).unwrap_or_default(),
        seconds_behind: col(row, &["Seconds_Behind_Master", "Seconds_Behind_Source"])
            .and_then(|s| s.trim().parse().ok()),
        last_error: [io_error, sql_error]
            .into_iter()
            .filter(|e| !e.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// The `rep_threads` verdict on a `SHOW SLAVE STATUS` result.
pub fn rep_threads(status: &Result<Option<SlaveStatus>, CheckOutcome>) -> CheckOutcome {
    match status {
        Err(e) => e.clone(),
        Ok(None) => CheckOutcome::fail("Replication is not set up"),
        Ok(Some(s)) if s.io_running == "No" || s.sql_running == "No" => {
            let mut msg = format!(
                "Replication is broken (Slave_IO_Running: {}, Slave_SQL_Running: {})",
                s.io_running, s.sql_running
            );
            if !s.last_error.is_empty() {
                msg.push_str(": ");
                msg.push_str(&s.last_error);
            }
            CheckOutcome::fail(msg)
        }
        Ok(Some(s)) => CheckOutcome::ok(format!(
            "Replication threads running (IO: {}, SQL: {})",
            s.io_running, s.sql_running
        )),
    }
}

/// The `rep_backlog` verdict; NULL `Seconds_Behind_Master` counts as 0, as in MMM.
pub fn rep_backlog(
    status: &Result<Option<SlaveStatus>, CheckOutcome>,
    max_backlog: Duration,
) -> CheckOutcome {
    match status {
        Err(e) => e.clone(),
        Ok(None) => CheckOutcome::fail("Replication is not set up"),
        Ok(Some(s)) => {
            let behind = s.seconds_behind.unwrap_or(0);
            if Duration::from_secs(behind) > max_backlog {
                CheckOutcome::fail(format!(
                    "Backlog is too big ({behind} s > {} s)",
                    max_backlog.as_secs_f64()
                ))
            } else {
                CheckOutcome::ok(format!("Backlog is {behind} s"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckStatus;

    fn st(io: &str, sql: &str, behind: Option<u64>) -> Result<Option<SlaveStatus>, CheckOutcome> {
        Ok(Some(SlaveStatus {
            io_running: io.into(),
            sql_running: sql.into(),
            seconds_behind: behind,
            last_error: String::new(),
        }))
    }

    #[test]
    fn rep_threads_verdicts() {
        assert_eq!(rep_threads(&Ok(None)).message, "Replication is not set up");
        assert_eq!(rep_threads(&Ok(None)).status, CheckStatus::Fail);
        assert_eq!(rep_threads(&st("Yes", "Yes", None)).status, CheckStatus::Ok);
        assert_eq!(
            rep_threads(&st("Connecting", "Yes", None)).status,
            CheckStatus::Ok
        );
        assert_eq!(
            rep_threads(&st("No", "Yes", None)).status,
            CheckStatus::Fail
        );
        assert_eq!(
            rep_threads(&st("Yes", "No", None)).status,
            CheckStatus::Fail
        );
        let e = CheckOutcome::unknown("too many");
        assert_eq!(rep_threads(&Err(e.clone())), e);
    }

    #[test]
    fn rep_backlog_verdicts() {
        let max = Duration::from_secs(60);
        assert_eq!(
            rep_backlog(&st("Yes", "Yes", None), max).status,
            CheckStatus::Ok,
            "NULL is 0"
        );
        assert_eq!(
            rep_backlog(&st("Yes", "Yes", Some(60)), max).status,
            CheckStatus::Ok
        );
        assert_eq!(
            rep_backlog(&st("Yes", "Yes", Some(61)), max).status,
            CheckStatus::Fail
        );
        assert_eq!(rep_backlog(&Ok(None), max).status, CheckStatus::Fail);
    }
}
