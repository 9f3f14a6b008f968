//! MariaDB servers of the lab: the cached template datadir (installed once, accounts created once), each
//! host's option file, readiness and replication set-up.

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use mysql_async::prelude::Queryable;

use crate::cmd::{run_sync, run_sync_input};
use crate::users;

/// Port every lab server listens on (each in its own namespace).
pub(crate) const MYSQL_PORT: u16 = 3306;
/// Where template datadirs are cached between runs.
const TEMPLATE_ROOT: &str = "/var/tmp/mmm-lab";

/// Server options shared by the template bootstrap and every host: small memory and log files so a dozen
/// servers start in seconds on a small machine; crash-safe against kill -9 (the OS keeps written pages).
fn base_options() -> &'static str {
    "innodb_buffer_pool_size=32M\n\
     innodb_log_file_size=16M\n\
     innodb_log_buffer_size=4M\n\
     innodb_use_native_aio=0\n\
     innodb_flush_log_at_trx_commit=2\n\
     performance_schema=OFF\n\
     skip-name-resolve\n\
     max_connections=200\n"
}

/// What one host's option file says.
pub(crate) struct ServerCnf<'a> {
    /// The host's data directory.
    pub datadir: &'a Path,
    /// Its own directory for temporary files: a starting server deletes every `#sql*` file in its
    /// tmpdir, which must not be another server's temporary tables.
    pub tmpdir: &'a Path,
    /// Unix socket path (inside the lab dir).
    pub socket: &'a Path,
    /// Pid file path.
    pub pid_file: &'a Path,
    /// Unique server id.
    pub server_id: u32,
    /// The host's own address (reported to its master).
    pub ip: Ipv4Addr,
    /// `read_only` at start (the lab starts every server read-only and opens db1 at run time).
    pub read_only: bool,
    /// Turn on semi-synchronous replication (master side: a commit waits for a replica's ack).
    pub semi_sync: bool,
    /// This server acknowledges semi-synchronous commits. Only the masters do: an acknowledged write
    /// is then always on the failover candidate (the writer's peer), never only on a replica that will
    /// not be promoted.
    pub semi_sync_acks: bool,
}

impl ServerCnf<'_> {
    /// The option file text. The server binds to every address of its namespace (its own IP and the VIPs an
    /// agent adds); the namespace holds nothing else.
    pub fn render(&self) -> String {
        let mut s = String::from("[mariadbd]\n");
        let _ = writeln!(s, "datadir={}", self.datadir.display());
        let _ = writeln!(s, "socket={}", self.socket.display());
        let _ = writeln!(s, "tmpdir={}", self.tmpdir.display());
        let _ = writeln!(s, "pid-file={}", self.pid_file.display());
        let _ = writeln!(s, "port={MYSQL_PORT}");
        s += "bind-address=0.0.0.0\n";
        let _ = writeln!(s, "server_id={}", self.server_id);
        let _ = writeln!(s, "report_host={}", self.ip);
        s += "log-bin=mysql-bin\nrelay-log=relay-bin\nlog-slave-updates=1\ngtid-strict-mode=1\nbinlog_format=ROW\n";
        let _ = writeln!(s, "read_only={}", u8::from(self.read_only));
        s += "slave_net_timeout=5\n";
        s += base_options();
        if self.semi_sync {
            // AFTER_SYNC: the transaction is not visible to other clients before a replica has it.
            // wait_no_slave=OFF: a master with no semi-sync replica connected (its peer is down, e.g. the
            // new writer right after a failover) does not hold every commit for the timeout.
            // timeout 5 s: longer than the writer lease plus the fence (2.4 s), so an old writer cut off
            // from its peer never falls back to acknowledging alone before its lease ends; the commits
            // still waiting then are killed by the demotion (unacknowledged).
            s += "rpl_semi_sync_master_enabled=ON\nrpl_semi_sync_master_wait_point=AFTER_SYNC\n\
                  rpl_semi_sync_master_wait_no_slave=OFF\nrpl_semi_sync_master_timeout=5000\n";
        }
        if self.semi_sync_acks {
            // kill_conn_timeout 1 s (default 5 s): stopping the IO thread of a semi-sync replica first
            // connects to its master to kill the dump thread there; when that master is unreachable
            // (the failover's old writer, which the candidate isolates before it opens) the stop
            // waits this long.
            s += "rpl_semi_sync_slave_enabled=ON\nrpl_semi_sync_slave_kill_conn_timeout=1\n";
        }
        s
    }
}

/// Takes an exclusive flock on `path`, blocking; released when the file is dropped.
fn lock_file(path: &Path) -> anyhow::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!(
            "flock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(f)
}

