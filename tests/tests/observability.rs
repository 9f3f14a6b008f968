//! What operators see, against a real cluster (3 monitors, 4 MariaDB hosts with semi-sync, agents):
//! `mmmctl show --extended` with the replication facts the monitors poll from the agents, a monitor cut
//! off from the leader saying its answer is stale (and mmmctl preferring one that is not), the HTTP JSON
//! API and the status page rendered by headless Chromium before and after a failover.

use std::process::Output;
use std::time::{Duration, Instant};

use mmm_lab::cluster::MmmCluster;
use mmm_lab::{workspace_bin, Lab, LabSpec, METRICS_PORT, MONITOR_PORT};
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
    assert!(
        v["writer_lease_left_ms"].as_i64().is_some_and(|ms| ms > 0),
        "the writer's agent holds a lease: {v}"
    );

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
    // Every read says it, not only show.
    for cmd in [&["mode"][..], &["checks"], &["history", "1"]] {
        let (out, _) = text(&mmmctl_at(&lab, &[follower], cmd));
        assert!(out.starts_with("# STALE: "), "{cmd:?}: {out}");
    }
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

/// `GET path` from monitor `name`'s metrics port: status and body.
async fn api(lab: &Lab, name: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let addr = std::net::SocketAddr::new(lab.monitor(name).ip.into(), METRICS_PORT);
    let path = path.to_string();
    tokio::task::spawn_blocking(move || mmm_lab::http::get(addr, &path)).await?
}

/// `GET path` as JSON, expecting 200.
async fn api_json(lab: &Lab, name: &str, path: &str) -> anyhow::Result<Value> {
    let (status, body) = api(lab, name, path).await?;
    anyhow::ensure!(status == 200, "{path}: HTTP {status}: {body}");
    Ok(serde_json::from_str(&body)?)
}

/// What the rendered status page lacks: for each `(host, state, writer)` its card with that state and
/// writer mark, and a node in the topology picture.
fn page_problems(dom: &str, want: &[(&str, &str, bool)]) -> Vec<String> {
    let mut problems = Vec::new();
    if !dom.contains("data-loaded=\"true\"") {
        problems.push("the page never loaded its data".to_string());
    }
    for (host, state, writer) in want {
        let card = format!("data-host=\"{host}\" data-state=\"{state}\" data-writer=\"{writer}\"");
        if !dom.contains(&card) {
            problems.push(format!("no card {card}"));
        }
        let node = format!("class=\"node\" data-host=\"{host}\" data-state=\"{state}\"");
        if !dom.contains(&node) {
            problems.push(format!("no topology node {node}"));
        }
    }
    problems
}

