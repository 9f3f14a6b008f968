//! The agent's MySQL/MariaDB actions, as `agent_user` on the host's ip:mysql_port: read/deny writes, kill
//! client sessions, read replica state, wait for catch-up, re-point replication, report status. Every
//! connect and every statement runs under a timeout, so a hung server never hangs the agent.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::{Conn, OptsBuilder, Row};

use crate::sql::{self, Flavor, Session};

/// Pause between two session-kill rounds: long enough for killed threads to leave the process list,
/// short because writes are blocked until the demotion is acknowledged.
const KILL_ROUND_PAUSE: Duration = Duration::from_millis(5);

/// Where and how the agent connects to its own server.
#[derive(Clone)]
pub struct DbTarget {
    /// The host's address.
    pub ip: IpAddr,
    /// The server port.
    pub port: u16,
    /// `agent_user`.
    pub user: String,
    /// `agent_password`.
    pub password: String,
    /// Longest a connect may take.
    pub connect_timeout: Duration,
    /// Longest one ordinary statement may take.
    pub stmt_timeout: Duration,
}

impl std::fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbTarget")
            .field("ip", &self.ip)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish()
    }
}

/// Why a connect failed, as health reporting needs it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No answer within the timeout (ambiguous).
    #[error("connect to {0} timed out after {1:?}")]
    Timeout(String, Duration),
    /// The driver or server said no.
    #[error("connect to {0}: {1}")]
    Failed(String, mysql_async::Error),
}

impl ConnectError {
    /// True when the failure proves no mysqld serves here: the connection refused (nothing listens on
    /// the port) or the socket file absent. Nothing else is proof: a timeout, an authentication error,
    /// `Too many connections`, and also a connection reset or closed during the handshake (a live server
    /// under a kill loop — the fence event's or a demotion's — closes sessions still logging in).
    pub fn is_definite(&self) -> bool {
        match self {
            ConnectError::Timeout(..) => false,
            ConnectError::Failed(_, mysql_async::Error::Io(mysql_async::IoError::Io(e))) => {
                matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                )
            }
            ConnectError::Failed(..) => false,
        }
    }
}

impl DbTarget {
    /// Opens a connection and detects the flavour.
    pub async fn connect(&self) -> Result<Db, ConnectError> {
        let addr = format!("{}:{}", self.ip, self.port);
        let opts = OptsBuilder::default()
            .ip_or_hostname(self.ip.to_string())
            .tcp_port(self.port)
            .user(Some(&self.user))
            .pass(Some(&self.password))
            .prefer_socket(false)
            .wait_timeout(Some(600));
        let mut conn = match tokio::time::timeout(self.connect_timeout, Conn::new(opts)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(ConnectError::Failed(addr, e)),
            Err(_) => return Err(ConnectError::Timeout(addr, self.connect_timeout)),
        };
        let version: Option<String> =
            match tokio::time::timeout(self.stmt_timeout, conn.query_first("SELECT VERSION()"))
                .await
            {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return Err(ConnectError::Failed(addr, e)),
                Err(_) => return Err(ConnectError::Timeout(addr, self.stmt_timeout)),
            };
        let version = version.unwrap_or_default();
        Ok(Db {
            flavor: Flavor::from_version(&version),
            version,
            conn,
            stmt_timeout: self.stmt_timeout,
            abandoned: None,
        })
    }
}

/// What [`Db::deny_writes`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Denied {
    /// `read_only` was turned on by this call (the server was writable).
    pub flipped: bool,
    /// Client sessions killed.
    pub killed: usize,
}

/// The replica side of the server (one `SHOW SLAVE STATUS` row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaInfo {
    /// Source host as configured (`Master_Host`).
    pub source_host: String,
    /// Source port.
    pub source_port: u32,
    /// IO thread running.
    pub io_running: bool,
    /// IO thread stopped (`No`; a thread `Connecting` to an unreachable source is not stopped: it
    /// fetches whatever the source has as soon as it answers).
    pub io_stopped: bool,
    /// SQL thread running.
    pub sql_running: bool,
    /// Lag in seconds; -1 when NULL.
    pub seconds_behind: i64,
    /// Last IO error text.
    pub last_io_error: String,
    /// Last SQL error text.
    pub last_sql_error: String,
    /// GTID auto-positioning in use.
    pub using_gtid: bool,
    /// GTIDs received from the source (`Gtid_IO_Pos` / `Retrieved_Gtid_Set`).
    pub received_gtid: String,
}

