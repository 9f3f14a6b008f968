//! Tests of the lab's nemesis primitives: each fault is observed from outside to do what it says (and to
//! stop when undone), so the fault scenarios built on them test the cluster, not the lab.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mmm_lab::cluster::MmmCluster;
use mmm_lab::users::{AGENT_PASSWORD, AGENT_USER};
use mmm_lab::{is_mounted, ClockSkew, Lab, LabSpec};
use mysql_async::prelude::Queryable;

/// A small lab: `db_hosts` servers, `monitors` monitor namespaces, `clients` client namespaces.
fn spec(db_hosts: usize, monitors: usize, clients: usize) -> LabSpec {
    LabSpec {
        db_hosts,
        monitors,
        semi_sync: false,
        vips: 0,
        clients,
    }
}

/// Opens a TCP connection from inside namespace `ns` to `ip:port` within 1 s (bash /dev/tcp).
async fn tcp_from_ns(ns: &str, ip: Ipv4Addr, port: u16) -> bool {
    let script = format!("exec 3<>/dev/tcp/{ip}/{port}");
    tokio::process::Command::new("ip")
        .args(["netns", "exec", ns, "timeout", "1", "bash", "-c", &script])
        .status()
        .await
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The kernel's state letter of a process (`S` sleeping, `T` stopped, ...).
fn proc_state(pid: u32) -> Option<char> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .and_then(|s| s.trim().chars().next())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_mysqld_does_not_answer_until_resumed_and_tears_down() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(spec(1, 0, 0)).await?;
    let quick = Duration::from_millis(300);
    // Control: a running server answers well within 300 ms.
    lab.mysql_timeout("db1", quick).await?.disconnect().await?;

    lab.pause_mysqld("db1")?;
    assert_eq!(lab.paused_mysqld(), ["db1"]);
    let t = Instant::now();
    assert!(
        lab.mysql_timeout("db1", quick).await.is_err(),
        "a paused mysqld answered"
    );
    assert!(t.elapsed() < Duration::from_secs(2));

    lab.resume_all()?;
    assert!(lab.paused_mysqld().is_empty());
    lab.mysql_timeout("db1", Duration::from_secs(2))
        .await?
        .disconnect()
        .await?;

    // A paused server is killed by kill -9, and a lab with a paused server tears down promptly.
    lab.pause_mysqld("db1")?;
    tokio::time::timeout(Duration::from_secs(10), lab.kill_mysqld("db1")).await??;
    assert!(!lab.mysqld_running("db1"));
    lab.start_mysqld("db1").await?;
    lab.pause_mysqld("db1")?;
    let t = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || drop(lab)),
    )
    .await??;
    eprintln!("lab with a paused mysqld torn down in {:?}", t.elapsed());
    Ok(())
}

