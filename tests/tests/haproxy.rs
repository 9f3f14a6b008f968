//! Routing without VIPs: a real HAProxy (Debian's `haproxy`) runs the example configuration
//! `deploy/haproxy/haproxy.cfg` (with the lab's addresses) in the client namespace `cli2`, and checks every
//! agent's role endpoints (`GET /writer`, `GET /reader` on the agents' metrics port). A client writes
//! through HAProxy's writer port while the writer's mysqld is killed (-9): the writes move to the new
//! writer, no write is accepted by the old writer after the new writer's first, and the outage is
//! printed. The agents' endpoints are also checked directly (200 / 503 with a reason), and `/writer`
//! answers 503 within the lease once the writer is cut off from every monitor, though the last status it
//! got still names it the writer.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mmm_lab::cluster::{owner_of_role, MmmCluster};
use mmm_lab::workload::{Ack, Workload, WorkloadSpec};
use mmm_lab::{Lab, LabSpec};
use mysql_async::prelude::Queryable;

const SETTLE: Duration = Duration::from_secs(40);
/// Deadline of one HTTP request to an agent.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// Where Debian's package installs HAProxy.
const HAPROXY: &str = "/usr/sbin/haproxy";
/// The example configuration the test runs.
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/haproxy/haproxy.cfg");
/// The example's reader port (its writer port is MySQL's 3306, where the workload connects).
const READER_PORT: u16 = 3307;
/// Longest the failover through HAProxy may take (kill to the first write on the new writer): the
/// monitors' detection and failover plus one HAProxy check interval, with room for a loaded machine.
const MAX_OUTAGE: Duration = Duration::from_secs(30);

/// The example configuration with the lab's host addresses in place of `10.0.0.11`..`10.0.0.14`.
fn render_example(lab: &Lab) -> anyhow::Result<String> {
    let mut text =
        std::fs::read_to_string(EXAMPLE).with_context(|| format!("cannot read {EXAMPLE}"))?;
    for (i, h) in lab.hosts().iter().enumerate() {
        let example_ip = format!("10.0.0.{}:", 11 + i);
        if !text.contains(&example_ip) {
            bail!("{EXAMPLE} has no server at {example_ip} for {}", h.name);
        }
        text = text.replace(&example_ip, &format!("{}:", h.ip));
    }
    Ok(text)
}

/// `GET path` on a host's agent: status and body.
async fn agent_get(lab: &Lab, host: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let addr = SocketAddr::new(
        lab.host(host).ip.into(),
        mmm_config::defaults::AGENT_METRICS_PORT,
    );
    let path = path.to_string();
    tokio::task::spawn_blocking(move || mmm_lab::http::get_within(addr, &path, HTTP_TIMEOUT))
        .await?
}