/// GTID positions of the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPositions {
    /// MariaDB `gtid_binlog_pos` (MySQL `gtid_executed`).
    pub binlog: String,
    /// MariaDB `gtid_slave_pos` (MySQL `gtid_executed`).
    pub slave: String,
    /// MariaDB `gtid_current_pos` (MySQL `gtid_executed`).
    pub current: String,
}

/// Everything `GetSystemStatus` reports about the server.
#[derive(Debug, Clone, Default)]
pub struct ServerState {
    /// Flavour of the server.
    pub flavor: Option<Flavor>,
    /// `VERSION()`.
    pub version: String,
    /// `@@server_id`.
    pub server_id: u32,
    /// `@@read_only`.
    pub read_only: bool,
    /// The replica side; `None` when not a replica.
    pub replica: Option<ReplicaInfo>,
    /// GTID positions.
    pub gtid: GtidPositions,
    /// `Uptime` status variable.
    pub uptime: u64,
    /// `Rpl_semi_sync_master_status` ("ON"/"OFF"; "" when the server does not report it).
    pub semi_sync_source: String,
    /// `Rpl_semi_sync_slave_status` ("ON"/"OFF"; "" when the server does not report it).
    pub semi_sync_replica: String,
}

/// One reading of the server's settings for the writer role.
#[derive(Debug, Clone, Default)]
pub struct SettingsCheck {
    /// The variables the check reads (`mmm_proto::settings::VARIABLES`), names lower case.
    pub variables: BTreeMap<String, String>,
    /// What the check found in them.
    pub problems: Vec<mmm_proto::settings::SettingProblem>,
}

/// An open connection to the local server.
pub struct Db {
    /// The connection.
    conn: Conn,
    /// Flavour, from `VERSION()`.
    pub flavor: Flavor,
    /// `VERSION()` text.
    pub version: String,
    /// Timeout of one ordinary statement.
    stmt_timeout: Duration,
    /// Set when a statement was abandoned at its timeout: its answer may still arrive and would be
    /// read as the next statement's, so the connection takes no further statement.
    abandoned: Option<String>,
}

fn col_str(row: &Row, name: &str) -> String {
    row.get_opt::<Option<String>, _>(name)
        .and_then(Result::ok)
        .flatten()
        .unwrap_or_default()
}

impl Db {
    /// Runs one statement under the statement timeout.
    pub async fn exec(&mut self, sql: &str) -> anyhow::Result<()> {
        self.exec_timeout(sql, self.stmt_timeout).await
    }

    pub(crate) async fn exec_timeout(
        &mut self,
        sql: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        self.usable()?;
        match tokio::time::timeout(timeout, self.conn.query_drop(sql)).await {
            Ok(r) => r.with_context(|| format!("`{}` failed", redact(sql))),
            Err(_) => Err(self.abandon(&redact(sql), timeout)),
        }
    }

