//! The checks against a real MariaDB server (a throwaway `mariadbd` on 127.0.0.1 in a temporary
//! datadir, with real accounts), a server that accepts TCP but never answers, and real ICMP.
//!
//! Needs `mariadb-server` installed and root (ICMP sockets); the MariaDB tests are skipped with a
//! message when `mariadbd` is not installed.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mmm_config::{CheckConfig, Checks};
use mmm_monitor::checks::mysql::{self, MysqlProbe};
use mmm_monitor::checks::{CheckSnapshot, CheckStatus, Checker, HostTarget};
use mysql_async::prelude::Queryable;
use tokio::sync::watch;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const MON_USER: &str = "mmm_monitor";
const MON_PASSWORD: &str = "monitor-pw";
const ADMIN_USER: &str = "mmm_admin";
const ADMIN_PASSWORD: &str = "admin-pw";

/// A throwaway mariadbd; killed (-9) on drop.
struct Mariadb {
    /// The server process.
    child: Child,
    /// TCP port on 127.0.0.1.
    port: u16,
    /// Holds the datadir until the test ends.
    _dir: tempfile::TempDir,
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(bin: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cnf(dir: &Path, port: u16) -> PathBuf {
    let cnf = dir.join("my.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[mariadbd]\ndatadir={d}/data\ntmpdir={d}\nsocket={d}/s.sock\nport={port}\nbind-address=127.0.0.1\n\
             pid-file={d}/m.pid\nlog-error={d}/err.log\nskip-log-bin\nskip-name-resolve\n\
             innodb_buffer_pool_size=16M\ninnodb_log_file_size=8M\ninnodb_use_native_aio=0\n\
             performance_schema=OFF\nserver-id=7\n",
            d = dir.display()
        ),
    )
    .unwrap();
    cnf
}

/// Installs a datadir with our accounts and starts the server; None when MariaDB is not installed.
async fn start_mariadb() -> Option<Mariadb> {
    let (Some(install), Some(mariadbd)) = (find("mariadb-install-db"), find("mariadbd")) else {
        panic!("these tests need MariaDB: install Debian's mariadb-server (mariadbd, mariadb-install-db)");
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cnf = cnf(dir.path(), port);
    let defaults = format!("--defaults-file={}", cnf.display());
    let st = Command::new(install)
        .args([
            &defaults,
            "--auth-root-authentication-method=normal",
            "--user=root",
            "--skip-test-db",
        ])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "mariadb-install-db failed: {}{}\nerr.log:\n{}",
        String::from_utf8_lossy(&st.stdout),
        String::from_utf8_lossy(&st.stderr),
        std::fs::read_to_string(dir.path().join("err.log")).unwrap_or_default()
    );
    let sql = format!(
        "FLUSH PRIVILEGES;\n\
         CREATE USER '{MON_USER}'@'%' IDENTIFIED BY '{MON_PASSWORD}';\n\
         GRANT REPLICATION CLIENT, SLAVE MONITOR ON *.* TO '{MON_USER}'@'%';\n\
         CREATE USER '{ADMIN_USER}'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}';\n\
         GRANT ALL ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;\n"
    );
    let mut boot = Command::new(&mariadbd)
        .args([&defaults, "--user=root", "--bootstrap"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    boot.stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    assert!(
        boot.wait().unwrap().success(),
        "mariadbd --bootstrap failed"
    );
    let child = Command::new(&mariadbd)
        .args([&defaults, "--user=root"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let db = Mariadb {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if admin(&db).await.is_ok() {
            return Some(db);
        }
        assert!(
            Instant::now() < deadline,
            "mariadbd did not come up within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn admin(db: &Mariadb) -> Result<mysql_async::Conn, mysql_async::Error> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(db.port)
        .user(Some(ADMIN_USER))
        .pass(Some(ADMIN_PASSWORD))
        .prefer_socket(false);
    match tokio::time::timeout(Duration::from_secs(2), mysql_async::Conn::new(opts)).await {
        Ok(r) => r,
        Err(_) => Err(mysql_async::Error::Other("connect timed out".into())),
    }
}

fn probe(port: u16) -> MysqlProbe {
    MysqlProbe::new(LOCALHOST, port, MON_USER, MON_PASSWORD)
}

/// A TCP server that accepts connections and never says anything (a hung mysqld).
async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (port, h)
}

fn fast(check_period_ms: u64, timeout_ms: u64) -> CheckConfig {
    CheckConfig {
        check_period: Duration::from_millis(check_period_ms),
        trap_period: Duration::ZERO,
        timeout: Duration::from_millis(timeout_ms),
        restart_after: 0,
        max_backlog: Duration::from_secs(60),
    }
}

/// Waits (on the change counter, with a deadline) until `pred` holds for the snapshot.
async fn wait_for(
    checker: &Checker,
    within: Duration,
    what: &str,
    pred: impl Fn(&[CheckSnapshot]) -> bool,
) {
    let mut changes = checker.changes();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let snap = checker.snapshot();
        if pred(&snap) {
            return;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!("timed out waiting for {what}; snapshot: {snap:#?}"),
        }
    }
}

fn get<'a>(s: &'a [CheckSnapshot], host: &str, check: &str) -> Option<&'a CheckSnapshot> {
    s.iter().find(|c| c.host == host && c.check == check)
}

fn is(s: &[CheckSnapshot], host: &str, check: &str, status: CheckStatus) -> bool {
    get(s, host, check).is_some_and(|c| c.status == status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_and_replication_checks_on_real_mariadb() {
    let Some(db) = start_mariadb().await else {
        return;
    };
    let mut p = probe(db.port);

    let r = p.check_mysql(Duration::from_secs(2)).await;
    assert_eq!(r.status, CheckStatus::Ok, "{r:?}");
    assert!(p.connected(), "the connection is kept");
    let r = p.check_mysql(Duration::from_secs(2)).await;
    assert_eq!(r.status, CheckStatus::Ok, "reused connection works: {r:?}");

    let st = p.slave_status(Duration::from_secs(2)).await;
    assert_eq!(st, Ok(None), "a fresh server is no replica");
    let r = mysql::rep_threads(&st);
    assert_eq!(
        (r.status, r.message.as_str()),
        (CheckStatus::Fail, "Replication is not set up")
    );

    // A replica whose threads are not running: broken.
    let mut a = admin(&db).await.unwrap();
    a.query_drop("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=1, MASTER_USER='x', MASTER_PASSWORD='y'")
        .await
        .unwrap();
    let st = p.slave_status(Duration::from_secs(2)).await;
    let s = st
        .clone()
        .unwrap()
        .expect("a row once replication is configured");
    assert_eq!(
        (s.io_running.as_str(), s.sql_running.as_str()),
        ("No", "No")
    );
    let r = mysql::rep_threads(&st);
    assert_eq!(r.status, CheckStatus::Fail);
    assert!(r.message.starts_with("Replication is broken"), "{r:?}");
    assert_eq!(
        mysql::rep_backlog(&st, Duration::from_secs(60)).status,
        CheckStatus::Ok,
        "NULL counts as 0"
    );

    // Too many connections (1040) is Unknown, not a failure. (MariaDB's lowest max_connections
    // is 10; the admin and `p` hold two.)
    a.query_drop("SET GLOBAL max_connections = 10")
        .await
        .unwrap();
    let mut holders = Vec::new();
    let refused = loop {
        assert!(
            holders.len() < 20,
            "max_connections never refused a connection"
        );
        let mut h = probe(db.port);
        let r = h.check_mysql(Duration::from_secs(2)).await;
        if r.status != CheckStatus::Ok {
            break r;
        }
        holders.push(h);
    };
    assert_eq!(refused.status, CheckStatus::Unknown, "{refused:?}");
    assert!(
        refused.message.contains("1040") || refused.message.to_lowercase().contains("too many"),
        "{refused:?}"
    );
    drop(holders);
    a.query_drop("SET GLOBAL max_connections = 100")
        .await
        .unwrap();
    drop(a);

    // kill -9: the kept connection breaks, and reconnecting is refused.
    let mut db = db;
    db.child.kill().unwrap();
    db.child.wait().unwrap();
    let r = p.check_mysql(Duration::from_secs(2)).await;
    assert_eq!(r.status, CheckStatus::Fail, "{r:?}");
    assert!(!p.connected());
    let start = Instant::now();
    let r = p.check_mysql(Duration::from_secs(2)).await;
    assert_eq!(r.status, CheckStatus::Fail, "{r:?}");
    assert!(r.message.starts_with("Connect error"), "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "refused is immediate, not a timeout"
    );
}

#[tokio::test]
async fn silent_server_times_out_within_timeout() {
    let (port, server) = silent_server().await;
    let mut p = probe(port);
    let start = Instant::now();
    let r = p.check_mysql(Duration::from_millis(400)).await;
    let took = start.elapsed();
    assert_eq!(r.status, CheckStatus::Fail, "{r:?}");
    assert!(r.message.contains("timed out"), "{r:?}");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(900),
        "took {took:?}"
    );
    server.abort();
}

/// Two hosts checked by one checker: a real server and one that hangs. The hung host's checks
/// time out after 2 s each, yet the real host's checks keep their 100 ms rhythm: its kill -9 is
/// seen well within one of the hung host's timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_host_does_not_delay_another() {
    let Some(mut db) = start_mariadb().await else {
        return;
    };
    let (hung_port, server) = silent_server().await;
    let target = |name: &str, port| HostTarget {
        name: name.into(),
        ip: LOCALHOST,
        mysql_port: port,
        user: MON_USER.into(),
        password: MON_PASSWORD.into(),
    };
    let checks = Checks {
        ping: fast(100, 500),
        mysql: fast(100, 2000),
        rep_threads: fast(100, 2000),
        rep_backlog: fast(100, 2000),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let checker = Checker::start_with(
        vec![target("db1", db.port), target("db2", hung_port)],
        checks,
        vec![LOCALHOST],
        Duration::from_millis(200),
        stop_rx,
    );
    wait_for(
        &checker,
        Duration::from_secs(5),
        "db1 mysql OK, pings OK",
        |s| {
            is(s, "db1", "mysql", CheckStatus::Ok)
                && is(s, "db1", "ping", CheckStatus::Ok)
                && is(s, "db2", "ping", CheckStatus::Ok)
                && is(s, "db1", "rep_threads", CheckStatus::Fail)
        },
    )
    .await;
    let s = checker.snapshot();
    assert!(get(&s, "db1", "mysql").unwrap().counted_ok);
    assert_eq!(
        get(&s, "db1", "rep_threads").unwrap().message,
        "Replication is not set up"
    );
    assert!(checker.network_ok(), "127.0.0.1 answers");

    wait_for(
        &checker,
        Duration::from_secs(5),
        "db2 mysql timed out",
        |s| is(s, "db2", "mysql", CheckStatus::Fail),
    )
    .await;
    let s = checker.snapshot();
    assert!(get(&s, "db2", "mysql")
        .unwrap()
        .message
        .contains("timed out"));
    assert!(!get(&s, "db2", "mysql").unwrap().counted_ok);

    // db2's checks are now hanging 2 s at a time; db1's failure must still be seen fast.
    db.child.kill().unwrap();
    db.child.wait().unwrap();
    let killed = Instant::now();
    wait_for(&checker, Duration::from_secs(5), "db1 mysql failed", |s| {
        is(s, "db1", "mysql", CheckStatus::Fail)
    })
    .await;
    let seen = killed.elapsed();
    assert!(
        seen < Duration::from_millis(1500),
        "db1's failure seen after {seen:?}, delayed by db2"
    );
    assert!(
        !get(&checker.snapshot(), "db1", "mysql").unwrap().counted_ok,
        "trap_period 0 counts at once"
    );

    stop_tx.send(true).unwrap();
    server.abort();
}