/// True if monitor `name` answers a cluster-status call within 500 ms.
async fn answers(cluster: &MmmCluster<'_>, name: &str) -> bool {
    tokio::time::timeout(Duration::from_millis(500), cluster.cluster_status_of(name))
        .await
        .is_ok_and(|r| r.is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_monitor_and_agent_stall_until_resumed() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    // Two DB hosts: a master needs its peer in the configuration.
    let lab = Lab::start(spec(2, 1, 0)).await?;
    let mut cluster = MmmCluster::configure(&lab, "", false)?;
    cluster.start_agent("db1")?;
    // The monitor runs under a skewed clock: a process under libfaketime starts and serves.
    cluster.start_monitor_with_clock("mon1", ClockSkew::ahead(3))?;
    let mon_pid = cluster.monitor_process("mon1").expect("mon1 runs").pid();
    // Right after fork the child still shows the test's environment: wait for the exec of the monitor.
    let exe = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !exe(mon_pid).ends_with("mmm-monitor") {
        assert!(Instant::now() < deadline, "mon1 never exec'd");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let environ = std::fs::read(format!("/proc/{mon_pid}/environ"))?;
    assert!(
        String::from_utf8_lossy(&environ).contains("FAKETIME=+3s"),
        "the monitor was not started under libfaketime"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !answers(&cluster, "mon1").await {
        assert!(Instant::now() < deadline, "mon1 never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    cluster.pause_monitor("mon1")?;
    cluster.pause_agent("db1")?;
    assert_eq!(cluster.paused(), ["agent-db1", "monitor-mon1"]);
    assert!(
        !answers(&cluster, "mon1").await,
        "a paused monitor answered"
    );
    let agent_pid = cluster.agent_process("db1").expect("agent runs").pid();
    assert_eq!(proc_state(agent_pid), Some('T'));
    assert_eq!(proc_state(mon_pid), Some('T'));

    cluster.resume_all()?;
    assert!(cluster.paused().is_empty());
    assert_ne!(proc_state(agent_pid), Some('T'));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !answers(&cluster, "mon1").await {
        assert!(
            Instant::now() < deadline,
            "mon1 did not answer after resume"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // kill -9 works on a paused process.
    cluster.pause_agent("db1")?;
    cluster.kill_agent("db1")?;
    assert!(cluster.agent_process("db1").is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_block_loses_the_replies() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(spec(1, 1, 0)).await?;
    let db1 = lab.host("db1").ip;
    let mon1_ns = lab.monitor("mon1").ns.clone();
    assert!(
        tcp_from_ns(&mon1_ns, db1, 3306).await,
        "control: mon1 reaches db1"
    );

    // db1 -> mon1 dropped: mon1's SYN arrives, db1's SYN-ACK does not.
    lab.block_one_way("db1", "mon1").await?;
    assert!(!tcp_from_ns(&mon1_ns, db1, 3306).await);
    // Only that pair: the root namespace still reaches db1.
    lab.mysql_timeout("db1", Duration::from_secs(1))
        .await?
        .disconnect()
        .await?;
    // Unblocking the other direction changes nothing; unblocking this one heals.
    lab.unblock_one_way("mon1", "db1").await?;
    assert!(!tcp_from_ns(&mon1_ns, db1, 3306).await);
    lab.unblock_one_way("db1", "mon1").await?;
    assert!(tcp_from_ns(&mon1_ns, db1, 3306).await);

    // With the root namespace as one end (bridge output chain): root's SYNs to db1 are dropped.
    lab.block_one_way("root", "db1").await?;
    assert!(lab
        .mysql_timeout("db1", Duration::from_millis(500))
        .await
        .is_err());
    assert!(tcp_from_ns(&mon1_ns, db1, 3306).await);
    lab.unblock_all().await?;
    lab.mysql_timeout("db1", Duration::from_secs(1))
        .await?
        .disconnect()
        .await?;
    Ok(())
}

/// Logs in as the application user from inside a client namespace with the `mariadb` client.
async fn app_login_from(lab: &Lab, client_ns: &str, ip: Ipv4Addr) -> bool {
    let _ = lab;
    tokio::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            client_ns,
            "timeout",
            "3",
            "mariadb",
            "--connect-timeout=2",
            "-h",
            &ip.to_string(),
            "-u",
            mmm_lab::users::APP_USER,
            &format!("-p{}", mmm_lab::users::APP_PASSWORD),
            mmm_lab::users::APP_DB,
            "-e",
            "SELECT 1",
        ])
        .output()
        .await
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_namespaces_stay_with_their_side_of_a_partition() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(spec(2, 0, 2)).await?;
    let names: Vec<&str> = lab.clients().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["cli1", "cli2"]);
    let prefix = lab.subnet_prefix();
    assert_eq!(lab.client("cli1").ip.to_string(), format!("{prefix}.31"));
    assert_eq!(lab.ns_of("cli2")?, Some(lab.client("cli2").ns.clone()));
    let (cli1, cli2) = (lab.client("cli1").ns.clone(), lab.client("cli2").ns.clone());
    let (db1, db2) = (lab.host("db1").ip, lab.host("db2").ip);
    assert!(
        app_login_from(&lab, &cli1, db1).await,
        "app login from cli1"
    );
    assert!(tcp_from_ns(&cli1, db2, 3306).await);

    lab.partition(&["db1", "cli1"], &["db2"]).await?;
    assert!(tcp_from_ns(&cli1, db1, 3306).await, "cli1 keeps db1");
    assert!(!tcp_from_ns(&cli1, db2, 3306).await, "cli1 cut from db2");
    assert!(tcp_from_ns(&cli2, db2, 3306).await, "cli2 is on no side");
    assert!(tcp_from_ns(&cli2, db1, 3306).await);
    assert!(
        !tcp_from_ns(&lab.host("db2").ns, db1, 3306).await,
        "db2 cut from db1"
    );

    lab.heal_partition(&["db1", "cli1"], &["db2"]).await?;
    assert!(tcp_from_ns(&cli1, db2, 3306).await);
    assert!(lab.partition(&["db1"], &["db1", "db2"]).await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_clock_is_the_one_the_process_sees() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(spec(1, 0, 0)).await?;
    let now = || -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()
    };
    for (skew, want) in [
        (ClockSkew::behind(3), -3),
        (ClockSkew::ahead(3), 3),
        (ClockSkew { seconds: 0 }, 0),
    ] {
        let before = now();
        let seen: i64 = lab
            .run_with_clock("db1", skew, "date", &["+%s"])
            .await?
            .trim()
            .parse()?;
        let after = now();
        assert!(
            seen - before >= want - 1 && seen - after <= want + 1,
            "{skew:?}: date said {seen}, real clock {before}..{after}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_lock_makes_read_only_time_out_until_the_holder_is_killed() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(spec(1, 0, 0)).await?;
    let holder = lab.hold_table_lock("db1").await?;
    let mut root = lab.mysql("db1").await?;
    root.query_drop("SET SESSION lock_wait_timeout=1").await?;
    let t = Instant::now();
    let err = root.query_drop("SET GLOBAL read_only=1").await;
    let waited = t.elapsed();
    assert!(err.is_err(), "read_only=1 succeeded under a table lock");
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(3),
        "read_only=1 failed after {waited:?}"
    );
    assert!(!holder.was_killed().await);

    root.query_drop(format!("KILL {}", holder.connection_id()))
        .await?;
    let outcome = holder.finished(Duration::from_secs(3)).await?;
    assert!(outcome.killed, "{outcome:?}");
    assert!(holder.was_killed().await);
    root.query_drop("SET GLOBAL read_only=1").await?;
    let ro: Option<i64> = root.query_first("SELECT @@read_only").await?;
    assert_eq!(ro, Some(1));

    // A released (not killed) lock says so.
    root.query_drop("SET GLOBAL read_only=0").await?;
    let holder = lab.hold_table_lock("db1").await?;
    let outcome = holder.release().await?;
    assert!(!outcome.killed && outcome.error.is_none(), "{outcome:?}");
    root.query_drop("SET GLOBAL read_only=1").await?;
    root.disconnect().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_transaction_and_statement_record_commit_and_kill() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(spec(1, 0, 0)).await?;
    // Control: left alone, both commit.
    let tx = lab.long_transaction("db1", 1).await?;
    let st = lab.long_statement("db1", 1).await?;
    let (a, b) = (tx.release().await?, st.release().await?);
    assert!(a.committed && !a.killed, "{a:?}");
    assert!(b.committed && !b.killed, "{b:?}");

    // The server turns read-only while the transaction sleeps: its COMMIT is refused.
    let tx = lab.long_transaction("db1", 2).await?;
    lab.exec("db1", "SET GLOBAL read_only=1").await?;
    let a = tx.finished(Duration::from_secs(10)).await?;
    assert!(!a.committed && !a.killed, "{a:?}");
    assert!(!tx.committed().await);
    lab.exec("db1", "SET GLOBAL read_only=0").await?;

    // A KILL ends both at once.
    let tx = lab.long_transaction("db1", 20).await?;
    let st = lab.long_statement("db1", 20).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in [tx.connection_id(), st.connection_id()] {
        lab.exec("db1", &format!("KILL {id}")).await?;
    }
    let (a, b) = (
        tx.finished(Duration::from_secs(3)).await?,
        st.finished(Duration::from_secs(3)).await?,
    );
    assert!(a.killed && !a.committed, "{a:?}");
    assert!(b.killed && !b.committed, "{b:?}");
    assert!(tx.was_killed().await && st.was_killed().await);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_agent_password_on_one_server_locks_the_agent_out_until_restored(
) -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(spec(2, 0, 0)).await?;
    let t = Duration::from_secs(2);
    lab.connect_as("db1", AGENT_USER, AGENT_PASSWORD, t)
        .await?
        .disconnect()
        .await?;
    lab.set_account_password("db1", AGENT_USER, "drifted-pw")
        .await?;
    assert!(lab
        .connect_as("db1", AGENT_USER, AGENT_PASSWORD, t)
        .await
        .is_err());
    lab.connect_as("db1", AGENT_USER, "drifted-pw", t)
        .await?
        .disconnect()
        .await?;
    // Only on that server: not replicated to db2.
    tokio::time::sleep(Duration::from_millis(300)).await;
    lab.connect_as("db2", AGENT_USER, AGENT_PASSWORD, t)
        .await?
        .disconnect()
        .await?;

    lab.restore_account_password("db1", AGENT_USER).await?;
    lab.connect_as("db1", AGENT_USER, AGENT_PASSWORD, t)
        .await?
        .disconnect()
        .await?;
    assert!(lab
        .set_account_password("db1", mmm_lab::users::ROOT_USER, "x")
        .await
        .is_err());
    Ok(())
}

/// Writes `len` bytes to a new file at `path`.
fn write_file(path: &Path, len: usize) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(&vec![1u8; len])?;
    f.sync_all()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_disk_fills_frees_and_unmounts() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(spec(1, 1, 0)).await?;
    let disk = lab.small_disk_for_monitor("mon1", 4).await?;
    let path = lab.monitor_data_dir("mon1");
    assert_eq!(disk.path(), path);
    assert!(is_mounted(&path));
    write_file(&path.join("before"), 64 * 1024)?;

    let filled = disk.fill().await?;
    assert!(filled >= 3 << 20, "filled only {filled} bytes of 4 MiB");
    let err = write_file(&path.join("full"), 64 * 1024).expect_err("write to a full disk");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");

    disk.free().await?;
    write_file(&path.join("after"), 64 * 1024)?;
    drop(disk);
    assert!(!is_mounted(&path));

    // A disk whose handle outlives the lab is unmounted by the lab's teardown.
    let disk = lab.small_disk_for_monitor("mon1", 1).await?;
    assert!(is_mounted(&path));
    drop(lab);
    assert!(!is_mounted(&path));
    drop(disk);
    Ok(())
}

#[test]
fn cleanup_unmounts_a_crashed_labs_small_disk() -> anyhow::Result<()> {
    // A "crashed" lab in slot 249 (free unless 249 labs run at once) left a small disk mounted in its dir.
    let dir = std::env::temp_dir().join("mmm-lab-249-nemesis");
    let mount_point = dir.join("mon1").join("data");
    std::fs::create_dir_all(&mount_point)?;
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mount_point)
        .status()?;
    assert!(mounted.success(), "mount failed");
    assert!(is_mounted(&mount_point));
    mmm_lab::cleanup_all_leftovers()?;
    assert!(!is_mounted(&mount_point), "leftover mount not removed");
    assert!(!dir.exists(), "leftover lab dir not removed");
    Ok(())
}
