//! Faults that break leases in real deployments, beyond kill -9 and partitions: a skewed clock, a session
//! holding locks the agent must get past, an account whose password changed on one server, a full disk.
//! (Pausing processes is on [`Lab`] and [`crate::cluster::MmmCluster`]; one-way blocks and partitions on
//! [`Lab`].)
//!
//! Rules every primitive here follows:
//! - it acts on one server or one process only, and never writes to a binary log what replicas would not
//!   also have: schema and accounts changes run with `sql_log_bin=0`, so a nemesis never breaks
//!   replication by itself (a stray GTID on a replica conflicts under `gtid_strict_mode`);
//! - it has an undo (`release`, `restore_account_password`, `free`, drop) and dropping its handle undoes
//!   it, so a failing test leaves a lab that tears down cleanly;
//! - every wait has a timeout.
//!
//! A *slow* disk cannot be modelled on this machine (no `dm-delay` device mapper target); only a full one.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use mysql_async::prelude::Queryable;
use tokio::sync::{oneshot, watch};

use crate::{mariadb, users, Lab};

/// Where Debian and its derivatives put libfaketime's preload library, most common first.
const FAKETIME_LIBRARIES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// The table the lock and transaction holders use (created on demand on every running server).
pub const NEMESIS_TABLE: &str = "app.nemesis";

/// How often a table lock holder checks that its session is alive, so a KILL of it is noticed this
/// quickly (an idle session learns of its kill only when it next talks to the server).
const HOLDER_KEEPALIVE: Duration = Duration::from_millis(100);
/// Time for a holder's own statements (connect, lock, insert, unlock) when the server is healthy.
const HOLDER_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Margin over a transaction's or statement's sleep before its holder gives up waiting for the server
/// (a server paused or partitioned meanwhile).
const HOLDER_MARGIN: Duration = Duration::from_secs(30);
/// How long creating the nemesis table may take on a server other than the target one: short, since
/// a server that is paused or cut off is skipped (it then lacks the table, see [`Lab::hold_table_lock`]).
const OTHER_SERVER_TIMEOUT: Duration = Duration::from_secs(1);
/// Size of the writes that fill a small disk: large first (fast), then one page (to the last page).
const FILL_CHUNKS: [usize; 2] = [1 << 20, 4096];

/// A clock offset for one process, applied by libfaketime (`LD_PRELOAD`): the process's wall clock
/// (`CLOCK_REALTIME`, `time()`, `gettimeofday`) is off by `seconds`, its monotonic clock is not
/// (`DONT_FAKE_MONOTONIC=1`), like a host whose NTP is broken. Models a monitor or agent whose wall
/// clock disagrees with its peers'; lease arithmetic must not depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSkew {
    /// Offset in seconds; negative = the process's clock is behind.
    pub seconds: i64,
}

impl ClockSkew {
    /// A clock `seconds` behind the real one.
    pub fn behind(seconds: u32) -> Self {
        Self {
            seconds: -i64::from(seconds),
        }
    }
    /// A clock `seconds` ahead of the real one.
    pub fn ahead(seconds: u32) -> Self {
        Self {
            seconds: i64::from(seconds),
        }
    }
    /// libfaketime's relative offset (`FAKETIME=-3s`, `+3s`).
    pub fn faketime_spec(&self) -> String {
        format!("{:+}s", self.seconds)
    }
    /// The environment that runs a program under this skew; fails if libfaketime is not installed.
    pub fn env(&self) -> anyhow::Result<Vec<(String, String)>> {
        let lib = faketime_library()?;
        Ok(vec![
            ("LD_PRELOAD".into(), lib.to_string_lossy().into_owned()),
            ("FAKETIME".into(), self.faketime_spec()),
            ("DONT_FAKE_MONOTONIC".into(), "1".into()),
        ])
    }
}

/// Path of libfaketime's preload library, or an error saying which package installs it.
pub fn faketime_library() -> anyhow::Result<PathBuf> {
    FAKETIME_LIBRARIES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "libfaketime not found (looked in {}): a skewed clock needs it (Debian: apt-get install faketime)",
                FAKETIME_LIBRARIES.join(", ")
            )
        })
}

/// What became of a [`LockHolder`]'s session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HolderOutcome {
    /// The server ended the session (KILL, or the server went away) before the holder finished.
    pub killed: bool,
    /// The final COMMIT (transaction) or the statement (autocommit) succeeded; false for a table lock.
    pub committed: bool,
    /// The error that ended the session early, if any.
    pub error: Option<String>,
}

