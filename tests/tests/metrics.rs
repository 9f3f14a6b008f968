//! Observability end to end: 3 monitors and 4 MariaDB hosts with agents as real processes. Every
//! monitor's and agent's `/metrics` is scraped over HTTP from the root namespace and checked with
//! Prometheus' own parser (`promtool check metrics`); `/readyz` is 503 on a monitor cut off from the
//! others (no leader known) and 200 once it rejoins; after the writer's mysqld is killed, the
//! leader gauge, the host state gauge and the failover counter follow, and the failover's decisions
//! are logged once in the whole cluster. The example alert rules load and pass their unit tests.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mmm_lab::cluster::{owner_of_role, MmmCluster};
use mmm_lab::{Lab, LabSpec, METRICS_PORT};

const SETTLE: Duration = Duration::from_secs(40);

use mmm_lab::http::get as http_get;

/// Runs `promtool check metrics` on an exposition; the error carries promtool's complaints.
fn promtool_check(what: &str, exposition: &str) -> anyhow::Result<()> {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("promtool not found (Debian package prometheus; .ci/run installs it)")?;
    child
        .stdin
        .take()
        .context("promtool stdin")?
        .write_all(exposition.as_bytes())?;
    let out = child.wait_with_output()?;
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !complaints.trim().is_empty() {
        bail!("promtool check metrics on {what}: {complaints}\n{exposition}");
    }
    Ok(())
}

/// The value of the sample `name` whose labels include every pair of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_part, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| label_part.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

fn monitor_addr(lab: &Lab, name: &str) -> SocketAddr {
    SocketAddr::new(lab.monitor(name).ip.into(), METRICS_PORT)
}

fn agent_addr(lab: &Lab, host: &str) -> SocketAddr {
    SocketAddr::new(
        lab.host(host).ip.into(),
        mmm_config::defaults::AGENT_METRICS_PORT,
    )
}

