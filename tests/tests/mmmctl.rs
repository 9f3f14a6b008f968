//! mmmctl against a running cluster (3 monitors, 4 MariaDB hosts with agents): every command's output
//! in MMM's format, `--json` parsed back, MMM's error messages and exit codes, and a planned writer move.

use std::process::Output;
use std::time::Duration;

use mmm_lab::cluster::{owner_of_role, MmmCluster};
use mmm_lab::{Lab, LabSpec};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn all(o: &Output) -> String {
    format!("{}{}", stdout(o), String::from_utf8_lossy(&o.stderr))
}

/// Runs mmmctl, expecting `code`, and returns stdout.
fn ctl(c: &MmmCluster<'_>, args: &[&str], code: i32) -> String {
    let o = c.mmmctl(args).expect("run mmmctl");
    assert_eq!(o.status.code(), Some(code), "mmmctl {args:?}: {}", all(&o));
    stdout(&o)
}

/// `  db1(10.213.7.11) master/ONLINE. Roles: reader(10.213.7.101), writer(10.213.7.100)`
fn is_show_host_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("  db") else {
        return false;
    };
    let Some((name_ip, rest)) = rest.split_once(") ") else {
        return false;
    };
    let Some((_, ip)) = name_ip.split_once('(') else {
        return false;
    };
    let Some((mode_state, roles)) = rest.split_once(". Roles: ") else {
        return rest.ends_with(". Roles:");
    };
    let Some((mode, _state)) = mode_state.split_once('/') else {
        return false;
    };
    ip.parse::<std::net::Ipv4Addr>().is_ok()
        && (mode == "master" || mode == "slave")
        && (roles.is_empty()
            || roles
                .split(", ")
                .all(|r| r.ends_with(')') && r.contains('(')))
}