/// Waits until `GET path` on a host's agent answers `status`; returns the body.
async fn wait_agent(
    lab: &Lab,
    host: &str,
    path: &str,
    status: u16,
    timeout: Duration,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = agent_get(lab, host, path).await;
        match &last {
            Ok((s, body)) if *s == status => return Ok(body.clone()),
            _ if Instant::now() > deadline => {
                bail!("{host}{path} did not answer {status} within {timeout:?}: last {last:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The server id behind HAProxy's reader port.
async fn read_through(proxy: Ipv4Addr) -> anyhow::Result<u32> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(proxy.to_string())
        .tcp_port(READER_PORT)
        .user(Some(mmm_lab::users::APP_USER))
        .pass(Some(mmm_lab::users::APP_PASSWORD))
        .db_name(Some(mmm_lab::users::APP_DB))
        .prefer_socket(false);
    let id = tokio::time::timeout(Duration::from_secs(3), async {
        let mut c = mysql_async::Conn::new(opts).await?;
        let id: Option<u32> = c.query_first("SELECT @@server_id").await?;
        let _ = c.disconnect().await;
        anyhow::Ok(id)
    })
    .await
    .context("reading through HAProxy's reader port timed out")??;
    id.context("SELECT @@server_id returned no row")
}

/// Ids of writes the old writer acknowledged after the new writer acknowledged its first.
fn old_writer_after_new(acks: &[Ack], old: u32, new: u32) -> Vec<u64> {
    let Some(first_new) = acks
        .iter()
        .filter(|a| a.server_id == new)
        .map(|a| a.acked)
        .min()
    else {
        return Vec::new();
    };
    acks.iter()
        .filter(|a| a.server_id == old && a.acked > first_new)
        .map(|a| a.id)
        .collect()
}

#[test]
fn the_old_writer_check_fires_on_a_late_old_write() {
    let t0 = Instant::now();
    let ack = |id: u64, server_id: u32, ms: u64| Ack {
        id,
        server_id,
        sent: t0 + Duration::from_millis(ms),
        acked: t0 + Duration::from_millis(ms + 1),
    };
    let clean = [ack(1, 1, 0), ack(2, 1, 10), ack(3, 2, 500), ack(4, 2, 510)];
    assert!(old_writer_after_new(&clean, 1, 2).is_empty());
    let late = [ack(1, 1, 0), ack(3, 2, 500), ack(4, 1, 520), ack(5, 2, 530)];
    assert_eq!(old_writer_after_new(&late, 1, 2), vec![4]);
    assert!(old_writer_after_new(&late[..1], 1, 2).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn haproxy_routes_writes_by_the_writer_endpoint_across_a_failover() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    if !Path::new(HAPROXY).exists() {
        bail!("{HAPROXY} is missing: install Debian's haproxy package (.ci/run does)");
    }
    let lab = Lab::start(LabSpec::cluster()).await?;
    let cluster = MmmCluster::start(&lab, "auto_set_online 2")?;
    cluster.wait_all_online("db1", SETTLE).await?;

    // The endpoints themselves: only the writer passes /writer; the others say why not.
    let body = wait_agent(&lab, "db1", "/writer", 200, Duration::from_secs(10)).await?;
    assert!(body.contains("\"writer_lease\":true"), "{body}");
    let (status, body) = agent_get(&lab, "db2", "/writer").await?;
    assert_eq!(status, 503, "db2 is not the writer: {body}");
    assert!(body.contains("writer role"), "503 says why: {body}");
    wait_agent(&lab, "db3", "/reader", 200, Duration::from_secs(10)).await?;
    wait_agent(&lab, "db2", "/health", 200, Duration::from_secs(10)).await?;

    // HAProxy in a namespace of its own, with the example's configuration.
    let cfg = lab.dir().join("etc").join("haproxy.cfg");
    std::fs::write(&cfg, render_example(&lab)?)?;
    let cfg_arg = cfg.to_string_lossy().into_owned();
    let mut haproxy = lab.spawn_in(
        "cli2",
        Path::new(HAPROXY),
        &["-db", "-f", &cfg_arg],
        "haproxy",
    )?;
    let proxy = lab.client("cli2").ip;

    let load = Workload::start(
        &lab,
        WorkloadSpec {
            target: proxy,
            readers: Vec::new(),
            interval: Duration::from_millis(5),
            op_timeout: Duration::from_millis(500),
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        load.acked() > 0,
        "writes go through HAProxy before the fault"
    );
    let db1_id = lab.host("db1").server_id;
    let db2_id = lab.host("db2").server_id;
    assert_eq!(
        load.history().writers(),
        vec![db1_id],
        "HAProxy sends writes to db1"
    );
    let reader = read_through(proxy).await?;
    assert!(
        lab.hosts().iter().any(|h| h.server_id == reader),
        "the reader port reaches a DB host (server_id {reader})"
    );

    let killed = Instant::now();
    lab.kill_mysqld("db1").await?;
    cluster
        .wait_show(Duration::from_secs(20), "writer on db2", |s| {
            owner_of_role(s, "writer").as_deref() == Some("db2")
        })
        .await?;
    let deadline = Instant::now() + MAX_OUTAGE;
    while !load
        .history()
        .acks
        .iter()
        .any(|a| a.server_id == db2_id && a.acked > killed)
    {
        if Instant::now() > deadline {
            bail!("no write through HAProxy reached db2 within {MAX_OUTAGE:?} of the kill");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A little more traffic on the new writer, where a stale route would show.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let history = load.stop().await;
    let outage = history
        .outage_around(killed)
        .unwrap_or(history.longest_outage());
    eprintln!(
        "kill -9 of the writer's mysqld -> first write through HAProxy on the new writer: outage {outage:?} \
         ({} writes acknowledged, {} errors)",
        history.acks.len(),
        history.errors.len()
    );

    let late = old_writer_after_new(&history.acks, db1_id, db2_id);
    assert!(
        late.is_empty(),
        "the old writer accepted ids {late:?} after the new writer's first write"
    );
    let split = history.split_brain();
    assert!(split.is_empty(), "split brain: {split:?}");
    assert_eq!(
        history.writers(),
        vec![db1_id, db2_id],
        "writes moved from db1 to db2 only"
    );
    assert!(outage < MAX_OUTAGE, "outage {outage:?}");

    // The endpoints after the failover: db2 is the writer, db1 (mysqld dead) is not.
    wait_agent(&lab, "db2", "/writer", 200, Duration::from_secs(5)).await?;
    let (status, body) = agent_get(&lab, "db1", "/writer").await?;
    assert_eq!(status, 503, "db1 lost the writer role: {body}");
    let (status, body) = agent_get(&lab, "db1", "/health").await?;
    assert_eq!(status, 503, "db1's mysqld is dead: {body}");
    assert!(
        haproxy.is_running(),
        "HAProxy ran throughout (log {})",
        haproxy.log_path().display()
    );
    Ok(())
}

/// Longest `/writer` may keep answering 200 once the writer is cut off from every monitor: the writer
/// lease (2 s by default) plus one probe cache and a polling step, with room for a loaded machine.
const LEASE_BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_writer_endpoint_follows_the_lease_not_the_role() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let cluster = MmmCluster::start(&lab, "auto_set_online 2")?;
    cluster.wait_all_online("db1", SETTLE).await?;
    wait_agent(&lab, "db1", "/writer", 200, Duration::from_secs(10)).await?;

    // db1 keeps its mysqld and its role in the last status it got, but no monitor renews its lease.
    let cut = Instant::now();
    lab.partition(&["db1"], &["mon1", "mon2", "mon3"]).await?;
    let body = wait_agent(&lab, "db1", "/writer", 503, LEASE_BOUND).await?;
    let took = cut.elapsed();
    eprintln!("writer cut off from the monitors -> /writer 503 after {took:?}: {body}");
    assert!(body.contains("valid lease"), "503 says why: {body}");
    lab.heal_partition(&["db1"], &["mon1", "mon2", "mon3"])
        .await?;
    Ok(())
}