/// Which work a [`LockHolder`] does.
#[derive(Debug, Clone, Copy)]
enum HolderKind {
    /// `LOCK TABLES ... WRITE` held until released.
    TableLock,
    /// `BEGIN; INSERT; DO SLEEP(n); COMMIT`.
    Transaction(u32),
    /// `UPDATE ... SET v = v + SLEEP(n)` (autocommit).
    Statement(u32),
}

/// A session on one server holding locks (see [`Lab::hold_table_lock`], [`Lab::long_transaction`],
/// [`Lab::long_statement`]); it runs on its own task. Dropping it closes the session (the server then
/// releases the locks and rolls back).
pub struct LockHolder {
    /// The host it runs on, for messages.
    host: String,
    /// What it does, for messages and for how long `release` waits.
    kind: HolderKind,
    /// The session's connection id, for `KILL`.
    connection_id: u32,
    /// Tells a table lock holder to unlock and disconnect; `None` once sent.
    release: Option<oneshot::Sender<()>>,
    /// The outcome, set once when the session ends.
    outcome: watch::Receiver<Option<HolderOutcome>>,
    /// The task; aborted on drop so the session is closed.
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockHolder")
            .field("host", &self.host)
            .field("kind", &self.kind)
            .field("connection_id", &self.connection_id)
            .field("outcome", &*self.outcome.borrow())
            .finish()
    }
}

impl LockHolder {
    /// The session's connection id (`KILL <id>` ends it).
    pub fn connection_id(&self) -> u32 {
        self.connection_id
    }

    /// True once the session has ended because the server ended it (KILL, server gone). A table lock
    /// holder notices within about 100 ms; a transaction or statement at once (its sleep is interrupted).
    pub async fn was_killed(&self) -> bool {
        self.outcome.borrow().as_ref().is_some_and(|o| o.killed)
    }

    /// True once the final COMMIT (or the autocommit statement) has succeeded.
    pub async fn committed(&self) -> bool {
        self.outcome.borrow().as_ref().is_some_and(|o| o.committed)
    }

    /// The outcome if the session has ended.
    pub fn outcome(&self) -> Option<HolderOutcome> {
        self.outcome.borrow().clone()
    }

    /// Waits up to `timeout` for the session to end and returns its outcome.
    pub async fn finished(&self, timeout: Duration) -> anyhow::Result<HolderOutcome> {
        let mut rx = self.outcome.clone();
        let waited = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(o)) => Ok(o.clone().unwrap_or_default()),
            Ok(Err(_)) => bail!("the holder task on {} ended without an outcome", self.host),
            Err(_) => bail!(
                "the {:?} holder on {} has not finished after {timeout:?}",
                self.kind,
                self.host
            ),
        }
    }

    /// Ends the holder and returns its outcome: a table lock is unlocked at once; a transaction or
    /// statement is waited for until it ends by itself (its sleep plus a margin).
    pub async fn release(mut self) -> anyhow::Result<HolderOutcome> {
        let wait = match self.kind {
            HolderKind::TableLock => {
                if let Some(tx) = self.release.take() {
                    let _ = tx.send(());
                }
                HOLDER_STATEMENT_TIMEOUT * 2
            }
            HolderKind::Transaction(s) | HolderKind::Statement(s) => {
                Duration::from_secs(s.into()) + HOLDER_MARGIN
            }
        };
        self.finished(wait).await
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// True if an error means the server ended the session: KILL (1927 connection killed, 1317 query
/// interrupted), a shutdown (1053), or the connection closed under the client.
fn is_session_end(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Server(s) => matches!(s.code, 1927 | 1317 | 1053),
        mysql_async::Error::Io(_) => true,
        mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => true,
        _ => false,
    }
}

/// The outcome of a session that ended with `e`.
fn ended_by(e: &mysql_async::Error) -> HolderOutcome {
    HolderOutcome {
        killed: is_session_end(e),
        committed: false,
        error: Some(e.to_string()),
    }
}

/// Runs one statement of a holder with [`HOLDER_STATEMENT_TIMEOUT`].
async fn holder_exec(c: &mut mysql_async::Conn, sql: &str) -> anyhow::Result<()> {
    tokio::time::timeout(HOLDER_STATEMENT_TIMEOUT, c.query_drop(sql))
        .await
        .with_context(|| format!("`{sql}` timed out"))?
        .with_context(|| format!("`{sql}` failed"))
}