/// Waits until `GET path` on `addr` answers `status`; returns the body.
async fn wait_status(
    addr: SocketAddr,
    path: &str,
    status: u16,
    timeout: Duration,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let p = path.to_string();
        let last = match tokio::task::spawn_blocking(move || http_get(addr, &p)).await? {
            Ok((s, body)) if s == status => return Ok(body),
            Ok((s, body)) => format!("{s} {body}"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("{addr}{path} did not answer {status} within {timeout:?}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Scrapes `/metrics` of `addr`.
async fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    wait_status(addr, "/metrics", 200, Duration::from_secs(5)).await
}

/// Waits until every monitor's exposition satisfies `pred`; returns the expositions.
async fn wait_monitors(
    lab: &Lab,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&[String]) -> bool,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut all = Vec::new();
        for m in lab.monitors() {
            all.push(scrape(monitor_addr(lab, &m.name)).await?);
        }
        if pred(&all) {
            return Ok(all);
        }
        if Instant::now() > deadline {
            bail!("monitors' metrics never showed {what} within {timeout:?}:\n{all:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Once the monitors agree on one leader: its metrics address, and every monitor's exposition.
async fn leader_metrics(lab: &Lab) -> anyhow::Result<(SocketAddr, Vec<String>)> {
    let all = wait_monitors(lab, "one leader", Duration::from_secs(10), |all| {
        all.iter()
            .filter_map(|t| sample(t, "mmm_raft_is_leader", &[]))
            .sum::<f64>()
            == 1.0
    })
    .await?;
    let leader = lab
        .monitors()
        .iter()
        .zip(&all)
        .find(|(_, t)| sample(t, "mmm_raft_is_leader", &[]) == Some(1.0))
        .map(|(m, _)| monitor_addr(lab, &m.name))
        .context("the leader")?;
    Ok((leader, all))
}

/// The leader renews a writer's lease only while it hears the writer's agent (`mmm_monitor::lease`,
/// "not renewing into silence"). Right after a renewal was acknowledged db1's link goes down; the next
/// renewal falls
/// due a third of a lease (667 ms) later, when db1 has been silent for longer than 150 ms, so it is
/// not sent, and a second after the cut the lease the leader last sent has at most a second left
/// (`mmm_writer_lease_seconds`). Sent into the dead link, it would have about 1.6 s left (seen when
/// the rule is taken out).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_no_lease_renewal_goes_into_a_dead_link() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let cluster = MmmCluster::start(&lab, "auto_set_online 2")?;
    cluster.wait_all_online("db1", SETTLE).await?;
    let (leader, _) = leader_metrics(&lab).await?;
    let left = |t: &str| sample(t, "mmm_writer_lease_seconds", &[]).unwrap_or(0.0);
    // A renewal shows as the lease left jumping up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = left(&scrape(leader).await?);
    loop {
        let now = left(&scrape(leader).await?);
        if now > last + 0.2 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no renewal of db1's lease seen");
        last = now;
    }
    // Its acknowledgement comes back first (a renewal still in flight would hold the next one back
    // anyway, until its timeout).
    tokio::time::sleep(Duration::from_millis(100)).await;
    lab.link_down("db1").await?;
    let cut = Instant::now();
    tokio::time::sleep_until((cut + Duration::from_secs(1)).into()).await;
    let after = left(&scrape(leader).await?);
    assert!(
        after <= 1.25,
        "the leader renewed db1's lease after its link went down: {after:.2} s left a second later"
    );
    eprintln!("a second after the cut the lease the leader last sent has {after:.2} s left");
    lab.link_up("db1").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_pass_promtool_and_follow_a_failover() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    // mon3 starts cut off from the other monitors: it knows no leader while mon1 and mon2 elect one.
    lab.block("mon3", "mon1").await?;
    lab.block("mon3", "mon2").await?;
    let cluster = MmmCluster::start(&lab, "auto_set_online 2")?;
    let mon3 = monitor_addr(&lab, "mon3");
    let body = wait_status(mon3, "/readyz", 503, Duration::from_secs(20)).await?;
    assert!(body.contains("no Raft leader"), "{body}");
    wait_status(mon3, "/healthz", 200, Duration::from_secs(5)).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(20);
    loop {
        let r1 = tokio::task::spawn_blocking({
            let a = monitor_addr(&lab, "mon1");
            move || http_get(a, "/readyz")
        })
        .await?;
        if r1.as_ref().is_ok_and(|(s, _)| *s == 200) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "mon1 never ready: {r1:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = tokio::task::spawn_blocking(move || http_get(mon3, "/readyz")).await??;
    assert_eq!(status, 503, "mon3 is not ready while cut off: {body}");
    eprintln!(
        "mon1 ready {:?} after start; mon3 (cut off) answers /readyz 503",
        started.elapsed()
    );
    lab.unblock_all().await?;
    for m in lab.monitors() {
        wait_status(monitor_addr(&lab, &m.name), "/readyz", 200, SETTLE).await?;
    }
    cluster.wait_all_online("db1", SETTLE).await?;

    // Every monitor and agent exposes metrics that pass promtool.
    let t = Instant::now();
    for m in lab.monitors() {
        let text = scrape(monitor_addr(&lab, &m.name)).await?;
        promtool_check(&m.name, &text)?;
        for name in [
            "mmm_raft_is_leader",
            "mmm_raft_commit_index",
            "mmm_host_state",
            "mmm_check_duration_seconds_bucket",
            "mmm_role_owner",
            "mmm_agent_reachable",
        ] {
            assert!(text.contains(name), "{} has no {name}:\n{text}", m.name);
        }
    }
    for h in lab.hosts() {
        let text = scrape(agent_addr(&lab, &h.name)).await?;
        promtool_check(&h.name, &text)?;
        assert_eq!(
            sample(&text, "mmm_agent_mysqld_up", &[]),
            Some(1.0),
            "{}:\n{text}",
            h.name
        );
    }
    eprintln!(
        "{} monitors and {} agents scraped and checked by promtool in {:?}",
        lab.monitors().len(),
        lab.hosts().len(),
        t.elapsed()
    );
    // A quiet cluster pushes each agent its unchanged status only to renew it (every third of the
    // 2 s writer lease), not every round.
    let (leader, before) = leader_metrics(&lab).await?;
    let pushes = |t: &str| sample(t, "mmm_agent_push_duration_seconds_count", &[]).unwrap_or(0.0);
    let p0 = pushes(&scrape(leader).await?);
    let window = Duration::from_secs(2);
    tokio::time::sleep(window).await;
    let quiet = pushes(&scrape(leader).await?) - p0;
    let hosts = lab.hosts().len() as f64;
    eprintln!("pushes by the leader in a quiet {window:?}: {quiet} for {hosts} agents");
    assert!(
        quiet <= hosts * 5.0,
        "{quiet} pushes in {window:?} to {hosts} agents whose status did not change"
    );
    for t in &before {
        assert_eq!(
            sample(t, "mmm_host_state", &[("host", "db1"), ("state", "ONLINE")]),
            Some(1.0),
            "{t}"
        );
        assert_eq!(
            sample(t, "mmm_failovers_total", &[("kind", "unplanned")]),
            None,
            "no failover yet: {t}"
        );
        assert_eq!(
            sample(t, "mmm_role_owner", &[("role", "writer"), ("host", "db1")]),
            Some(1.0),
            "{t}"
        );
    }
    let writer = scrape(agent_addr(&lab, "db1")).await?;
    assert_eq!(
        sample(&writer, "mmm_agent_writable", &[]),
        Some(1.0),
        "{writer}"
    );
    let lease = sample(&writer, "mmm_agent_lease_remaining_seconds", &[]).unwrap_or(0.0);
    assert!(lease > 0.0, "the writer holds a lease: {writer}");

    // The writer's mysqld dies: the metrics follow the failover.
    lab.kill_mysqld("db1").await?;
    let killed = Instant::now();
    cluster
        .wait_show(Duration::from_secs(20), "writer on db2", |s| {
            owner_of_role(s, "writer").as_deref() == Some("db2")
        })
        .await?;
    let after = wait_monitors(
        &lab,
        "db1 HARD_OFFLINE, one unplanned failover, writer on db2",
        Duration::from_secs(10),
        |all| {
            all.iter().all(|t| {
                sample(
                    t,
                    "mmm_host_state",
                    &[("host", "db1"), ("state", "HARD_OFFLINE")],
                ) == Some(1.0)
                    && sample(t, "mmm_host_state", &[("host", "db1"), ("state", "ONLINE")])
                        == Some(0.0)
                    && sample(t, "mmm_failovers_total", &[("kind", "unplanned")]) == Some(1.0)
                    && sample(t, "mmm_role_owner", &[("role", "writer"), ("host", "db2")])
                        == Some(1.0)
            })
        },
    )
    .await?;
    eprintln!(
        "mysqld kill -> every monitor's metrics show the failover: {:?}",
        killed.elapsed()
    );
    let leaders: f64 = after
        .iter()
        .filter_map(|t| sample(t, "mmm_raft_is_leader", &[]))
        .sum();
    assert_eq!(leaders, 1.0, "one leader gauge set");
    for (m, t) in lab.monitors().iter().zip(&after) {
        promtool_check(&m.name, t)?;
        assert_eq!(
            sample(t, "mmm_failover_duration_seconds_count", &[]),
            Some(1.0),
            "{t}"
        );
        let last = sample(t, "mmm_failover_last_timestamp_seconds", &[]).unwrap_or(0.0);
        assert!(last > 0.0, "time of the last failover: {t}");
        let lease = sample(t, "mmm_writer_lease_seconds", &[]).unwrap_or(0.0);
        let leads = sample(t, "mmm_raft_is_leader", &[]) == Some(1.0);
        assert_eq!(leads, lease > 0.0, "only the leader grants leases: {t}");
    }
    let old = scrape(agent_addr(&lab, "db1")).await?;
    assert_eq!(sample(&old, "mmm_agent_mysqld_up", &[]), Some(0.0), "{old}");
    assert_eq!(sample(&old, "mmm_agent_writable", &[]), Some(0.0), "{old}");
    let new = scrape(agent_addr(&lab, "db2")).await?;
    assert_eq!(sample(&new, "mmm_agent_writable", &[]), Some(1.0), "{new}");
    promtool_check("db1 after the failover", &old)?;

    // Each decision of the failover is logged once in the whole cluster.
    let logs = lab.logs_of("monitor-");
    let committed: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("decision committed"))
        .collect();
    // Every monitor applies every decision; only one logs it: no two lines with the same fields.
    let mut seen = std::collections::BTreeSet::new();
    for l in &committed {
        let fields = l.find("epoch=").map_or(*l, |i| &l[i..]);
        assert!(
            seen.insert(fields),
            "logged twice: {fields}\n{committed:#?}"
        );
    }
    let started: Vec<&&str> = committed
        .iter()
        .filter(|l| l.contains("(failover started)") && l.contains("from=db1"))
        .collect();
    assert_eq!(
        started.len(),
        1,
        "failover start logged once: {committed:#?}"
    );
    assert!(
        started[0].contains("host=db2") && started[0].contains("role=writer"),
        "structured fields: {}",
        started[0]
    );
    assert!(
        committed.iter().any(|l| l.contains("to=completed")),
        "failover completion logged: {committed:#?}"
    );
    // The same decisions are readable through mmmctl history.
    let out = cluster.mmmctl(&["history", "50"])?;
    let history = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{history}");
    assert!(history.contains("completed"), "{history}");
    Ok(())
}

/// The example alert rules load and behave as their unit tests expect.
#[test]
fn alert_rules_load_and_pass_their_tests() -> anyhow::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .context("promtool not found (Debian package prometheus; .ci/run installs it)")?;
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The dashboard is valid JSON and every metric it queries is one the monitors or agents export.
#[test]
fn dashboard_queries_exported_metrics() -> anyhow::Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/mmm-rs.json");
    let text = std::fs::read_to_string(&path)?;
    let dash: serde_json::Value = serde_json::from_str(&text)?;
    let panels = dash["panels"].as_array().context("panels")?;
    assert!(panels.len() >= 6, "{} panels", panels.len());
    let exported = [
        "mmm_raft_is_leader",
        "mmm_raft_term",
        "mmm_raft_commit_index",
        "mmm_raft_applied_index",
        "mmm_raft_leader_changes_total",
        "mmm_raft_follower_lag_entries",
        "mmm_host_state",
        "mmm_check_ok",
        "mmm_check_duration_seconds_bucket",
        "mmm_role_owner",
        "mmm_failovers_total",
        "mmm_failover_duration_seconds_bucket",
        "mmm_failover_last_timestamp_seconds",
        "mmm_agent_push_errors_total",
        "mmm_agent_push_duration_seconds_bucket",
        "mmm_agent_reachable",
        "mmm_writer_lease_seconds",
        "mmm_agent_vips_held",
        "mmm_agent_writable",
        "mmm_agent_epoch_accepted_index",
        "mmm_agent_lease_remaining_seconds",
        "mmm_agent_mysqld_up",
        "mmm_cluster_mode",
        "mmm_servers_writable",
        "mmm_writer_vip_holders",
        "mmm_host_errant",
        "mmm_agent_up",
        "mmm_replication_lag_seconds",
        "mmm_replication_transactions_behind",
        "mmm_replication_io_running",
        "mmm_replication_sql_running",
        "mmm_semi_sync_source_on",
        "mmm_semi_sync_replica_on",
    ];
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().context("expr")?;
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("mmm_"))
                .collect();
            assert!(!names.is_empty(), "{expr}");
            for n in names {
                assert!(exported.contains(&n), "{n} in {expr} is not exported");
            }
        }
    }
    Ok(())
}
