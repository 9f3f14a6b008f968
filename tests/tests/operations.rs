//! Operations, end to end on the lab with real processes: monitor membership changes (`mmmctl cluster
//! add/remove`, a replaced monitor with an empty data dir), hooks (run once per committed decision
//! across a leader change; a failing `pre_failover` aborts the failover), a rolling restart of every
//! monitor and agent under a writing client, and `set_ip` in passive mode (nothing moves until
//! `set_active`, which moves the writer through the failover steps).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mmm_lab::cluster::{owner_of_role, MmmCluster};
use mmm_lab::scenario::{Expect, Scenario, FAILOVER};
use mmm_lab::workload::{Workload, WorkloadSpec};
use mmm_lab::{workspace_bin, Lab, LabProcess, LabSpec, MONITOR_PORT};
use mmm_proto::monitor_control_client::MonitorControlClient;
use mmm_proto::{ClusterStatusReply, ClusterStatusRequest, PROTOCOL_VERSION};
use tonic::transport::Endpoint;

const SETTLE: Duration = Duration::from_secs(40);

async fn status_at(lab: &Lab, name: &str) -> anyhow::Result<ClusterStatusReply> {
    let m = lab.monitor(name);
    let ep = Endpoint::from_shared(format!("http://{}:{MONITOR_PORT}", m.ip))?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2));
    let ch = tokio::time::timeout(Duration::from_secs(1), ep.connect()).await??;
    Ok(MonitorControlClient::new(ch)
        .cluster_status(ClusterStatusRequest {
            protocol_version: PROTOCOL_VERSION,
            local: false,
        })
        .await?
        .into_inner())
}

/// Waits until monitor `name`'s cluster status satisfies `pred`.
async fn wait_status(
    lab: &Lab,
    name: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&ClusterStatusReply) -> bool,
) -> anyhow::Result<ClusterStatusReply> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match status_at(lab, name).await {
            Ok(s) if pred(&s) => return Ok(s),
            Ok(s) => last = format!("{s:?}"),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{name}: timed out after {timeout:?} waiting for {what}; last: {last}")
}

fn voters(s: &ClusterStatusReply) -> Vec<String> {
    let mut v: Vec<String> = s
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.name.clone())
        .collect();
    v.sort();
    v
}