/// Returns the cached template datadir, creating it (install + accounts) if this server version and account
/// set have none yet. Blocking; several processes may call it at once (flock).
pub(crate) fn ensure_template(mariadbd: &Path, install_db: &Path) -> anyhow::Result<PathBuf> {
    let version = run_sync(&mariadbd.to_string_lossy(), &["--version"])
        .context("asking mariadbd for its version")?;
    let sql = users::setup_sql();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (version.trim(), &sql, base_options()).hash(&mut h);
    let root = Path::new(TEMPLATE_ROOT);
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {TEMPLATE_ROOT}"))?;
    let template = root.join(format!("template-{:016x}", h.finish()));
    let _lock = lock_file(&root.join("template.lock"))?;
    if template.join("mysql").is_dir() {
        return Ok(template);
    }
    let started = std::time::Instant::now();
    let build = root.join(format!("build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&build);
    std::fs::create_dir_all(&build)?;
    let data = build.join("data");
    let cnf = build.join("my.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[mariadbd]\ndatadir={}\nsocket={}\ntmpdir={}\nskip-networking\nskip-log-bin\n{}",
            data.display(),
            build.join("s.sock").display(),
            build.display(),
            base_options()
        ),
    )?;
    let defaults = format!("--defaults-file={}", cnf.display());
    run_sync(
        &install_db.to_string_lossy(),
        &[
            &defaults,
            "--auth-root-authentication-method=normal",
            "--user=root",
            "--skip-test-db",
        ],
    )
    .context("mariadb-install-db failed while making the lab's template datadir")?;
    run_sync_input(
        &mariadbd.to_string_lossy(),
        &[&defaults, "--user=root", "--bootstrap"],
        Some(&sql),
    )
    .context("creating the lab's accounts in the template datadir (mariadbd --bootstrap)")?;
    std::fs::rename(&data, &template)
        .with_context(|| format!("moving template to {}", template.display()))?;
    let _ = std::fs::remove_dir_all(&build);
    tracing::info!(template = %template.display(), elapsed = ?started.elapsed(), "MariaDB template datadir created");
    Ok(template)
}

/// Copies the template datadir to a host's datadir.
pub(crate) async fn copy_template(template: &Path, datadir: &Path) -> anyhow::Result<()> {
    crate::cmd::run(
        "cp",
        &[
            "-a",
            "--reflink=auto",
            &template.to_string_lossy(),
            &datadir.to_string_lossy(),
        ],
    )
    .await
    .context("copying the template datadir")?;
    Ok(())
}

/// Opens a connection with a connect timeout.
pub(crate) async fn connect(
    ip: Ipv4Addr,
    user: &str,
    password: &str,
    db: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<mysql_async::Conn> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(ip.to_string())
        .tcp_port(MYSQL_PORT)
        .user(Some(user))
        .pass(Some(password))
        .db_name(db)
        .prefer_socket(false);
    match tokio::time::timeout(timeout, mysql_async::Conn::new(opts)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => {
            Err(anyhow::Error::new(e).context(format!("connecting to {ip}:{MYSQL_PORT} as {user}")))
        }
        Err(_) => bail!("connecting to {ip}:{MYSQL_PORT} as {user}: no answer within {timeout:?}"),
    }
}

/// Runs one statement with a timeout.
pub(crate) async fn exec(conn: &mut mysql_async::Conn, sql: &str) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(10), conn.query_drop(sql))
        .await
        .with_context(|| format!("`{sql}` timed out"))?
        .with_context(|| format!("`{sql}` failed"))
}

/// Points a server at its master (GTID, slave_pos) and starts replication.
pub(crate) async fn start_replication(
    conn: &mut mysql_async::Conn,
    master: Ipv4Addr,
) -> anyhow::Result<()> {
    let sql = format!(
        "CHANGE MASTER TO MASTER_HOST='{master}', MASTER_PORT={MYSQL_PORT}, MASTER_USER='{}', \
         MASTER_PASSWORD='{}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
        users::REPLICATION_USER,
        users::REPLICATION_PASSWORD
    );
    exec(conn, &sql).await?;
    exec(conn, "START SLAVE").await
}

/// Replication thread state of a server: `Ok(None)` when both threads run, `Ok(Some(why))` otherwise.
pub(crate) async fn replication_problem(
    conn: &mut mysql_async::Conn,
) -> anyhow::Result<Option<String>> {
    let row: Option<mysql_async::Row> = tokio::time::timeout(
        Duration::from_secs(5),
        conn.query_first("SHOW SLAVE STATUS"),
    )
    .await
    .context("SHOW SLAVE STATUS timed out")??;
    let Some(row) = row else {
        return Ok(Some("replication is not set up".into()));
    };
    let get = |name: &str| -> String {
        row.get_opt::<String, _>(name)
            .and_then(Result::ok)
            .unwrap_or_default()
    };
    let (io, sql) = (get("Slave_IO_Running"), get("Slave_SQL_Running"));
    if io == "Yes" && sql == "Yes" {
        return Ok(None);
    }
    Ok(Some(format!(
        "IO thread {io} ({}), SQL thread {sql} ({})",
        get("Last_IO_Error"),
        get("Last_SQL_Error")
    )))
}