/// What ended a table lock holder's wait.
enum LockEvent {
    /// `release` was called (or the handle dropped).
    Release,
    /// The keepalive failed with this error.
    Failed(mysql_async::Error),
}

/// Keeps a table lock until released or the session dies.
async fn table_lock_task(
    mut c: mysql_async::Conn,
    mut release: oneshot::Receiver<()>,
    done: watch::Sender<Option<HolderOutcome>>,
) {
    let event = loop {
        let keepalive = async {
            tokio::time::sleep(HOLDER_KEEPALIVE).await;
            c.query_drop("DO 0").await
        };
        tokio::select! {
            _ = &mut release => break LockEvent::Release,
            r = keepalive => if let Err(e) = r { break LockEvent::Failed(e) },
        }
    };
    let outcome = match event {
        LockEvent::Release => {
            let unlocked = holder_exec(&mut c, "UNLOCK TABLES").await;
            let _ = tokio::time::timeout(HOLDER_STATEMENT_TIMEOUT, c.disconnect()).await;
            HolderOutcome {
                error: unlocked.err().map(|e| format!("{e:#}")),
                ..Default::default()
            }
        }
        LockEvent::Failed(e) => ended_by(&e),
    };
    let _ = done.send(Some(outcome));
}

/// Sleeps inside an open transaction, then commits.
async fn transaction_task(
    mut c: mysql_async::Conn,
    seconds: u32,
    done: watch::Sender<Option<HolderOutcome>>,
) {
    let limit = Duration::from_secs(seconds.into()) + HOLDER_MARGIN;
    let run = async {
        c.query_drop(format!("DO SLEEP({seconds})")).await?;
        c.query_drop("COMMIT").await
    };
    let outcome = match tokio::time::timeout(limit, run).await {
        Ok(Ok(())) => HolderOutcome {
            committed: true,
            ..Default::default()
        },
        Ok(Err(e)) => ended_by(&e),
        Err(_) => HolderOutcome {
            error: Some(format!("no answer from the server within {limit:?}")),
            ..Default::default()
        },
    };
    let _ = tokio::time::timeout(HOLDER_STATEMENT_TIMEOUT, c.disconnect()).await;
    let _ = done.send(Some(outcome));
}

/// Runs one long autocommit statement.
async fn statement_task(
    mut c: mysql_async::Conn,
    seconds: u32,
    done: watch::Sender<Option<HolderOutcome>>,
) {
    let limit = Duration::from_secs(seconds.into()) + HOLDER_MARGIN;
    let sql = format!("UPDATE {NEMESIS_TABLE} SET v = v + SLEEP({seconds}) WHERE id = 0");
    let outcome = match tokio::time::timeout(limit, c.query_drop(sql)).await {
        Ok(Ok(())) => HolderOutcome {
            committed: true,
            ..Default::default()
        },
        Ok(Err(e)) => ended_by(&e),
        Err(_) => HolderOutcome {
            error: Some(format!("no answer from the server within {limit:?}")),
            ..Default::default()
        },
    };
    let _ = tokio::time::timeout(HOLDER_STATEMENT_TIMEOUT, c.disconnect()).await;
    let _ = done.send(Some(outcome));
}

/// A tmpfs of a fixed size mounted at a path (see [`Lab::small_disk`]): a disk that can be filled up.
/// Dropping it unmounts it (lazily if a process still uses it).
#[derive(Debug)]
pub struct SmallDisk {
    /// The mount point.
    path: PathBuf,
    /// The file `fill` writes, under the mount point; hidden name so it does not look like data.
    filler: PathBuf,
}

impl SmallDisk {
    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a file until the disk is full (ENOSPC), so any later write there fails; returns the bytes
    /// written.
    pub async fn fill(&self) -> anyhow::Result<u64> {
        let filler = self.filler.clone();
        tokio::task::spawn_blocking(move || fill_file(&filler))
            .await
            .context("fill task")?
    }

    /// Deletes what `fill` wrote, so writes work again.
    pub async fn free(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.filler) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", self.filler.display())),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        unmount(&self.path);
    }
}

/// Writes zeros to `path` until the file system is full; other errors fail.
fn fill_file(path: &Path) -> anyhow::Result<u64> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut written = 0u64;
    for size in FILL_CHUNKS {
        let chunk = vec![0u8; size];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(e).with_context(|| format!("writing {}", path.display())),
            }
        }
    }
    Ok(written)
}

/// True if `path` is a mount point (per `/proc/self/mountinfo`).
pub fn is_mounted(path: &Path) -> bool {
    mount_points().iter().any(|m| m == path)
}