    pub(crate) async fn query<T: FromRow + Send + 'static>(
        &mut self,
        sql: &str,
        timeout: Duration,
    ) -> anyhow::Result<Vec<T>> {
        self.usable()?;
        match tokio::time::timeout(timeout, self.conn.query(sql)).await {
            Ok(r) => r.with_context(|| format!("`{sql}` failed")),
            Err(_) => Err(self.abandon(sql, timeout)),
        }
    }

    /// Fails when an earlier statement on this connection was abandoned at its timeout.
    fn usable(&self) -> anyhow::Result<()> {
        match &self.abandoned {
            Some(what) => {
                bail!("the connection is unusable: `{what}` was abandoned at its timeout")
            }
            None => Ok(()),
        }
    }

    /// Marks the connection unusable after `sql` was abandoned at `timeout`; the error to return.
    fn abandon(&mut self, sql: &str, timeout: Duration) -> anyhow::Error {
        self.abandoned = Some(sql.to_string());
        anyhow!("`{sql}` timed out after {timeout:?}")
    }

    pub(crate) async fn query_first<T: FromRow + Send + 'static>(
        &mut self,
        sql: &str,
    ) -> anyhow::Result<Option<T>> {
        Ok(self.query(sql, self.stmt_timeout).await?.into_iter().next())
    }

    /// The health probe: the server's GTID position (MariaDB `@@gtid_current_pos`, what it applied or
    /// wrote; MySQL `@@global.gtid_executed`). An answer proves the server up; the position lets the
    /// monitors tell which host is the most advanced.
    pub async fn probe_position(&mut self, timeout: Duration) -> anyhow::Result<String> {
        let q = match self.flavor {
            Flavor::MariaDb => "SELECT @@gtid_current_pos",
            Flavor::MySql => "SELECT @@global.gtid_executed",
        };
        let v: Vec<Option<String>> = self.query(q, timeout).await?;
        match v.into_iter().next() {
            Some(pos) => Ok(pos.unwrap_or_default()),
            None => bail!("{q} returned no row"),
        }
    }

    /// `@@read_only`.
    pub async fn read_only(&mut self) -> anyhow::Result<bool> {
        let v: Option<u8> = self.query_first("SELECT @@global.read_only").await?;
        match v {
            Some(v) => Ok(v != 0),
            None => bail!("SELECT @@global.read_only returned no row"),
        }
    }

    /// Allows or denies writes.
    pub async fn set_writable(&mut self, writable: bool) -> anyhow::Result<()> {
        let stmts = if writable {
            sql::allow_writes(self.flavor)
        } else {
            sql::deny_writes(self.flavor)
        };
        for s in stmts {
            self.exec(&s).await?;
        }
        Ok(())
    }

    /// Holds every client write on this connection's behalf (`FLUSH TABLES WITH READ LOCK`: writing
    /// statements and commits wait, whatever the account's privileges) and denies writes. Gives up
    /// after `timeout` when a running statement keeps the lock from being taken.
    pub async fn hold_writes(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.exec("SET SESSION lock_wait_timeout = 1").await?;
        self.exec_timeout("FLUSH TABLES WITH READ LOCK", timeout)
            .await?;
        for s in sql::deny_writes(self.flavor) {
            self.exec(&s).await?;
        }
        Ok(())
    }

    /// Releases what [`Db::hold_writes`] took and closes the connection.
    pub async fn release_writes(mut self) -> anyhow::Result<()> {
        let unlocked = self.exec("UNLOCK TABLES").await;
        self.close().await;
        unlocked
    }

    /// This connection's id on the server (`KILL QUERY` target).
    pub fn connection_id(&self) -> u32 {
        self.conn.id()
    }

    /// Interrupts what another connection of ours runs (a lock wait that took too long).
    pub async fn kill_query(&mut self, id: u32) -> anyhow::Result<()> {
        self.exec(&format!("KILL QUERY {id}")).await
    }

    /// The sessions a demotion must kill ([`sql::should_kill`]), as the process list shows them now.
    async fn client_sessions(&mut self, agent_user: &str) -> anyhow::Result<Vec<Session>> {
        let own = u64::from(self.conn.id());
        let rows: Vec<(u64, Option<String>, Option<String>)> = self
            .query(
                "SELECT ID, USER, COMMAND FROM information_schema.PROCESSLIST",
                self.stmt_timeout,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, user, command)| Session {
                id,
                user: user.unwrap_or_default(),
                command: command.unwrap_or_default(),
            })
            .filter(|s| sql::should_kill(s, own, agent_user))
            .collect())
    }

    /// One round of killing client sessions (not ours, not agent sessions, not system or replication
    /// threads). Returns how many kills were issued.
    pub async fn kill_round(&mut self, agent_user: &str) -> anyhow::Result<usize> {
        let victims = self.client_sessions(agent_user).await?;
        let victims = victims.into_iter().map(|v| (v.id, v)).collect();
        self.kill_threads(victims, |id, v: &Session| {
            tracing::info!(id, user = %v.user, command = %v.command, "killed client session");
        })
        .await
    }

    /// Kills the client sessions (as [`sql::should_kill`] would, without sparing any account) whose user
    /// `pick` chooses. Returns how many kills were issued.
    pub async fn kill_sessions_where(
        &mut self,
        pick: impl Fn(&str) -> bool,
    ) -> anyhow::Result<usize> {
        let victims = self
            .client_sessions("")
            .await?
            .into_iter()
            .filter(|s| pick(&s.user))
            .map(|v| (v.id, v))
            .collect();
        self.kill_threads(victims, |id, v: &Session| {
            tracing::info!(id, user = %v.user, command = %v.command, "killed a session of a locked account");
        })
        .await
    }

    /// Kills the binlog dump threads serving replicas at `ips` (a new writer's leftovers towards a host it
    /// isolates: a dump thread to an unreachable semi-sync replica keeps counting as a semi-sync client,
    /// so every commit would wait the full semi-sync timeout). Returns how many were killed.
    pub async fn kill_dump_threads_to(
        &mut self,
        ips: &[std::net::IpAddr],
    ) -> anyhow::Result<usize> {
        if ips.is_empty() {
            return Ok(0);
        }
        let rows: Vec<(u64, Option<String>)> = self
            .query(
                "SELECT ID, HOST FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
                self.stmt_timeout,
            )
            .await?;
        let victims = rows
            .into_iter()
            .filter_map(|(id, host)| {
                let host = host.unwrap_or_default();
                let ip = sql::session_ip(&host)?;
                ips.contains(&ip).then_some((id, host))
            })
            .collect();
        self.kill_threads(victims, |id, host: &String| {
            tracing::info!(id, replica = %host, "killed the binlog dump thread of an isolated replica");
        })
        .await
    }

    /// Kills the threads `victims` names (id, what `killed` logs of it), one after the other; a thread
    /// that ended by itself meanwhile counts as gone. Returns how many kills were issued.
    async fn kill_threads<T>(
        &mut self,
        victims: Vec<(u64, T)>,
        killed: fn(u64, &T),
    ) -> anyhow::Result<usize> {
        let mut issued = 0;
        for (id, v) in victims {
            match self.exec(&sql::kill(id)).await {
                Ok(()) => issued += 1,
                // 1094: unknown thread id: it ended by itself.
                Err(e) if format!("{e:#}").contains("1094") => {}
                Err(e) => return Err(e),
            }
            killed(id, &v);
        }
        Ok(issued)
    }

    /// Kills client sessions, listing again after each round, up to `max_rounds` rounds. Returns how many
    /// kills were issued; fails when sessions are still alive after the last round.
    pub async fn kill_sessions(
        &mut self,
        agent_user: &str,
        max_rounds: u32,
    ) -> anyhow::Result<usize> {
        let mut killed = 0;
        for _round in 0..max_rounds.max(1) {
            let n = self.kill_round(agent_user).await?;
            if n == 0 {
                return Ok(killed);
            }
            killed += n;
            tokio::time::sleep(KILL_ROUND_PAUSE).await;
        }
        let left = self.client_sessions(agent_user).await?.len();
        if left > 0 {
            bail!("{left} client sessions still alive after {max_rounds} kill rounds");
        }
        Ok(killed)
    }

    /// Denies writes whatever client sessions hold, within `deadline`: while the server is writable,
    /// kills every client session (lock holders, long statements, commits waiting for a semi-sync
    /// acknowledgement) and sets `read_only` without waiting for locks, again until it holds; then kills
    /// the sessions again (those that connected meanwhile, and privileged accounts that write through
    /// `read_only`) when it flipped or `kill_anyway` (a lease that ran out). Verifies `read_only` at the
    /// end: `Ok` means the server was seen read-only.
    /// Nothing in it runs past `deadline`: each statement's timeout is cut to what is left, and the whole
    /// is abandoned at the deadline (the fence in mysqld does not depend on it).
    pub async fn deny_writes(
        &mut self,
        agent_user: &str,
        max_kill_rounds: u32,
        deadline: Duration,
        kill_anyway: bool,
    ) -> anyhow::Result<Denied> {
        let until = std::time::Instant::now() + deadline;
        let cap = self.stmt_timeout;
        let r = tokio::time::timeout(
            deadline,
            self.deny_writes_until(agent_user, max_kill_rounds, until, cap, kill_anyway),
        )
        .await;
        self.stmt_timeout = cap;
        match r {
            Ok(r) => r,
            Err(_) => bail!("denying writes did not finish within {deadline:?}"),
        }
    }

    /// Cuts the statement timeout to what is left before `until` (at most `cap`); fails when nothing is.
    fn bound_to(&mut self, until: std::time::Instant, cap: Duration) -> anyhow::Result<()> {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            bail!("out of time");
        }
        self.stmt_timeout = cap.min(left);
        Ok(())
    }

    /// [`Db::deny_writes`]'s steps, each statement bounded by what is left before `until`.
    async fn deny_writes_until(
        &mut self,
        agent_user: &str,
        max_kill_rounds: u32,
        until: std::time::Instant,
        cap: Duration,
        kill_anyway: bool,
    ) -> anyhow::Result<Denied> {
        let mut out = Denied::default();
        let mut last_err = None;
        self.bound_to(until, cap)?;
        self.exec("SET SESSION lock_wait_timeout = 0").await?;
        loop {
            self.bound_to(until, cap)?;
            if self.read_only().await? {
                break;
            }
            if std::time::Instant::now() >= until {
                let why = last_err
                    .map(|e: anyhow::Error| format!(": {e:#}"))
                    .unwrap_or_default();
                bail!("the server is still writable after killing sessions and setting read_only until the deadline{why}");
            }
            out.killed += self.kill_round(agent_user).await?;
            self.bound_to(until, cap)?;
            match self.set_writable(false).await {
                Ok(()) => out.flipped = true,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "setting read_only failed (a new lock holder?): killing and trying again");
                    last_err = Some(e);
                    tokio::time::sleep(KILL_ROUND_PAUSE).await;
                }
            }
        }
        self.bound_to(until, cap)?;
        self.exec("SET SESSION lock_wait_timeout = DEFAULT").await?;
        if out.flipped || kill_anyway {
            out.killed += self.kill_sessions(agent_user, max_kill_rounds).await?;
        }
        Ok(out)
    }

    /// The replica state; `None` when the server is not a replica.
    pub async fn replica_status(&mut self) -> anyhow::Result<Option<ReplicaInfo>> {
        let Some(row) = self
            .query_first::<Row>(sql::show_replica_status(self.flavor))
            .await?
        else {
            return Ok(None);
        };
        let c = sql::replica_columns(self.flavor);
        let using_gtid = match self.flavor {
            Flavor::MariaDb => !matches!(col_str(&row, "Using_Gtid").as_str(), "" | "No"),
            Flavor::MySql => col_str(&row, "Auto_Position") == "1",
        };
        Ok(Some(ReplicaInfo {
            source_host: col_str(&row, c.host),
            source_port: col_str(&row, c.port).parse().unwrap_or(0),
            io_running: col_str(&row, c.io_running) == "Yes",
            io_stopped: col_str(&row, c.io_running) == "No",
            sql_running: col_str(&row, c.sql_running) == "Yes",
            seconds_behind: col_str(&row, c.seconds_behind).parse().unwrap_or(-1),
            last_io_error: col_str(&row, "Last_IO_Error"),
            last_sql_error: col_str(&row, "Last_SQL_Error"),
            using_gtid,
            received_gtid: col_str(&row, sql::received_gtid_column(self.flavor)),
        }))
    }

    /// Waits until everything received from the current source is applied (no-op when not a replica or
    /// nothing was received). Fails on timeout.
    pub async fn wait_received_applied(&mut self, timeout: Duration) -> anyhow::Result<()> {
        match self.replica_status().await? {
            Some(rep) => self.wait_applied(&rep, timeout).await,
            None => Ok(()),
        }
    }

    /// [`Db::wait_received_applied`] with the replica status `rep` just read.
    pub async fn wait_applied(
        &mut self,
        rep: &ReplicaInfo,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let gtid = rep.received_gtid.trim().replace('\n', "");
        if gtid.is_empty() {
            return Ok(());
        }
        let q = sql::wait_for_gtid(self.flavor, &gtid, timeout);
        let started = std::time::Instant::now();
        let v: Vec<Option<i64>> = self.query(&q, timeout + self.stmt_timeout).await?;
        // Both functions return 0 once the set is applied (MariaDB -1 / MySQL 1 on timeout).
        if v.first() != Some(&Some(0)) {
            bail!("received transactions {gtid} not applied within {timeout:?} (result {v:?})");
        }
        tracing::info!(gtid = %gtid, elapsed = ?started.elapsed(), "received transactions applied");
        Ok(())
    }

    /// The failover candidate's catch-up: applies what it received from its source and every transaction
    /// up to each of `targets` (the old writer's last position, what the candidate had received when it
    /// stopped fetching; "" entries are skipped), within `timeout`. MariaDB: polls `@@gtid_current_pos`
    /// (which counts the server's own transactions too, unlike `MASTER_GTID_WAIT`); MySQL:
    /// `WAIT_FOR_EXECUTED_GTID_SET`.
    pub async fn catch_up(&mut self, targets: &[&str], timeout: Duration) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        self.wait_received_applied(timeout).await?;
        for target in targets.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            let left = timeout.saturating_sub(started.elapsed());
            match self.flavor {
                Flavor::MySql => {
                    let q = sql::wait_for_gtid(self.flavor, target, left);
                    let v: Vec<Option<i64>> = self.query(&q, left + self.stmt_timeout).await?;
                    if v.first() != Some(&Some(0)) {
                        bail!("transactions up to {target} not applied within {timeout:?}");
                    }
                }
                Flavor::MariaDb => self.wait_current_pos(target, left).await?,
            }
            tracing::info!(target = %target, elapsed = ?started.elapsed(), "caught up with a required position");
        }
        Ok(())
    }

    /// `@@gtid_current_pos` (MariaDB): what this server applied or wrote, per domain.
    pub async fn gtid_current_pos(&mut self) -> anyhow::Result<String> {
        let cur: Option<String> = self.query_first("SELECT @@gtid_current_pos").await?;
        Ok(cur.unwrap_or_default())
    }

    /// Waits until `@@gtid_current_pos` reaches `target` (MariaDB; it counts the server's own
    /// transactions too, unlike `MASTER_GTID_WAIT`). Fails on timeout.
    pub async fn wait_current_pos(
        &mut self,
        target: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        loop {
            let cur = self.gtid_current_pos().await?;
            if sql::gtid_reached(&cur, target) {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                bail!("transactions up to {target} not applied within {timeout:?} (at {cur})");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Points the replication channel at `ip:port` with GTID auto-positioning and starts it, the IO
    /// thread only when `io` (with it stopped, what was received is still applied). Unlike
    /// [`Db::repoint`] it can leave fetching stopped, as isolation may want it.
    pub async fn point_source(
        &mut self,
        ip: IpAddr,
        port: u16,
        user: &str,
        password: &str,
        io: bool,
    ) -> anyhow::Result<()> {
        self.stop_replica().await?;
        self.exec(&sql::change_source(self.flavor, ip, port, user, password))
            .await?;
        if io {
            self.start_replica().await
        } else {
            self.exec(&sql::replica_sql_thread(self.flavor, true)).await
        }
    }

    /// Stops replication.
    pub async fn stop_replica(&mut self) -> anyhow::Result<()> {
        self.exec(sql::stop_replica(self.flavor)).await
    }

    /// Starts replication.
    pub async fn start_replica(&mut self) -> anyhow::Result<()> {
        self.exec(sql::start_replica(self.flavor)).await
    }

    /// Stops the replication IO thread only (what was received is still applied).
    pub async fn stop_replica_io(&mut self) -> anyhow::Result<()> {
        self.exec(&sql::replica_io_thread(self.flavor, false)).await
    }

    /// Starts the replication IO thread.
    pub async fn start_replica_io(&mut self) -> anyhow::Result<()> {
        self.exec(&sql::replica_io_thread(self.flavor, true)).await
    }

    /// Stops replication, points it at a new source with GTID auto-positioning, starts it.
    pub async fn repoint(
        &mut self,
        ip: IpAddr,
        port: u16,
        user: &str,
        password: &str,
    ) -> anyhow::Result<()> {
        self.point_source(ip, port, user, password, true).await
    }

    /// GTID positions.
    pub async fn gtid_positions(&mut self) -> anyhow::Result<GtidPositions> {
        let row: Option<(Option<String>, Option<String>, Option<String>)> = self
            .query_first(sql::gtid_positions_query(self.flavor))
            .await?;
        let (b, s, c) = row.unwrap_or_default();
        Ok(GtidPositions {
            binlog: b.unwrap_or_default(),
            slave: s.unwrap_or_default(),
            current: c.unwrap_or_default(),
        })
    }

    /// Everything `GetSystemStatus` reports but the settings ([`Db::check_settings`]).
    pub async fn server_state(&mut self) -> anyhow::Result<ServerState> {
        let server_id: Option<u32> = self.query_first("SELECT @@server_id").await?;
        let read_only = self.read_only().await?;
        let uptime: Option<(String, u64)> =
            self.query_first("SHOW GLOBAL STATUS LIKE 'Uptime'").await?;
        // Semi-sync is shown, never acted on: a server without the variables reports "".
        let semi = self.semi_sync_status().await.unwrap_or_default();
        let semi_of = |name: &str| semi.get(name).cloned().unwrap_or_default();
        Ok(ServerState {
            flavor: Some(self.flavor),
            version: self.version.clone(),
            server_id: server_id.unwrap_or(0),
            read_only,
            replica: self.replica_status().await?,
            gtid: self.gtid_positions().await?,
            semi_sync_source: semi_of("rpl_semi_sync_master_status"),
            semi_sync_replica: semi_of("rpl_semi_sync_slave_status"),
            uptime: uptime.map(|(_, v)| v).unwrap_or(0),
        })
    }

    /// The rows of a `SHOW ... STATUS` / `SHOW ... VARIABLES` statement by name, names lower case.
    async fn show_values(&mut self, sql: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let rows: Vec<(String, String)> = self.query(sql, self.stmt_timeout).await?;
        Ok(rows
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v))
            .collect())
    }

    /// The semi-sync status of the server as a source and as a replica, in one statement (names lower
    /// case; a server without semi-sync reports none).
    async fn semi_sync_status(&mut self) -> anyhow::Result<BTreeMap<String, String>> {
        self.show_values(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', \
             'Rpl_semi_sync_master_clients', 'Rpl_semi_sync_slave_status')",
        )
        .await
    }

    /// True when semi-synchronous replication is enabled on this server as a source but its commits do
    /// not wait for acknowledgements now: `Rpl_semi_sync_master_status=OFF` (a wait timed out), or no
    /// semi-sync replica connected (`Rpl_semi_sync_master_clients=0`: with
    /// `rpl_semi_sync_master_wait_no_slave=OFF` MariaDB then still says ON but commits without waiting,
    /// counted in `Rpl_semi_sync_master_no_tx`). False when semi-sync is not enabled or not known.
    /// A source whose commits wait costs one statement; `rpl_semi_sync_master_enabled` is read only
    /// when they do not (the status says OFF too when semi-sync is not enabled).
    pub async fn semi_sync_off(&mut self) -> anyhow::Result<bool> {
        let status = self.semi_sync_status().await?;
        let not_waiting = status
            .get("rpl_semi_sync_master_status")
            .is_some_and(|v| v.eq_ignore_ascii_case("OFF"))
            || status
                .get("rpl_semi_sync_master_clients")
                .is_some_and(|v| v == "0");
        if !not_waiting {
            return Ok(false);
        }
        let enabled = self
            .show_values("SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync_master_enabled'")
            .await?;
        Ok(enabled.values().any(|v| v.eq_ignore_ascii_case("ON")))
    }

    /// The variables the settings check reads, as the server shows them (names lower case; a variable
    /// the server does not have is absent).
    pub async fn server_variables(&mut self) -> anyhow::Result<BTreeMap<String, String>> {
        let names = mmm_proto::settings::VARIABLES
            .iter()
            .map(|v| format!("'{v}'"))
            .collect::<Vec<_>>()
            .join(",");
        self.show_values(&format!(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})"
        ))
        .await
    }

    /// Reads the server's settings and checks them for the writer role with lease `lease`.
    pub async fn check_settings(&mut self, lease: Duration) -> anyhow::Result<SettingsCheck> {
        let variables = self.server_variables().await?;
        let problems = mmm_proto::settings::check(&variables, self.flavor == Flavor::MySql, lease);
        Ok(SettingsCheck {
            variables,
            problems,
        })
    }

    /// The settings problems of this server for the writer role with lease `lease`.
    pub async fn setting_problems(
        &mut self,
        lease: Duration,
    ) -> anyhow::Result<Vec<mmm_proto::settings::SettingProblem>> {
        Ok(self.check_settings(lease).await?.problems)
    }

    /// Application accounts holding a privilege that writes through `read_only`: (user, privilege).
    pub async fn privileged_app_accounts(
        &mut self,
        mmm_users: &[&str],
    ) -> anyhow::Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = self
            .query(sql::privileged_accounts_query(), self.stmt_timeout)
            .await?;
        Ok(rows
            .into_iter()
            .filter(|(g, _)| !sql::is_operational_account(g, mmm_users))
            .collect())
    }

    /// Closes the connection politely (bounded).
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.conn.disconnect()).await;
    }
}

