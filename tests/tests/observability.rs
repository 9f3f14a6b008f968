//! What operators see, against a real cluster (3 monitors, 4 MariaDB hosts with semi-sync, agents):
//! `mmmctl show --extended` with the replication facts the monitors poll from the agents, a monitor cut
//! off from the leader saying its answer is stale (and mmmctl preferring one that is not), the HTTP JSON
//! API and the status page rendered by headless Chromium before and after a failover.

use std::process::Output;
use std::time::{Duration, Instant};

use mmm_lab::cluster::MmmCluster;
use mmm_lab::{workspace_bin, Lab, LabSpec, MONITOR_PORT};
use serde_json::Value;

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs the real mmmctl against the given monitors, in that order.
fn mmmctl_at(lab: &Lab, monitors: &[&str], args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(workspace_bin("mmmctl"));
    for m in monitors {
        cmd.arg("--monitor")
            .arg(format!("{}:{MONITOR_PORT}", lab.monitor(m).ip));
    }
    cmd.args(["--timeout", "3"]).args(args);
    cmd.output().expect("run mmmctl")
}

/// The `hosts` of `show --extended --json`, by name.
fn hosts_of(v: &Value) -> Vec<(String, Value)> {
    v["hosts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| (h["name"].as_str().unwrap_or("").to_string(), h.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// What is wrong with the replication facts of a healthy cluster whose writer is `writer` (empty when
/// nothing is).
fn topology_problems(v: &Value, writer: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let hosts = hosts_of(v);
    if hosts.len() != 4 {
        problems.push(format!("{} hosts", hosts.len()));
    }
    for (name, h) in hosts {
        let t = &h["topology"];
        let mut bad = |what: &str| problems.push(format!("{name}: {what}"));
        if t["agent_answered"] != true {
            bad("agent did not answer");
        }
        if t["mysql_reachable"] != true {
            bad("mysql not reachable");
        }
        if name == writer {
            if t["read_only"] != false {
                bad("writer is read_only");
            }
            if t["semi_sync_source"] != "ON" {
                bad("writer's semi-sync source status is not ON");
            }
            continue;
        }
        if t["read_only"] != true {
            bad("replica is writable");
        }
        if t["replicates_from_host"] != writer {
            bad(&format!("replicates from {}", t["replicates_from_host"]));
        }
        if t["io_running"] != true || t["sql_running"] != true {
            bad("replication threads not running");
        }
        if t["seconds_behind"].as_i64().is_none() {
            bad("no lag");
        }
        if t["transactions_behind_writer"].as_i64() != Some(0) {
            bad(&format!(
                "{} transactions behind",
                t["transactions_behind_writer"]
            ));
        }
        if t["gtid_current_pos"].as_str().is_none_or(str::is_empty) {
            bad("no GTID position");
        }
    }
    problems
}

/// Waits until `show --extended --json` passes `check` (no problems); returns the last document.
async fn wait_extended(
    lab: &Lab,
    monitors: &[&str],
    timeout: Duration,
    check: impl Fn(&Value) -> Vec<String>,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    let mut last = (Value::Null, vec![]);
    while Instant::now() < deadline {
        let o = mmmctl_at(lab, monitors, &["--json", "show", "--extended"]);
        let (out, err) = text(&o);
        match serde_json::from_str::<Value>(&out) {
            Ok(v) => {
                let p = check(&v);
                if p.is_empty() {
                    return Ok(v);
                }
                last = (v, p);
            }
            Err(e) => last = (Value::Null, vec![format!("{e}: {out}{err}")]),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("timed out: {:?} in {}", last.1, last.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn extended_show_and_stale_answers() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let cluster = MmmCluster::start(&lab, "auto_set_online 1")?;
    cluster
        .wait_all_online("db1", Duration::from_secs(40))
        .await?;
    let all = ["mon1", "mon2", "mon3"];
    // A transaction on the writer, so every server has a GTID position to show.
    lab.exec("db1", "CREATE DATABASE IF NOT EXISTS observability_probe")
        .await?;
    let started = Instant::now();
    let v = wait_extended(&lab, &all, Duration::from_secs(20), |v| {
        topology_problems(v, "db1")
    })
    .await?;
    eprintln!("replication facts complete after {:?}", started.elapsed());
    assert_eq!(v["staleness"]["leader_contact"], true, "{v}");

    // The checker fires: the same facts judged against the wrong writer are wrong.
    assert!(!topology_problems(&v, "db2").is_empty());

    // Text: MMM's lines first, unchanged, then the replication block.
    let (plain, _) = text(&mmmctl_at(&lab, &all, &["show"]));
    let (ext, err) = text(&mmmctl_at(&lab, &all, &["show", "--extended"]));
    eprintln!("{ext}");
    assert!(ext.starts_with(&plain), "plain:\n{plain}\nextended:\n{ext}");
    assert!(
        ext.contains("# Replication (as the agents report it):"),
        "{ext}"
    );
    assert!(
        ext.contains("  db3: agent answered") && ext.contains("replicates from: db1 ("),
        "{ext}"
    );
    assert!(!plain.starts_with("# STALE"), "{plain}");
    assert!(err.is_empty(), "the first monitor answered fresh: {err}");

    // A follower cut off from the other monitors (not from the hosts or from mmmctl) says it is stale.
    let status = cluster.cluster_status_of("mon1").await?;
    let leader = status.leader_name.clone();
    let follower = all
        .iter()
        .copied()
        .find(|m| *m != leader)
        .expect("a follower");
    let others: Vec<&str> = all.iter().copied().filter(|m| *m != follower).collect();
    lab.partition(&[follower], &others).await?;
    let cut = Instant::now();
    let mut stale = String::new();
    while cut.elapsed() < Duration::from_secs(15) {
        let (out, _) = text(&mmmctl_at(&lab, &[follower], &["show"]));
        if out.starts_with("# STALE") {
            stale = out;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("stale after {:?}:\n{stale}", cut.elapsed());
    assert!(
        stale.starts_with(&format!("# STALE: answered by monitor {follower} ")),
        "{stale}"
    );
    let (json, _) = text(&mmmctl_at(&lab, &[follower], &["--json", "show"]));
    let j: Value = serde_json::from_str(&json)?;
    assert_eq!(j["staleness"]["leader_contact"], false, "{j}");
    assert!(j["staleness"]["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));

    // mmmctl asked the cut-off monitor first prefers the leader's side and says why.
    let (out, err) = text(&mmmctl_at(&lab, &[follower, &leader], &["show"]));
    assert!(!out.starts_with("# STALE"), "{out}");
    assert!(
        err.contains("answered from stale state")
            && err.contains(&format!(
                "answered by monitor {}:{MONITOR_PORT}",
                lab.monitor(&leader).ip
            )),
        "{err}"
    );
    // With only stale monitors, the stale answer is used, said on stdout and stderr.
    let (out, err) = text(&mmmctl_at(&lab, &[follower], &["show"]));
    assert!(
        out.starts_with("# STALE") && err.contains("using the stale answer"),
        "{out}{err}"
    );

    lab.heal_partition(&[follower], &others).await?;
    let healed = Instant::now();
    loop {
        let (out, _) = text(&mmmctl_at(&lab, &[follower], &["show"]));
        if !out.starts_with("# STALE") && !out.is_empty() {
            break;
        }
        anyhow::ensure!(
            healed.elapsed() < Duration::from_secs(15),
            "still stale after the partition healed: {out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("fresh again {:?} after healing", healed.elapsed());
    Ok(())
}