/// Every mount point of this process's mount namespace.
fn mount_points() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .collect()
}

/// Unmounts `path` if it is mounted, lazily (detached now, freed when unused) if it is busy. Errors
/// are logged only: this runs from `Drop`.
pub(crate) fn unmount(path: &Path) {
    if !is_mounted(path) {
        return;
    }
    let p = path.to_string_lossy();
    if crate::cmd::run_sync("umount", &[&p]).is_err() {
        if let Err(e) = crate::cmd::run_sync("umount", &["-l", &p]) {
            tracing::warn!(path = %p, error = %e, "cannot unmount");
        }
    }
}

/// Unmounts every mount point whose path starts with `prefix` (what a crashed lab left under its dir).
pub(crate) fn unmount_under(prefix: &str) {
    for m in mount_points() {
        if m.to_string_lossy().starts_with(prefix) {
            unmount(&m);
        }
    }
}

impl Lab {
    /// A root connection to `host` with `sql_log_bin=0`, so what it changes stays on that server.
    async fn local_root(&self, host: &str, timeout: Duration) -> anyhow::Result<mysql_async::Conn> {
        let mut c = self.mysql_timeout(host, timeout).await?;
        mariadb::exec(&mut c, "SET SESSION sql_log_bin=0").await?;
        Ok(c)
    }