/// Hides the password of a CHANGE MASTER statement in logs and errors.
fn redact(sql: &str) -> String {
    for key in ["MASTER_PASSWORD=", "SOURCE_PASSWORD="] {
        if let Some(start) = sql.find(key) {
            let rest = &sql[start + key.len()..];
            let end = rest
                .find(", ")
                .map(|e| start + key.len() + e)
                .unwrap_or(sql.len());
            return format!("{}{key}'********'{}", &sql[..start], &sql[end..]);
        }
    }
    sql.to_string()
}

#[cfg(test)]
mod tests {

    fn io(kind: std::io::ErrorKind) -> ConnectError {
        ConnectError::Failed(
            "db1:3306".into(),
            mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::from(kind))),
        )
    }

    fn server(code: u16, message: &str) -> ConnectError {
        ConnectError::Failed(
            "db1:3306".into(),
            mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: message.into(),
                state: "HY000".into(),
            }),
        )
    }

    /// Only a refused connection or an absent socket proves mysqld down (a demotion is then acknowledged
    /// without `read_only=1` read back); every other failure leaves the leader waiting for the lease.
    #[test]
    fn only_a_refusal_or_an_absent_socket_proves_mysqld_down() {
        use std::io::ErrorKind::*;
        assert!(io(ConnectionRefused).is_definite());
        assert!(io(NotFound).is_definite());
        for (what, e) in [
            ("reset", io(ConnectionReset)),
            ("closed while logging in", io(UnexpectedEof)),
            (
                "closed by the server",
                ConnectError::Failed(
                    "db1:3306".into(),
                    mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed),
                ),
            ),
            ("too many connections", server(1040, "Too many connections")),
            ("password refused", server(1045, "Access denied for user")),
            (
                "timeout",
                ConnectError::Timeout("db1:3306".into(), std::time::Duration::from_secs(2)),
            ),
        ] {
            assert!(!e.is_definite(), "{what} must not count as mysqld down");
        }
    }

    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let s = sql::change_source(
            Flavor::MariaDb,
            "10.0.0.1".parse().unwrap(),
            3306,
            "r",
            "secret",
        );
        let r = redact(&s);
        assert!(!r.contains("secret"), "{r}");
        assert!(r.contains("MASTER_USE_GTID=slave_pos"), "{r}");
        assert_eq!(redact("STOP SLAVE"), "STOP SLAVE");
    }
}