fn mmmctl(lab: &Lab, monitors: &[&str], args: &[&str]) -> anyhow::Result<(bool, String)> {
    let mut cmd = std::process::Command::new(workspace_bin("mmmctl"));
    for m in monitors {
        cmd.arg("--monitor")
            .arg(format!("{}:{MONITOR_PORT}", lab.monitor(m).ip));
    }
    let out = cmd.args(args).output().context("running mmmctl")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

fn data_dir(lab: &Lab, mon: &str) -> PathBuf {
    lab.dir().join(mon).join("data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ops_membership_add_remove_refuse_and_replace() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec {
        db_hosts: 2,
        monitors: 4,
        semi_sync: false,
        vips: 1,
        clients: 0,
    })
    .await?;
    // mon1..mon3 run with a configuration that lists only them; mon4's lists all four.
    let configs = lab.write_mmm_configs("")?;
    let common = std::fs::read_to_string(&configs.common)?;
    let mon4_block = format!(
        "<monitor_node mon4>\n    ip {}\n</monitor_node>\n",
        lab.monitor("mon4").ip
    );
    assert!(common.contains(&mon4_block), "lab common config: {common}");
    let common3 = configs.dir.join("mmm_common_3.conf");
    std::fs::write(&common3, common.replace(&mon4_block, ""))?;
    std::fs::set_permissions(&common3, std::fs::Permissions::from_mode(0o600))?;
    for m in ["mon1", "mon2", "mon3"] {
        let p = configs.monitor(m)?;
        let text = std::fs::read_to_string(p)?.replace(
            &format!("include {}", configs.common.display()),
            &format!("include {}", common3.display()),
        );
        std::fs::write(p, text)?;
    }
    let mut procs: BTreeMap<String, LabProcess> = BTreeMap::new();
    let mut starts = 0u32;
    let mut spawn = |lab: &Lab, who: &str, bin: &str, cfg: &Path| -> anyhow::Result<LabProcess> {
        starts += 1;
        lab.spawn_in(
            who,
            &workspace_bin(bin),
            &["--config", &cfg.to_string_lossy()],
            &format!("{bin}-{who}-{starts}"),
        )
    };
    for h in ["db1", "db2"] {
        procs.insert(h.into(), spawn(&lab, h, "mmm-agent", configs.agent(h)?)?);
    }
    for m in ["mon1", "mon2", "mon3"] {
        procs.insert(
            m.into(),
            spawn(&lab, m, "mmm-monitor", configs.monitor(m)?)?,
        );
    }
    let three = |s: &ClusterStatusReply| voters(s) == ["mon1", "mon2", "mon3"] && s.leader_id != 0;
    let before = wait_status(&lab, "mon1", SETTLE, "3 voters and a leader", three).await?;

    // mon4 starts with an empty data dir: it must not start a cluster of its own, nor disturb this one.
    procs.insert(
        "mon4".into(),
        spawn(&lab, "mon4", "mmm-monitor", configs.monitor("mon4")?)?,
    );
    let s4 = wait_status(&lab, "mon4", SETTLE, "mon4 answering", |_| true).await?;
    assert!(s4.members.is_empty(), "mon4 did not initialize: {s4:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    // mon4 started no election: a candidate raises its own term before it asks for votes, and no
    // member sends anything to a node outside the membership, so its term is still 0. (The cluster's
    // own term is not the evidence: on a loaded machine a follower may time out by itself.)
    let s4 = status_at(&lab, "mon4").await?;
    assert_eq!(s4.term, 0, "mon4 started no election: {s4:?}");
    assert!(s4.members.is_empty(), "mon4 did not initialize: {s4:?}");
    let s1 = status_at(&lab, "mon1").await?;
    assert_eq!(voters(&s1), ["mon1", "mon2", "mon3"], "{s1:?}");
    if s1.term != before.term {
        eprintln!(
            "the cluster's term moved from {} to {} meanwhile (not mon4's doing: its term is 0)",
            before.term, s1.term
        );
    }

    // Add it: learner, caught up, voter.
    let started = Instant::now();
    let addr = format!("{}:{MONITOR_PORT}", lab.monitor("mon4").ip);
    let (ok, text) = mmmctl(&lab, &["mon2"], &["cluster", "add", "mon4", &addr])?;
    assert!(ok && text.starts_with("OK"), "cluster add: {text}");
    let four = wait_status(&lab, "mon1", Duration::from_secs(10), "4 voters", |s| {
        voters(s) == ["mon1", "mon2", "mon3", "mon4"]
    })
    .await?;
    let target = four.commit_index;
    wait_status(
        &lab,
        "mon4",
        Duration::from_secs(10),
        "mon4 caught up",
        |s| s.applied_index >= target && s.leader_id != 0,
    )
    .await?;
    eprintln!(
        "cluster add mon4: voter and caught up in {:?}",
        started.elapsed()
    );
    // The configuration of mon1 does not list mon4: reported, not merged.
    let log1 = std::fs::read_to_string(procs["mon1"].log_path())?;
    assert!(
        log1.contains("committed cluster membership is")
            && log1.contains("members only: [\"mon4\"]"),
        "mon1 reports the disagreement"
    );
    // Adding it again is refused with a reason.
    let (ok, text) = mmmctl(&lab, &["mon1"], &["cluster", "add", "mon4", &addr])?;
    assert!(!ok && text.contains("already a voting member"), "{text}");

    // Remove mon2 (a majority of the remaining voters answers).
    let (ok, text) = mmmctl(&lab, &["mon1", "mon3"], &["cluster", "remove", "mon2"])?;
    assert!(ok, "cluster remove mon2: {text}");
    procs.remove("mon2");
    wait_status(
        &lab,
        "mon1",
        Duration::from_secs(10),
        "voters mon1, mon3, mon4",
        |s| voters(s) == ["mon1", "mon3", "mon4"],
    )
    .await?;

    // mon4 stops: removing mon3 would leave {mon1, mon4} with one answering voter: refused.
    procs.remove("mon4");
    wait_status(
        &lab,
        "mon1",
        Duration::from_secs(10),
        "a leader without mon4",
        |s| s.leader_id != 0 && s.leader_name != "mon4" && s.has_quorum,
    )
    .await?;
    let (ok, text) = mmmctl(&lab, &["mon1", "mon3"], &["cluster", "remove", "mon3"])?;
    assert!(!ok && text.contains("would lose quorum"), "refused: {text}");

    // mon4 lost its data dir: it refuses to start as the voter it was (it forgot its vote and log).
    std::fs::remove_dir_all(data_dir(&lab, "mon4"))?;
    let mut wiped = spawn(&lab, "mon4", "mmm-monitor", configs.monitor("mon4")?)?;
    let status = wiped.wait_exit(REFUSAL).await?;
    assert!(!status.success(), "the wiped mon4 exits non-zero: {status}");
    let addr4 = format!("{}:{MONITOR_PORT}", lab.monitor("mon4").ip);
    assert_refused(wiped.log_path(), "mon4", &data_dir(&lab, "mon4"), &addr4)?;

    // mon4 is replaced the safe way: removed, started with its empty data dir, added again.
    let (ok, text) = mmmctl(&lab, &["mon1", "mon3"], &["cluster", "remove", "mon4"])?;
    assert!(ok, "cluster remove mon4: {text}");
    let replaced = Instant::now();
    procs.insert(
        "mon4".into(),
        spawn(&lab, "mon4", "mmm-monitor", configs.monitor("mon4")?)?,
    );
    wait_status(&lab, "mon4", SETTLE, "mon4 waiting to be added", |s| {
        s.members.is_empty()
    })
    .await?;
    let (ok, text) = mmmctl(&lab, &["mon1", "mon3"], &["cluster", "add", "mon4", &addr4])?;
    assert!(ok, "cluster add mon4: {text}");
    let s1 = status_at(&lab, "mon1").await?;
    let target = s1.commit_index;
    wait_status(
        &lab,
        "mon4",
        Duration::from_secs(15),
        "replaced mon4 caught up",
        |s| s.applied_index >= target && voters(s) == ["mon1", "mon3", "mon4"],
    )
    .await?;
    eprintln!("replaced mon4 caught up in {:?}", replaced.elapsed());
    let s1 = status_at(&lab, "mon1").await?;
    assert_eq!(voters(&s1), ["mon1", "mon3", "mon4"]);
    Ok(())
}

/// How long a monitor that must refuse to start may take to exit: its peer probes (about a second
/// each, in parallel) plus the process start.
const REFUSAL: Duration = Duration::from_secs(15);

/// The log of a monitor that refused to start with an empty data dir names the data dir, the voters
/// and the commands to rejoin with, and its data dir is still empty (so the next start is a fresh one).
fn assert_refused(log: &Path, mon: &str, dir: &Path, addr: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(log)?;
    for part in [
        "refusing to start".to_string(),
        format!("the data_dir {} is empty", dir.display()),
        format!("monitor {mon} is a voter"),
        format!("`mmmctl cluster remove {mon}`"),
        format!("`mmmctl cluster add {mon} {addr}`"),
    ] {
        anyhow::ensure!(
            text.contains(&part),
            "{part:?} missing from {}: {text}",
            log.display()
        );
    }
    let left = std::fs::read_dir(dir)?.count();
    anyhow::ensure!(
        left == 0,
        "the refused start left {left} entries in {}",
        dir.display()
    );
    Ok(())
}

/// `mmmctl` sent to `monitors` only (with the lab's TLS client configuration when it has one).
fn ctl_output(
    cluster: &MmmCluster,
    monitors: &[&str],
    args: &[&str],
) -> anyhow::Result<std::process::Output> {
    let mut cmd = std::process::Command::new(workspace_bin("mmmctl"));
    for m in monitors {
        cmd.arg("--monitor")
            .arg(format!("{}:{MONITOR_PORT}", cluster.lab.monitor(m).ip));
    }
    if let Some(tls) = &cluster.configs.tls {
        cmd.arg("--config").arg(&tls.ctl_config);
    }
    cmd.args(args).output().context("running mmmctl")
}

/// [`ctl_output`]: whether it succeeded, and its output and errors.
fn ctl_to(
    cluster: &MmmCluster,
    monitors: &[&str],
    args: &[&str],
) -> anyhow::Result<(bool, String)> {
    let out = ctl_output(cluster, monitors, args)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

/// The decisions of `mmmctl --json history 1000` as `monitors` answer it.
fn history(cluster: &MmmCluster, monitors: &[&str]) -> anyhow::Result<Vec<serde_json::Value>> {
    let out = ctl_output(cluster, monitors, &["--json", "history", "1000"])?;
    anyhow::ensure!(out.status.success(), "mmmctl history: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v["decisions"]
        .as_array()
        .cloned()
        .with_context(|| format!("no decisions in {v}"))
}

/// Waits until monitor `name`'s cluster status (over the cluster's TLS, if any) satisfies `pred`.
async fn wait_cluster_status(
    cluster: &MmmCluster<'_>,
    name: &str,
    what: &str,
    pred: impl Fn(&ClusterStatusReply) -> bool,
) -> anyhow::Result<ClusterStatusReply> {
    let deadline = Instant::now() + SETTLE;
    let mut last = String::new();
    while Instant::now() < deadline {
        match cluster.cluster_status_of(name).await {
            Ok(s) if pred(&s) => return Ok(s),
            Ok(s) => last = format!("{s:?}"),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{name}: timed out after {SETTLE:?} waiting for {what}; last: {last}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ops_wiped_voter_refuses_to_start_and_rejoins_by_remove_and_add() -> anyhow::Result<()> {
    wiped_voter_refuses_and_rejoins(false).await
}

/// The same with mutual TLS: the starting monitor's probes of its peers use the cluster's TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ops_wiped_voter_refuses_to_start_with_tls() -> anyhow::Result<()> {
    wiped_voter_refuses_and_rejoins(true).await
}

async fn wiped_voter_refuses_and_rejoins(tls: bool) -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec {
        db_hosts: 2,
        monitors: 3,
        semi_sync: false,
        vips: 1,
        clients: 0,
    })
    .await?;
    let mut cluster = MmmCluster::start_with(&lab, "", tls)?;
    cluster.wait_all_online("db1", SETTLE).await?;
    let three = |s: &ClusterStatusReply| voters(s) == ["mon1", "mon2", "mon3"] && s.leader_id != 0;
    let s1 = wait_cluster_status(&cluster, "mon1", "3 voters and a leader", three).await?;
    // The leader is wiped: the hardest case, its peers still take it for the leader for a moment.
    let victim = s1.leader_name.clone();
    let rest: Vec<&str> = ["mon1", "mon2", "mon3"]
        .into_iter()
        .filter(|m| *m != victim)
        .collect();
    let before = history(&cluster, &[rest[0]])?;
    assert!(!before.is_empty(), "decisions before the wipe");
    // Every monitor has taken part: it holds the decisions (its data dir is not empty).
    for m in ["mon1", "mon2", "mon3"] {
        wait_cluster_status(&cluster, m, "caught up", |s| {
            three(s) && s.applied_index >= s1.commit_index
        })
        .await?;
    }

    // The leader loses its data dir and starts again: a peer lists it as a voter, so it refuses.
    cluster.kill_monitor(&victim)?;
    let dir = data_dir(&lab, &victim);
    std::fs::remove_dir_all(&dir)?;
    std::fs::create_dir_all(&dir)?;
    cluster.start_monitor(&victim)?;
    let log = cluster
        .monitor_process(&victim)
        .context("the wiped monitor started")?
        .log_path()
        .to_path_buf();
    let status = cluster.wait_monitor_exit(&victim, REFUSAL).await?;
    assert!(
        !status.success(),
        "the wiped {victim} exits non-zero: {status}"
    );
    let addr = format!("{}:{MONITOR_PORT}", lab.monitor(&victim).ip);
    assert_refused(&log, &victim, &dir, &addr)?;
    let text = std::fs::read_to_string(&log)?;
    assert!(text.contains("(voters mon1, mon2, mon3, as "), "{text}");
    let line = text.lines().find(|l| l.contains("refusing to start"));
    eprintln!(
        "wiped {victim} exited with {status}: {}",
        line.unwrap_or_default()
    );

    // The safe way back: once the others have a leader, remove it, start it with its empty data dir
    // (it waits), add it again. mmmctl is sent to the running monitors: the waiting one would
    // answer `No quorum` itself.
    wait_cluster_status(&cluster, rest[0], "a new leader", |s| {
        s.leader_id != 0 && s.leader_name != victim
    })
    .await?;
    let (ok, text) = ctl_to(&cluster, &rest, &["cluster", "remove", &victim])?;
    assert!(ok, "cluster remove {victim}: {text}");
    wait_cluster_status(&cluster, rest[0], "two voters", |s| {
        voters(s) == rest && s.leader_id != 0
    })
    .await?;
    let rejoin = Instant::now();
    cluster.start_monitor(&victim)?;
    wait_cluster_status(&cluster, &victim, "waiting to be added", |s| {
        s.members.is_empty()
    })
    .await?;
    let (ok, text) = ctl_to(&cluster, &rest, &["cluster", "add", &victim, &addr])?;
    assert!(ok, "cluster add {victim}: {text}");
    let s1 = wait_cluster_status(&cluster, rest[0], "3 voters again", three).await?;
    wait_cluster_status(&cluster, &victim, "a caught-up voter", |s| {
        three(s) && s.applied_index >= s1.commit_index
    })
    .await?;
    eprintln!(
        "{victim} removed, added again and caught up in {:?}",
        rejoin.elapsed()
    );

    // The committed state survived: the rejoined monitor's own copy lists every decision taken
    // before the wipe.
    let after = history(&cluster, &[&victim])?;
    for d in &before {
        assert!(
            after.contains(d),
            "decision {d} missing from {victim}'s history: {after:?}"
        );
    }
    Ok(())
}

fn write_script(path: &Path, body: &str) -> anyhow::Result<()> {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn wait_for(timeout: Duration, what: &str, f: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ops_hooks_once_per_decision_and_pre_failover_veto() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec {
        db_hosts: 2,
        monitors: 3,
        semi_sync: false,
        vips: 1,
        clients: 0,
    })
    .await?;
    let dir = lab.dir().join("hooks");
    std::fs::create_dir_all(&dir)?;
    let (role_log, post_log, pre_log, allow) = (
        dir.join("role.log"),
        dir.join("post.log"),
        dir.join("pre.log"),
        dir.join("allow"),
    );
    // Each hook appends its arguments and a few environment variables to its log.
    let record = |log: &Path| {
        format!(
            "echo \"$* $MMM_OLD_IP $MMM_NEW_IP $MMM_MONITOR\" >> {}",
            log.display()
        )
    };
    write_script(&dir.join("role.sh"), &record(&role_log))?;
    write_script(&dir.join("post.sh"), &record(&post_log))?;
    write_script(
        &dir.join("pre.sh"),
        &format!(
            "{}\n[ -e {} ] || {{ echo 'no: maintenance window' >&2; exit 1; }}",
            record(&pre_log),
            allow.display()
        ),
    )?;
    let keys = format!(
        "auto_set_online 2\npre_failover {}\npost_failover {}\npost_role_change {}\nhook_timeout 5",
        dir.join("pre.sh").display(),
        dir.join("post.sh").display(),
        dir.join("role.sh").display()
    );
    let mut cluster = MmmCluster::start(&lab, &keys)?;
    cluster.wait_all_online("db1", SETTLE).await?;
    let vips = 1 + lab.reader_vips().len();
    // Every role IP got its first owner: one post_role_change each.
    wait_for(
        Duration::from_secs(10),
        "post_role_change for every role IP",
        || lines(&role_log).len() >= vips,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first = lines(&role_log);
    assert_eq!(first.len(), vips, "once per decision: {first:?}");
    let writer_line = first
        .iter()
        .find(|l| l.starts_with("post_role_change writer - db1"))
        .with_context(|| format!("writer's role change: {first:?}"))?;
    assert!(
        writer_line.contains(&lab.writer_vip().to_string())
            && writer_line.contains(&lab.host("db1").ip.to_string()),
        "role IP and new owner's IP given: {writer_line}"
    );

    // The leader dies: its successor runs no hook again.
    let leader = cluster.cluster_status_of("mon1").await?.leader_name;
    cluster.kill_monitor(&leader)?;
    let other = cluster.running_monitors()[0].clone();
    wait_status(&lab, &other, Duration::from_secs(10), "a new leader", |s| {
        s.leader_id != 0 && s.leader_name != leader
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        lines(&role_log),
        first,
        "no hook ran twice after the leader change"
    );

    // The writer's mysqld dies; pre_failover says no: the failover is aborted, the cluster PASSIVE.
    lab.kill_mysqld("db1").await?;
    let show = cluster
        .wait_show(Duration::from_secs(15), "PASSIVE after the veto", |s| {
            s.mode == mmm_proto::Mode::Passive as i32
        })
        .await?;
    assert!(
        show.passive_cause.contains("aborted by pre_failover"),
        "cause: {}",
        show.passive_cause
    );
    assert_eq!(
        owner_of_role(&show, "writer").as_deref(),
        Some("db1"),
        "no failover"
    );
    let pre = lines(&pre_log);
    assert!(
        pre.iter()
            .any(|l| l.starts_with("pre_failover writer db1 db2")),
        "pre_failover got old and new owner: {pre:?}"
    );
    let (_, history) = {
        let out = cluster.mmmctl(&["history", "50"])?;
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert!(
        history.contains("aborted by pre_failover"),
        "history: {history}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let vetoes = lines(&pre_log).len();
    assert_eq!(vetoes, pre.len(), "not retried in a loop");

    // Allowed now: back to ACTIVE, the failover runs and post_failover runs once.
    std::fs::write(&allow, "")?;
    let out = cluster.mmmctl(&["set_active"])?;
    assert!(out.status.success(), "set_active: {out:?}");
    cluster
        .wait_show(Duration::from_secs(20), "writer on db2", |s| {
            owner_of_role(s, "writer").as_deref() == Some("db2")
        })
        .await?;
    wait_for(Duration::from_secs(10), "post_failover", || {
        !lines(&post_log).is_empty()
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let post = lines(&post_log);
    assert_eq!(post.len(), 1, "post_failover once: {post:?}");
    assert!(
        post[0].starts_with("post_failover writer db1 db2"),
        "{post:?}"
    );
    Ok(())
}

/// The longest time between two acknowledged writes while `during` ran, and the writes.
fn longest_gap(h: &mmm_lab::workload::History, from: Instant, to: Instant) -> (Duration, usize) {
    let mut acks: Vec<Instant> = h
        .acks
        .iter()
        .map(|a| a.acked)
        .filter(|t| *t >= from && *t <= to)
        .collect();
    acks.sort();
    let mut gap = Duration::ZERO;
    let mut prev = from;
    for t in &acks {
        gap = gap.max(t.saturating_duration_since(prev));
        prev = *t;
    }
    gap = gap.max(to.saturating_duration_since(prev));
    (gap, acks.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ops_rolling_restart_of_every_process_under_writes() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec {
        db_hosts: 3,
        monitors: 3,
        semi_sync: false,
        vips: 1,
        clients: 0,
    })
    .await?;
    let mut cluster = MmmCluster::start(&lab, "auto_set_online 2")?;
    cluster.wait_all_online("db1", SETTLE).await?;
    let decisions_before = cluster.mmmctl(&["--json", "history", "1000"])?;
    let before: serde_json::Value = serde_json::from_slice(&decisions_before.stdout)?;
    let load = Workload::start(
        &lab,
        WorkloadSpec {
            target: lab.writer_vip(),
            readers: lab.reader_vips(),
            interval: Duration::from_millis(5),
            op_timeout: Duration::from_millis(250),
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let from = Instant::now();
    let mut steps = Vec::new();
    for m in ["mon1", "mon2", "mon3"] {
        let t = Instant::now();
        cluster.kill_monitor(m)?;
        cluster.start_monitor(m)?;
        wait_status(
            &lab,
            m,
            Duration::from_secs(15),
            "restarted monitor in the cluster",
            |s| s.leader_id != 0 && s.members.len() == 3,
        )
        .await?;
        steps.push((m.to_string(), t, Instant::now()));
    }
    for h in ["db1", "db2", "db3"] {
        let t = Instant::now();
        cluster.kill_agent(h)?;
        cluster.start_agent(h)?;
        // Reachable again, and the writer is writable again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster
            .wait_show(Duration::from_secs(15), "agent back", |s| {
                s.hosts.iter().any(|x| x.name == h && x.agent_reachable)
            })
            .await?;
        steps.push((h.to_string(), t, Instant::now()));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let to = Instant::now();
    let history = load.stop().await;
    let (gap, acked) = longest_gap(&history, from, to);
    for (who, t0, t1) in &steps {
        let (g, n) = longest_gap(&history, *t0, *t1 + Duration::from_millis(500));
        eprintln!("restart of {who}: {n} writes acknowledged, longest write gap {g:?}");
    }
    eprintln!("rolling restart: {acked} writes acknowledged, longest write gap {gap:?}");
    let show = cluster.show().await?;
    assert_eq!(
        owner_of_role(&show, "writer").as_deref(),
        Some("db1"),
        "no failover"
    );
    assert!(
        show.hosts
            .iter()
            .all(|h| h.state == mmm_proto::HostState::Online as i32),
        "every host ONLINE: {show:?}"
    );
    let after: serde_json::Value =
        serde_json::from_slice(&cluster.mmmctl(&["--json", "history", "1000"])?.stdout)?;
    let n = |v: &serde_json::Value| v["decisions"].as_array().map_or(0, Vec::len);
    let new: Vec<&serde_json::Value> = after["decisions"]
        .as_array()
        .map(|a| a.iter().skip(n(&before)).collect())
        .unwrap_or_default();
    assert!(
        new.iter()
            .all(|d| d["role"].as_str().unwrap_or("").is_empty()
                && !d["to"].as_str().unwrap_or("").contains("OFFLINE")),
        "no role or state change during the rolling restart: {new:?}"
    );
    // No write outage: no write failed, and no gap longer than a loaded machine's scheduling noise.
    let failed: Vec<&(Instant, String)> = history
        .errors
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .collect();
    assert!(
        failed.is_empty(),
        "writes failed during the rolling restart: {failed:?}"
    );
    assert!(
        gap < Duration::from_millis(500),
        "longest write gap {gap:?} during the rolling restart"
    );
    Ok(())
}

/// How long the passive cluster is watched for anything moving: several writer leases (2 s), so a
/// writer whose lease were not renewed would have stopped writing by then.
const PASSIVE_WATCH: Duration = Duration::from_secs(7);

/// `mmmctl ARGS` against the scenario's monitors; fails unless it succeeded. Returns its stdout.
fn ctl_ok(env: &Scenario<'_>, args: &[&str]) -> anyhow::Result<String> {
    let out = env.cluster.mmmctl(args)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || !stdout.starts_with("OK") {
        bail!(
            "mmmctl {args:?}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// The host holding role IP `ip` as `show` says.
fn owner_of_ip(show: &mmm_proto::ShowReply, ip: &str) -> Option<String> {
    show.hosts
        .iter()
        .find(|h| h.roles.iter().any(|r| r.ip == ip))
        .map(|h| h.name.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ops_set_ip_in_passive_mode_moves_nothing_until_set_active() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut env = Scenario::start(&lab, "auto_set_online 2").await?;
    env.load().await?;
    let wvip = lab.writer_vip();
    // A reader VIP planned onto the writer: the writer's lease renewals must not carry it there.
    let show = env.cluster.show().await?;
    let (rvip, reader_from) = lab
        .reader_vips()
        .into_iter()
        .filter_map(|ip| Some((ip, owner_of_ip(&show, &ip.to_string())?)))
        .find(|(_, h)| h != "db1")
        .context("no reader VIP on a host other than db1")?;
    let reader_to = "db1";
    eprintln!("set_ip of reader VIP {rvip}: from {reader_from} to {reader_to}");

    ctl_ok(&env, &["set_passive"])?;
    let said = ctl_ok(&env, &["set_ip", &wvip.to_string(), "db2"])?;
    assert_eq!(
        said.trim(),
        format!("OK: Set role 'writer({wvip})' to host 'db2'.")
    );
    ctl_ok(&env, &["set_ip", &rvip.to_string(), reader_to])?;

    // Passive: nothing moves. db1 keeps writing (its lease is renewed), db2 stays read-only without
    // the VIP, and the reader VIP stays where it was (no status reaches its agents).
    let watched = Instant::now();
    while watched.elapsed() < PASSIVE_WATCH {
        assert!(!lab.read_only("db1").await?, "db1 still the writer");
        assert!(lab.has_ip("db1", wvip).await?, "db1 keeps the writer VIP");
        assert!(lab.read_only("db2").await?, "db2 not opened while passive");
        assert!(!lab.has_ip("db2", wvip).await?, "db2 got no writer VIP");
        assert!(
            lab.has_ip(&reader_from, rvip).await? && !lab.has_ip(reader_to, rvip).await?,
            "reader VIP {rvip} stays on {reader_from} while passive"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    env.wait_more_acks(50, Duration::from_secs(10)).await?;
    let show = env.cluster.show().await?;
    assert_eq!(owner_of_role(&show, "writer").as_deref(), Some("db1"));
    let history = ctl_ok_history(&env)?;
    assert!(history.contains("planned_writer"), "history: {history}");

    // Leaving passive mode moves the writer through the failover steps: db1 demoted, db2 promoted.
    let said = ctl_ok(&env, &["set_active"])?;
    assert!(said.contains("moving from 'db1' to 'db2'"), "{said}");
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, Duration::from_secs(10)).await?;
    assert!(lab.read_only("db1").await?, "db1 denies writes");
    assert!(
        !lab.has_ip("db1", wvip).await?,
        "db1 gave up the writer VIP"
    );
    assert!(!lab.read_only("db2").await?, "db2 is the writer");
    assert!(lab.has_ip("db2", wvip).await?, "db2 holds the writer VIP");
    let history = ctl_ok_history(&env)?;
    assert!(history.contains("switchover started"), "history: {history}");
    env.finish(
        "set_ip writer db2 in passive mode, then set_active",
        Expect::outage(Duration::from_secs(5)),
    )
    .await?;
    Ok(())
}

/// PASSIVE means passive, also when the writer fails: its mysqld dies and nothing moves (no failover,
/// db2 stays read-only without the writer VIP, the mode stays PASSIVE) until the operator runs
/// `set_active`; then the cluster fails over as usual and the oracle finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ops_passive_mode_with_a_failing_writer_moves_nothing_until_set_active(
) -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut env = Scenario::start(&lab, "auto_set_online 2").await?;
    env.load().await?;
    let wvip = lab.writer_vip();
    ctl_ok(&env, &["set_passive"])?;
    let started = |h: &str| h.matches("failover started").count();
    let before = started(&ctl_ok_history(&env)?);
    lab.kill_mysqld("db1").await?;
    let watched = Instant::now();
    while watched.elapsed() < PASSIVE_WATCH {
        assert!(lab.read_only("db2").await?, "db2 not opened while passive");
        assert!(!lab.has_ip("db2", wvip).await?, "db2 got no writer VIP");
        let show = env.cluster.show().await?;
        assert_eq!(show.mode, mmm_proto::Mode::Passive as i32, "still passive");
        assert_eq!(owner_of_role(&show, "writer").as_deref(), Some("db1"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let history = ctl_ok_history(&env)?;
    assert_eq!(
        started(&history),
        before,
        "no failover while passive: {history}"
    );
    ctl_ok(&env, &["set_active"])?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    env.wait_more_acks(50, Duration::from_secs(10)).await?;
    env.finish(
        "the writer fails in passive mode, then set_active",
        Expect::outage(Duration::from_secs(60)).with_repairs(),
    )
    .await?;
    Ok(())
}

/// `mmmctl history` (the last 100 decisions).
fn ctl_ok_history(env: &Scenario<'_>) -> anyhow::Result<String> {
    let out = env.cluster.mmmctl(&["history", "100"])?;
    if !out.status.success() {
        bail!("mmmctl history: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