    /// Creates [`NEMESIS_TABLE`] with its row `id = 0` on `host` (must work) and on every other running
    /// server (skipped if it does not answer quickly), each locally: replicated changes to the table
    /// then apply everywhere.
    async fn ensure_nemesis_table(&self, host: &str) -> anyhow::Result<()> {
        let sql = [
            format!(
                "CREATE TABLE IF NOT EXISTS {NEMESIS_TABLE} \
                 (id BIGINT PRIMARY KEY, v BIGINT NOT NULL DEFAULT 0) ENGINE=InnoDB"
            ),
            format!("INSERT IGNORE INTO {NEMESIS_TABLE} (id) VALUES (0)"),
        ];
        for h in self.hosts() {
            let target = h.name == host;
            if !target && (!self.mysqld_running(&h.name) || self.paused_mysqld().contains(&h.name))
            {
                continue;
            }
            let timeout = if target {
                HOLDER_STATEMENT_TIMEOUT
            } else {
                OTHER_SERVER_TIMEOUT
            };
            let made = async {
                let mut c = self.local_root(&h.name, timeout).await?;
                for s in &sql {
                    mariadb::exec(&mut c, s).await?;
                }
                let _ = c.disconnect().await;
                anyhow::Ok(())
            };
            match tokio::time::timeout(HOLDER_STATEMENT_TIMEOUT, made).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if target => return Err(e),
                Err(_) if target => bail!("creating {NEMESIS_TABLE} on {host} timed out"),
                Ok(Err(e)) => {
                    tracing::warn!(host = h.name, error = %e, "{NEMESIS_TABLE} not created")
                }
                Err(_) => tracing::warn!(host = h.name, "{NEMESIS_TABLE} not created (timeout)"),
            }
        }
        Ok(())
    }

    /// A root session on `host` holding `LOCK TABLES app.nemesis WRITE` until the holder is released or
    /// dropped — a backup tool or an operator's session holding a table lock. `SET GLOBAL read_only=1`
    /// then waits for it (up to `lock_wait_timeout`), which is what an agent demoting the writer must
    /// handle: give up in time or kill the session.
    pub async fn hold_table_lock(&self, host: &str) -> anyhow::Result<LockHolder> {
        self.ensure_nemesis_table(host).await?;
        let mut c = self.local_root(host, HOLDER_STATEMENT_TIMEOUT).await?;
        holder_exec(&mut c, &format!("LOCK TABLES {NEMESIS_TABLE} WRITE")).await?;
        let id = c.id();
        let (release, release_rx) = oneshot::channel();
        let (done, outcome) = watch::channel(None);
        let task = tokio::spawn(table_lock_task(c, release_rx, done));
        tracing::info!(host, connection_id = id, "table lock held");
        Ok(LockHolder {
            host: host.to_string(),
            kind: HolderKind::TableLock,
            connection_id: id,
            release: Some(release),
            outcome,
            task,
        })
    }

    /// An application session on `host` that opens a transaction, inserts a row into `app.nemesis`
    /// (holding its row lock and an uncommitted change), sleeps `seconds` inside the transaction
    /// (`DO SLEEP`), then commits — a slow application transaction open across a demotion. As the
    /// application user, read_only applies to it: its COMMIT fails if the server became read-only, and
    /// [`LockHolder::committed`] says whether the write was committed (and is binlogged). The row
    /// replicates: a server that was paused or cut off when the table was first created lacks the table
    /// and stops replicating on it.
    pub async fn long_transaction(&self, host: &str, seconds: u32) -> anyhow::Result<LockHolder> {
        self.ensure_nemesis_table(host).await?;
        let ip = self
            .try_host(host)
            .ok_or_else(|| anyhow!("the lab has no DB host {host}"))?
            .ip;
        let mut c = self.connect_ip(ip, HOLDER_STATEMENT_TIMEOUT).await?;
        let row: i64 = rand::random_range(1..i64::MAX);
        holder_exec(&mut c, "BEGIN").await?;
        holder_exec(
            &mut c,
            &format!("INSERT INTO {NEMESIS_TABLE} (id, v) VALUES ({row}, 1)"),
        )
        .await?;
        let id = c.id();
        let (done, outcome) = watch::channel(None);
        let task = tokio::spawn(transaction_task(c, seconds, done));
        tracing::info!(host, connection_id = id, seconds, "long transaction open");
        Ok(LockHolder {
            host: host.to_string(),
            kind: HolderKind::Transaction(seconds),
            connection_id: id,
            release: None,
            outcome,
            task,
        })
    }

    /// An application session on `host` running one statement for `seconds`: `UPDATE app.nemesis SET v =
    /// v + SLEEP(seconds) WHERE id = 0` (autocommit) — a slow query in flight during a demotion; it holds
    /// the row's lock and the table's metadata lock while it runs.
    pub async fn long_statement(&self, host: &str, seconds: u32) -> anyhow::Result<LockHolder> {
        self.ensure_nemesis_table(host).await?;
        let ip = self
            .try_host(host)
            .ok_or_else(|| anyhow!("the lab has no DB host {host}"))?
            .ip;
        let c = self.connect_ip(ip, HOLDER_STATEMENT_TIMEOUT).await?;
        let id = c.id();
        let (done, outcome) = watch::channel(None);
        let task = tokio::spawn(statement_task(c, seconds, done));
        tracing::info!(host, connection_id = id, seconds, "long statement running");
        Ok(LockHolder {
            host: host.to_string(),
            kind: HolderKind::Statement(seconds),
            connection_id: id,
            release: None,
            outcome,
            task,
        })
    }

    /// Changes the password of account `user@'%'` on `host` only (`sql_log_bin=0`, not replicated): a
    /// server whose credentials drifted from the configuration, so the agent's or monitor's connections to
    /// it fail with an access error while the others work. Not for the root account (the lab needs it).
    pub async fn set_account_password(
        &self,
        host: &str,
        user: &str,
        password: &str,
    ) -> anyhow::Result<()> {
        if user == users::ROOT_USER {
            bail!("the lab's own root account cannot be changed");
        }
        let mut c = self.local_root(host, HOLDER_STATEMENT_TIMEOUT).await?;
        let sql = format!(
            "ALTER USER '{}'@'%' IDENTIFIED BY '{}'",
            sql_quote(user),
            sql_quote(password)
        );
        mariadb::exec(&mut c, &sql).await?;
        let _ = c.disconnect().await;
        tracing::info!(host, user, "account password changed on this server only");
        Ok(())
    }

    /// Gives a lab account back its standard password on `host` (undoes [`Lab::set_account_password`]).
    pub async fn restore_account_password(&self, host: &str, user: &str) -> anyhow::Result<()> {
        let password = users::password_of(user)
            .ok_or_else(|| anyhow!("{user} is not one of the lab's accounts"))?;
        self.set_account_password(host, user, password).await
    }

    /// A connection to `host` as any account (e.g. checking that a password works).
    pub async fn connect_as(
        &self,
        host: &str,
        user: &str,
        password: &str,
        timeout: Duration,
    ) -> anyhow::Result<mysql_async::Conn> {
        let ip = self
            .try_host(host)
            .ok_or_else(|| anyhow!("the lab has no DB host {host}"))?
            .ip;
        mariadb::connect(ip, user, password, None, timeout).await
    }

    /// Creates [`users::SUPERAPP_USER`] on every server, binary log off (no transaction of its own
    /// anywhere).
    pub async fn create_privileged_app_account(&self) -> anyhow::Result<()> {
        use users::{SUPERAPP_PASSWORD as PW, SUPERAPP_USER as U};
        for h in self.hosts() {
            let mut c = self.mysql(&h.name).await?;
            mariadb::exec(&mut c, "SET SESSION sql_log_bin = 0").await?;
            mariadb::exec(
                &mut c,
                &format!("CREATE USER '{U}'@'%' IDENTIFIED BY '{PW}'"),
            )
            .await?;
            mariadb::exec(&mut c, &format!("GRANT ALL ON *.* TO '{U}'@'%'")).await?;
            let _ = c.disconnect().await;
        }
        Ok(())
    }

    /// Logs in as [`users::SUPERAPP_USER`] on `host`'s own address and writes there (a schema, binary
    /// log off so the write leaves no transaction to replicate): what a privileged client that still
    /// reaches an old writer does. The error says why it could not.
    pub async fn privileged_write(&self, host: &str) -> anyhow::Result<()> {
        let mut c = self
            .connect_as(
                host,
                users::SUPERAPP_USER,
                users::SUPERAPP_PASSWORD,
                Duration::from_secs(3),
            )
            .await?;
        for sql in [
            "SET SESSION sql_log_bin = 0",
            "CREATE DATABASE IF NOT EXISTS privileged_probe",
            "DROP DATABASE privileged_probe",
        ] {
            mariadb::exec(&mut c, sql).await?;
        }
        let _ = c.disconnect().await;
        Ok(())
    }

    /// Mounts a tmpfs of `size_mib` MiB at `path` (created if needed): a small disk that
    /// [`SmallDisk::fill`] makes full (a slow disk cannot be modelled here: no `dm-delay`). Processes started afterwards in any namespace see it (each
    /// `ip netns exec` copies the mounts of the moment), so mount it before starting the process that
    /// should use it. Unmounted when the handle or the lab is dropped.
    pub async fn small_disk(&self, path: &Path, size_mib: u32) -> anyhow::Result<SmallDisk> {
        if size_mib == 0 {
            bail!("a small disk needs at least 1 MiB");
        }
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        if is_mounted(path) {
            bail!("{} is already a mount point", path.display());
        }
        crate::cmd::run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_mib}m,mode=0755"),
                "tmpfs",
                &path.to_string_lossy(),
            ],
        )
        .await?;
        self.mounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path.to_path_buf());
        tracing::info!(path = %path.display(), size_mib, "small disk mounted");
        Ok(SmallDisk {
            path: path.to_path_buf(),
            filler: path.join(".nemesis-filler"),
        })
    }

    /// The data directory the lab's configuration gives monitor `name` (`<lab dir>/<name>/data`).
    pub fn monitor_data_dir(&self, name: &str) -> PathBuf {
        self.dir().join(name).join("data")
    }

    /// A small disk mounted at monitor `name`'s data directory; call it before starting the monitor
    /// (e.g. between [`crate::cluster::MmmCluster::configure`] and `start_monitor`).
    pub async fn small_disk_for_monitor(
        &self,
        name: &str,
        size_mib: u32,
    ) -> anyhow::Result<SmallDisk> {
        self.monitor(name);
        self.small_disk(&self.monitor_data_dir(name), size_mib)
            .await
    }

    /// Runs `program args` in a node's namespace under a skewed clock and returns its stdout (e.g.
    /// `date +%s` to see the clock the process sees).
    pub async fn run_with_clock(
        &self,
        node: &str,
        skew: ClockSkew,
        program: &str,
        args: &[&str],
    ) -> anyhow::Result<String> {
        let env = skew.env()?;
        let mut full: Vec<&str> = Vec::new();
        let ns = self.ns_of(node)?;
        let prog = match &ns {
            Some(ns) => {
                full.extend(["netns", "exec", ns.as_str(), program]);
                "ip"
            }
            None => program,
        };
        full.extend(args);
        crate::cmd::run_env(prog, &full, &env).await
    }
}

/// Escapes a string for a single-quoted SQL literal.
fn sql_quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "''")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_renders_faketime_offsets() {
        assert_eq!(ClockSkew::behind(3).faketime_spec(), "-3s");
        assert_eq!(ClockSkew::ahead(3).faketime_spec(), "+3s");
        assert_eq!(ClockSkew { seconds: 0 }.faketime_spec(), "+0s");
    }

    #[test]
    fn fill_stops_at_enospc_only() {
        // A directory is not writable as a file: an error other than ENOSPC is reported.
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(fill_file(dir.path()).is_err());
    }

    #[test]
    fn quotes_are_escaped() {
        assert_eq!(sql_quote("a'b\\c"), "a''b\\\\c");
    }
}