/// Waits until `SHOW SLAVE STATUS` on `host` says `Slave_IO_Running: want`.
async fn wait_io_thread(lab: &Lab, host: &str, want: &str) -> anyhow::Result<()> {
    use mysql_async::prelude::Queryable;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        let mut c = lab.mysql(host).await?;
        let row: Option<mysql_async::Row> = c.query_first("SHOW SLAVE STATUS").await?;
        last = row
            .and_then(|r| r.get::<String, _>("Slave_IO_Running"))
            .unwrap_or_default();
        if last == want {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{host}: Slave_IO_Running is {last:?}, not {want:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mmmctl_speaks_mmm_control_against_a_real_cluster() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec {
        db_hosts: 4,
        monitors: 3,
        semi_sync: false,
        vips: 2,
        clients: 0,
    })
    .await?;
    let cluster = MmmCluster::start(&lab, "auto_set_online 1")?;
    cluster
        .wait_all_online("db1", Duration::from_secs(40))
        .await?;

    assert_eq!(
        ctl(&cluster, &["ping"], 0).trim(),
        "OK: Pinged successfully!"
    );
    assert_eq!(ctl(&cluster, &["mode"], 0).trim(), "ACTIVE");

    // show: one line per host, sorted, MMM's format; roles sorted by name then IP.
    let show = ctl(&cluster, &["show"], 0);
    let lines: Vec<&str> = show.lines().collect();
    assert_eq!(lines.len(), 4, "{show}");
    for (i, line) in lines.iter().enumerate() {
        assert!(is_show_host_line(line), "MMM's show format: {line:?}");
        assert!(
            line.starts_with(&format!("  db{}(", i + 1)),
            "sorted by name: {show}"
        );
        assert!(line.contains("/ONLINE. Roles: "), "{line}");
    }
    let writer_vip = lab.writer_vip().to_string();
    assert!(
        lines[0].contains(&format!("writer({writer_vip})")),
        "db1 holds the writer VIP: {show}"
    );

    // checks: host column padded to the longest name, check column to 11.
    // Every monitor runs every check (the one answering may have started a moment later).
    let started = std::time::Instant::now();
    let mut checks = ctl(&cluster, &["checks", "all"], 0);
    while checks.lines().count() < 16 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        checks = ctl(&cluster, &["checks", "all"], 0);
    }
    eprintln!("all checks reported after {:?}", started.elapsed());
    assert_eq!(checks.lines().count(), 16, "4 hosts x 4 checks: {checks}");
    for line in checks.lines() {
        let (host, rest) = line.split_at(5);
        assert!(host.starts_with("db") && host.ends_with(' '), "{line:?}");
        let (check, rest) = rest.split_at(13);
        assert!(
            ["ping", "mysql", "rep_threads", "rep_backlog"].contains(&check.trim()),
            "{line:?}"
        );
        assert!(
            rest.starts_with("[last change: ") && rest.contains("]  "),
            "{line:?}"
        );
        assert!(rest.ends_with("]  OK"), "every check passes: {line:?}");
    }
    let one = ctl(&cluster, &["checks", "db2", "mysql"], 0);
    assert_eq!(one.lines().count(), 1, "{one}");
    assert_eq!(
        ctl(&cluster, &["checks", "nosuch"], 1).trim(),
        "ERROR: Unknown host name 'nosuch'!"
    );
    assert_eq!(
        ctl(&cluster, &["checks", "db1", "nocheck"], 1).trim(),
        "ERROR: Unknown check 'nocheck'!"
    );

    // set_offline / set_online with MMM's rules and words.
    assert!(
        ctl(&cluster, &["set_online", "nosuch"], 1).contains("ERROR: Unknown host name 'nosuch'!")
    );
    let off = ctl(&cluster, &["set_offline", "db4"], 0);
    assert!(
        off.starts_with("OK: State of 'db4' changed to ADMIN_OFFLINE."),
        "{off}"
    );
    cluster
        .wait_show(Duration::from_secs(10), "db4 ADMIN_OFFLINE", |s| {
            s.hosts
                .iter()
                .any(|h| h.name == "db4" && h.state == mmm_proto::HostState::AdminOffline as i32)
        })
        .await?;
    // The monitor that led the term logs MMM's line for the committed change, word for word, and
    // its log (a file here, the journal under systemd) has no colour codes.
    let fatal = "FATAL State of host 'db4' changed from ONLINE to ADMIN_OFFLINE";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let logs = loop {
        let logs: Vec<String> = cluster
            .running_monitors()
            .iter()
            .filter_map(|m| cluster.monitor_process(m))
            .filter_map(|p| std::fs::read_to_string(p.log_path()).ok())
            .collect();
        if logs.iter().any(|l| l.contains(fatal)) || std::time::Instant::now() > deadline {
            break logs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        logs.iter().filter(|l| l.contains(fatal)).count(),
        1,
        "exactly one monitor (the term's leader) logs '{fatal}'"
    );
    assert!(
        logs.iter().all(|l| !l.contains('\x1b')),
        "colour codes in a monitor log"
    );
    // The agent stops replication while the host is ADMIN_OFFLINE and starts it again after.
    wait_io_thread(&lab, "db4", "No").await?;
    let on = ctl(&cluster, &["set_online", "db4"], 0);
    assert_eq!(
        on.trim(),
        "OK: State of 'db4' changed to ONLINE. Now you can wait some time and check its new roles!"
    );

    wait_io_thread(&lab, "db4", "Yes").await?;

    // --json parses back, on every read command.
    for args in [
        &["--json", "show"][..],
        &["--json", "checks", "all"],
        &["--json", "mode"],
        &["--json", "cluster"],
        &["--json", "history", "5"],
        &["--json", "ping"],
    ] {
        let out = ctl(&cluster, args, 0);
        let v: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| anyhow::anyhow!("{args:?}: {e}: {out}"))?;
        assert!(!v.is_null(), "{args:?}");
    }

    // cluster: the leader and every member.
    let status = ctl(&cluster, &["cluster"], 0);
    assert!(status.starts_with("Leader: mon"), "{status}");
    for m in ["mon1", "mon2", "mon3"] {
        assert!(status.contains(m), "{status}");
    }
    // The cluster id the agents follow, made when the cluster started.
    let id = status
        .lines()
        .find_map(|l| l.strip_prefix("Cluster id: "))
        .unwrap_or_else(|| panic!("no cluster id line: {status}"));
    assert!(mmm_proto::is_cluster_id(id), "{status}");

    // Passive mode: the header, set_ip allowed only there.
    assert!(ctl(&cluster, &["set_ip", &writer_vip, "db2"], 1).contains("passive"));
    // Read-your-writes: whichever monitor answers the next run has applied the change first.
    ctl(&cluster, &["set_passive"], 0);
    let show = ctl(&cluster, &["show"], 0);
    assert!(
        show.starts_with("# --- Monitor is in PASSIVE MODE ---\n# Cause: "),
        "{show}"
    );
    assert_eq!(ctl(&cluster, &["mode"], 0).trim(), "PASSIVE");
    ctl(&cluster, &["set_active"], 0);
    assert_eq!(ctl(&cluster, &["mode"], 0).trim(), "ACTIVE");

    // move_role shows its steps and how long writes were blocked, then the move is done.
    let moved = ctl(&cluster, &["move_role", "writer", "db2"], 0);
    assert!(moved.contains("writer open on db2"), "{moved}");
    assert!(moved.contains("Writes were blocked for "), "{moved}");
    let s = cluster.show().await?;
    assert_eq!(owner_of_role(&s, "writer").as_deref(), Some("db2"));
    let err = ctl(&cluster, &["move_role", "writer", "db3"], 1);
    assert!(
        err.starts_with("ERROR: "),
        "db3 may not hold the writer role: {err}"
    );

    // history lists the decisions, newest last.
    let history = ctl(&cluster, &["history", "50"], 0);
    assert!(history.contains("db4"), "{history}");
    assert!(history.contains("db2"), "{history}");

    // Completions.
    assert!(ctl(&cluster, &["completions", "bash"], 0).contains("mmmctl"));
    Ok(())
}

#[test]
fn mmmctl_without_a_reachable_monitor_says_so_like_mmm_control() {
    let out = std::process::Command::new(mmm_lab::workspace_bin("mmmctl"))
        .args(["--monitor", "127.0.0.1:1", "show"])
        .output()
        .expect("run mmmctl");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ERROR: Can't connect to monitor daemon!"
    );
}