/// Loads the status page of `monitor` in headless Chromium until it shows `want`; returns the DOM.
async fn wait_page(
    lab: &Lab,
    monitor: &str,
    want: &[(&str, &str, bool)],
    timeout: Duration,
) -> anyhow::Result<String> {
    let url = format!("http://{}:{METRICS_PORT}/", lab.monitor(monitor).ip);
    let deadline = Instant::now() + timeout;
    loop {
        let dom = mmm_lab::browser::dump_dom(&url).await?;
        let problems = page_problems(&dom, want);
        if problems.is_empty() {
            return Ok(dom);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "status page of {monitor}: {problems:?}\n{dom}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_and_status_page_follow_a_failover() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let cluster = MmmCluster::start(&lab, "auto_set_online 1")?;
    cluster
        .wait_all_online("db1", Duration::from_secs(40))
        .await?;
    lab.exec("db1", "CREATE DATABASE IF NOT EXISTS observability_probe")
        .await?;

    // The JSON API, from a follower and the leader alike: the same documents as `mmmctl --json`.
    let started = Instant::now();
    for m in ["mon1", "mon2", "mon3"] {
        let c = api_json(&lab, m, "/api/v1/cluster").await?;
        assert_eq!(c["active_master"], "db1", "{c}");
        assert_eq!(hosts_of(&c).len(), 4, "{c}");
        assert!(c["hosts"][0]["topology"].is_object(), "{c}");
        assert_eq!(c["staleness"]["monitor"], m, "{c}");
        let r = api_json(&lab, m, "/api/v1/raft").await?;
        assert_eq!(r["members"].as_array().map(Vec::len), Some(3), "{r}");
        assert!(
            r["leader_name"].as_str().is_some_and(|l| !l.is_empty()),
            "{r}"
        );
        let h = api_json(&lab, m, "/api/v1/history?limit=3").await?;
        let n = h["decisions"].as_array().map_or(0, Vec::len);
        assert!((1..=3).contains(&n), "{h}");
        let k = api_json(&lab, m, "/api/v1/checks").await?;
        assert!(k["checks"].as_array().is_some_and(|a| !a.is_empty()), "{k}");
    }
    let v = wait_extended(&lab, &["mon2"], Duration::from_secs(20), |v| {
        topology_problems(v, "db1")
    })
    .await?;
    let c = api_json(&lab, "mon2", "/api/v1/cluster").await?;
    assert_eq!(
        hosts_of(&c).into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        hosts_of(&v).into_iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for path in ["/api/v1/cluster", "/api/v1/history?limit=1", "/api/v1/raft"] {
        eprintln!("GET {path}: {}", api(&lab, "mon1", path).await?.1);
    }
    // The metrics say the same: one writable server, one writer IP holder, the mode, replicas' threads.
    // (The gauges are refreshed every second from the same facts, so they may lag the API by that.)
    let want = [
        "mmm_cluster_mode{mode=\"ACTIVE\"} 1",
        "mmm_cluster_mode{mode=\"PASSIVE\"} 0",
        "mmm_servers_writable 1",
        "mmm_writer_vip_holders 1",
        "mmm_replication_io_running{host=\"db3\"} 1",
        "mmm_replication_sql_running{host=\"db4\"} 1",
        "mmm_replication_lag_seconds{host=\"db3\"} 0",
        "mmm_agent_up{host=\"db1\"} 1",
        "mmm_host_errant{host=\"db2\"} 0",
        "mmm_semi_sync_source_on{host=\"db1\"} 1",
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, metrics) = api(&lab, "mon2", "/metrics").await?;
        let missing: Vec<&str> = want
            .iter()
            .copied()
            .filter(|w| !metrics.lines().any(|l| l == *w))
            .collect();
        if missing.is_empty() {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{missing:?} missing:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = api(&lab, "mon1", "/api/v1/nothing").await?;
    assert_eq!(status, 404);
    eprintln!("API checked on every monitor in {:?}", started.elapsed());

    // gRPC reflection on the gRPC port lists the control service.
    {
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        let ch = tonic::transport::Endpoint::from_shared(format!(
            "http://{}:{MONITOR_PORT}",
            lab.monitor("mon1").ip
        ))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(3))
        .connect()
        .await?;
        let mut client = ServerReflectionClient::new(ch);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = client
            .server_reflection_info(futures::stream::iter([req]))
            .await?
            .into_inner();
        let reply = tokio::time::timeout(Duration::from_secs(3), stream.message())
            .await??
            .expect("a reflection reply");
        let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
            panic!("not a service list: {reply:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(
            names.iter().any(|n| n == "mmm.v1.MonitorControl"),
            "{names:?}"
        );
    }

    // The status page in a real browser, before the failover.
    let before = [
        ("db1", "ONLINE", true),
        ("db2", "ONLINE", false),
        ("db3", "ONLINE", false),
        ("db4", "ONLINE", false),
    ];
    let t = Instant::now();
    let dom = wait_page(&lab, "mon2", &before, Duration::from_secs(30)).await?;
    eprintln!("status page rendered in {:?}", t.elapsed());
    assert!(dom.contains("data-member=\"mon1\""), "Raft members listed");
    // The checker fires on a page that does not show what is asked.
    assert!(!page_problems(&dom, &[("db2", "ONLINE", true)]).is_empty());
    assert!(!page_problems(&dom, &[("db1", "HARD_OFFLINE", true)]).is_empty());

    // Failover: the writer's mysqld dies; the page follows.
    lab.kill_mysqld("db1").await?;
    cluster
        .wait_show(Duration::from_secs(30), "db2 writer", |s| {
            mmm_lab::cluster::owner_of_role(s, "writer").as_deref() == Some("db2")
        })
        .await?;
    let after = [
        ("db1", "HARD_OFFLINE", false),
        ("db2", "ONLINE", true),
        ("db3", "ONLINE", false),
        ("db4", "ONLINE", false),
    ];
    let dom = wait_page(&lab, "mon3", &after, Duration::from_secs(30)).await?;
    assert!(
        dom.contains("class=\"decision\""),
        "the failover's decisions are listed"
    );
    // Wait until the replicas follow db2 in the picture, then write the README's screenshot.
    wait_extended(&lab, &["mon3"], Duration::from_secs(20), |v| {
        hosts_of(v)
            .into_iter()
            .filter(|(n, h)| {
                (n == "db3" || n == "db4") && h["topology"]["replicates_from_host"] != "db2"
            })
            .map(|(n, _)| format!("{n} not yet replicating from db2"))
            .collect()
    })
    .await?;
    let png = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/status-page.png");
    if let Some(dir) = png.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let url = format!("http://{}:{METRICS_PORT}/", lab.monitor("mon3").ip);
    mmm_lab::browser::screenshot(&url, &png, 900, 1100).await?;
    eprintln!("screenshot written to {}", png.display());
    Ok(())
}
