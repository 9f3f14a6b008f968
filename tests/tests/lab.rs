//! Tests of the lab itself: it comes up with working replication, and its fault injection (kill -9,
//! nftables blocks, link down) does what it says, and it leaves nothing behind.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mmm_lab::{Lab, LabSpec};
use mysql_async::prelude::Queryable;

/// Polls `f` until it returns true or `timeout` passes.
async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("timed out after {timeout:?} waiting for {what}")
}

/// Opens a TCP connection from inside namespace `ns` to `ip:port` with a short timeout (bash /dev/tcp).
async fn tcp_from_ns(ns: &str, ip: Ipv4Addr, port: u16) -> bool {
    let script = format!("exec 3<>/dev/tcp/{ip}/{port}");
    tokio::process::Command::new("ip")
        .args(["netns", "exec", ns, "timeout", "1", "bash", "-c", &script])
        .status()
        .await
        .map(|s| s.success())
        .unwrap_or(false)
}

fn ns_exists(name: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn link_exists(name: &str) -> bool {
    std::process::Command::new("ip")
        .args(["link", "show", name])
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

async fn count_rows(lab: &Lab, host: &str, id: u32) -> Option<i64> {
    let mut c = lab.mysql(host).await.ok()?;
    let n: Option<i64> = c
        .query_first(format!("SELECT COUNT(*) FROM app.t WHERE id = {id}"))
        .await
        .ok()?;
    let _ = c.disconnect().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_host_lab_replicates_injects_faults_and_cleans_up() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let started = Instant::now();
    let lab = Lab::start(LabSpec {
        db_hosts: 4,
        monitors: 3,
        semi_sync: false,
        vips: 4,
        clients: 0,
    })
    .await?;
    eprintln!("4-host lab up in {:?}", started.elapsed());
    assert_eq!(lab.hosts().len(), 4);
    assert_eq!(lab.monitors().len(), 3);
    let prefix = lab.subnet_prefix();
    assert_eq!(lab.client_ip().to_string(), format!("{prefix}.1"));
    assert_eq!(lab.writer_vip().to_string(), format!("{prefix}.100"));

    // Replication: a row written on db1 reaches every other host; one written on db2 reaches db1.
    lab.exec(
        "db1",
        "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))",
    )
    .await?;
    lab.exec("db1", "INSERT INTO app.t VALUES (1, 'from db1')")
        .await?;
    for h in ["db2", "db3", "db4"] {
        wait_for(
            &format!("row 1 on {h}"),
            Duration::from_secs(10),
            || async { count_rows(&lab, h, 1).await == Some(1) },
        )
        .await?;
    }
    lab.exec("db2", "INSERT INTO app.t VALUES (2, 'from db2')")
        .await?;
    wait_for("row 2 on db1", Duration::from_secs(10), || async {
        count_rows(&lab, "db1", 2).await == Some(1)
    })
    .await?;

    // The app user works on db1 (writable) and is refused by read_only on db3.
    let mut app = lab
        .connect_ip(lab.host("db1").ip, Duration::from_secs(3))
        .await?;
    app.query_drop("INSERT INTO t VALUES (3, 'app')").await?;
    app.disconnect().await?;
    let mut app3 = lab
        .connect_ip(lab.host("db3").ip, Duration::from_secs(3))
        .await?;
    let err = app3
        .query_drop("INSERT INTO t VALUES (4, 'app on replica')")
        .await;
    assert!(
        err.is_err(),
        "app user must not write on a read_only replica"
    );
    app3.disconnect().await?;

    // Configs are written, private, and name every node.
    let configs = lab.write_mmm_configs("auto_set_online 5")?;
    let common = std::fs::read_to_string(&configs.common)?;
    for h in lab.hosts() {
        assert!(
            common.contains(&format!("<host {}>\n    ip {}", h.name, h.ip)),
            "{common}"
        );
    }
    assert!(common.contains(&format!("ips {}", lab.writer_vip())));
    let mon1 = std::fs::read_to_string(configs.monitor("mon1")?)?;
    assert!(
        mon1.contains("this mon1") && mon1.contains("auto_set_online 5"),
        "{mon1}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(configs.agent("db3")?)?
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // kill -9 and restart.
    lab.kill_mysqld("db3").await?;
    assert!(!lab.mysqld_running("db3"));
    assert!(
        lab.mysql("db3").await.is_err(),
        "db3 must refuse connections after kill -9"
    );
    lab.start_mysqld("db3").await?;
    lab.exec("db1", "INSERT INTO app.t VALUES (5, 'after restart')")
        .await?;
    wait_for(
        "row 5 on restarted db3",
        Duration::from_secs(10),
        || async { count_rows(&lab, "db3", 5).await == Some(1) },
    )
    .await?;

    // block / unblock between two namespaces, and between a namespace and the root namespace.
    let mon1_ns = lab.monitor("mon1").ns.clone();
    let db2_ip = lab.host("db2").ip;
    assert!(
        tcp_from_ns(&mon1_ns, db2_ip, 3306).await,
        "mon1 must reach db2 before the block"
    );
    lab.block("mon1", "db2").await?;
    assert!(
        !tcp_from_ns(&mon1_ns, db2_ip, 3306).await,
        "mon1 must not reach db2 while blocked"
    );
    assert!(
        tcp_from_ns(&mon1_ns, lab.host("db1").ip, 3306).await,
        "the block must not touch db1"
    );
    lab.unblock("db2", "mon1").await?;
    wait_for(
        "mon1 reaching db2 after unblock",
        Duration::from_secs(10),
        || tcp_from_ns(&mon1_ns, db2_ip, 3306),
    )
    .await?;
    let short = Duration::from_millis(800);
    lab.block("root", "db4").await?;
    assert!(
        lab.mysql_timeout("db4", short).await.is_err(),
        "the root namespace must not reach db4 while blocked"
    );
    lab.unblock("root", "db4").await?;
    wait_for("root reaching db4", Duration::from_secs(10), || async {
        lab.mysql("db4").await.is_ok()
    })
    .await?;

    // link down / up.
    lab.link_down("db4").await?;
    assert!(
        lab.mysql_timeout("db4", short).await.is_err(),
        "db4 must be unreachable with its link down"
    );
    lab.link_up("db4").await?;
    wait_for(
        "db4 reachable after link up",
        Duration::from_secs(10),
        || async { lab.mysql("db4").await.is_ok() },
    )
    .await?;
    lab.wait_replication_running(Duration::from_secs(15))
        .await?;

    // spawn_in runs inside the namespace.
    let out = lab.dir().join("logs").join("addr.log");
    let mut p = lab.spawn_in(
        "db2",
        std::path::Path::new("/usr/sbin/ip"),
        &["-4", "-o", "addr", "show"],
        "addr",
    )?;
    p.wait_exit(Duration::from_secs(5)).await?;
    let text = std::fs::read_to_string(&out)?;
    assert!(
        text.contains(&db2_ip.to_string()) && !text.contains(&format!("{prefix}.1/24")),
        "{text}"
    );

    // Drop removes everything of the slot.
    let (slot, dir) = (lab.slot(), lab.dir().to_path_buf());
    let namespaces: Vec<String> = lab
        .hosts()
        .iter()
        .map(|h| h.ns.clone())
        .chain(lab.monitors().iter().map(|m| m.ns.clone()))
        .collect();
    let bridge = lab.bridge();
    drop(lab);
    for ns in &namespaces {
        assert!(!ns_exists(ns), "namespace {ns} left behind");
    }
    assert!(!link_exists(&bridge), "bridge {bridge} left behind");
    assert!(!link_exists(&format!("mmm{slot}-db1")), "veth left behind");
    assert!(!dir.exists(), "lab dir {} left behind", dir.display());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_labs_run_at_once_with_semi_sync() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let spec = LabSpec {
        db_hosts: 2,
        monitors: 1,
        semi_sync: true,
        vips: 1,
        clients: 0,
    };
    let (a, b) = tokio::try_join!(Lab::start(spec.clone()), Lab::start(spec))?;
    assert_ne!(a.slot(), b.slot());
    assert_ne!(a.subnet_prefix(), b.subnet_prefix());
    for lab in [&a, &b] {
        lab.exec("db1", "CREATE TABLE app.s (id INT PRIMARY KEY)")
            .await?;
        lab.exec("db1", "INSERT INTO app.s VALUES (1)").await?;
        let mut c = lab.mysql("db1").await?;
        let status: Option<(String, String)> = c
            .query_first("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_yes_tx'")
            .await?;
        c.disconnect().await?;
        let yes: u64 = status.map(|(_, v)| v.parse().unwrap_or(0)).unwrap_or(0);
        assert!(
            yes >= 1,
            "semi-sync must have acknowledged transactions on slot {}",
            lab.slot()
        );
        wait_for("row on db2", Duration::from_secs(10), || async {
            let Ok(mut c) = lab.mysql("db2").await else {
                return false;
            };
            let n: Option<i64> = c
                .query_first("SELECT COUNT(*) FROM app.s")
                .await
                .ok()
                .flatten();
            let _ = c.disconnect().await;
            n == Some(1)
        })
        .await?;
    }
    // The two labs are isolated: lab a's root connection to lab b's db1 goes through b's bridge only, and
    // blocking in a does not affect b.
    a.block("root", "db1").await?;
    assert!(a
        .mysql_timeout("db1", Duration::from_millis(800))
        .await
        .is_err());
    assert!(b.mysql("db1").await.is_ok());
    Ok(())
}

#[test]
fn cleanup_all_leftovers_removes_a_crashed_labs_names() -> anyhow::Result<()> {
    // Leftovers of a "crashed" lab in slot 250 (the last one, free unless 250 labs run at once).
    // SAFETY: geteuid has no preconditions.
    anyhow::ensure!(
        unsafe { libc::geteuid() } == 0,
        "this test needs root (it creates a namespace and a bridge)"
    );
    let run = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .status()
            .map(|s| s.success())
    };
    assert!(run(&["netns", "add", "mmm250-db9"])?);
    assert!(run(&["link", "add", "mmm250b", "type", "bridge"])?);
    mmm_lab::cleanup_all_leftovers()?;
    assert!(!ns_exists("mmm250-db9"), "leftover namespace not removed");
    assert!(!link_exists("mmm250b"), "leftover bridge not removed");
    Ok(())
}
