//! End to end: 3 monitors and 4 MariaDB hosts with agents, all real processes in network namespaces.
//! The seed's scenario (the writer's mysqld dies: the writer VIP moves to db2, the replicas follow db2,
//! a row written through the VIP reaches every host; a replica dies: its reader VIPs move; it comes back
//! and returns to ONLINE), the leader dying in the middle of a failover, and a monitor stopping.

use std::time::{Duration, Instant};

use mmm_lab::cluster::{owner_of_role, MmmCluster};
use mmm_lab::workload::{Workload, WorkloadSpec};
use mmm_lab::{Lab, LabSpec};
use mmm_proto::HostState;
use mysql_async::prelude::Queryable;

const SETTLE: Duration = Duration::from_secs(40);

/// Source host IP of a replica (`SHOW SLAVE STATUS`), "" when not a replica.
async fn source_of(lab: &Lab, host: &str) -> anyhow::Result<String> {
    let mut c = lab.mysql(host).await?;
    let row: Option<mysql_async::Row> = c.query_first("SHOW SLAVE STATUS").await?;
    Ok(row
        .and_then(|r| r.get::<String, _>("Master_Host"))
        .unwrap_or_default())
}

async fn wait_source(lab: &Lab, host: &str, ip: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = source_of(lab, host).await.unwrap_or_default();
        if s == ip {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("{host} replicates from '{s}', not {ip}, after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `host` has a row with `id` in `app.chk`.
async fn wait_row(lab: &Lab, host: &str, id: u64, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut c) = lab.mysql(host).await {
            let n: Option<u64> = c
                .exec_first("SELECT COUNT(*) FROM app.e2e WHERE id = ?", (id,))
                .await
                .unwrap_or(None);
            if n == Some(1) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("row {id} did not reach {host} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_scenario_writer_dies_then_a_replica_dies_and_returns() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let cluster = MmmCluster::start(&lab, "auto_set_online 2")?;
    cluster.wait_all_online("db1", SETTLE).await?;

    let load = Workload::start(
        &lab,
        WorkloadSpec {
            target: lab.writer_vip(),
            readers: lab.reader_vips(),
            interval: Duration::from_millis(5),
            // A pool's connect timeout: a SYN sent while the VIP had no owner is lost, and the
            // client gives up on it after this and connects again.
            op_timeout: Duration::from_millis(250),
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        load.acked() > 0,
        "the workload writes through the writer VIP before the fault"
    );

    // The writer's mysqld dies.
    let killed = Instant::now();
    lab.kill_mysqld("db1").await?;
    let show = cluster
        .wait_show(Duration::from_secs(20), "writer on db2", |s| {
            owner_of_role(s, "writer").as_deref() == Some("db2")
        })
        .await?;
    let db1 = show
        .hosts
        .iter()
        .find(|h| h.name == "db1")
        .expect("db1 shown");
    assert_eq!(
        db1.state,
        HostState::HardOffline as i32,
        "db1 is HARD_OFFLINE: {show:?}"
    );
    assert!(db1.roles.is_empty(), "db1 holds no role: {show:?}");
    // The first write accepted through the VIP after the kill.
    let before = load.acked();
    let deadline = Instant::now() + Duration::from_secs(20);
    while load.acked() == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let history = load.stop().await;
    // The only fault of the run: the longest gap between acknowledged writes is the failover's.
    let outage = history.longest_outage();
    eprintln!("mysqld kill -> first write through the writer VIP: outage {outage:?}");
    let db2_id = lab.host("db2").server_id;
    assert!(
        history
            .acks
            .iter()
            .any(|a| a.server_id == db2_id && a.acked > killed),
        "writes through the VIP land on db2 after the failover"
    );
    let db2_ip = lab.host("db2").ip.to_string();
    wait_source(&lab, "db3", &db2_ip, Duration::from_secs(10)).await?;
    wait_source(&lab, "db4", &db2_ip, Duration::from_secs(10)).await?;
    let report = history.verify(&lab, &["db2", "db3", "db4"]).await?;
    assert!(
        report.problems().is_empty(),
        "checking client: {:?}",
        report.problems()
    );

    // A row written through the VIP reaches every surviving host.
    let mut c = lab
        .connect_ip(lab.writer_vip(), Duration::from_secs(2))
        .await?;
    c.query_drop("CREATE TABLE IF NOT EXISTS app.e2e (id BIGINT PRIMARY KEY)")
        .await?;
    c.exec_drop("INSERT INTO app.e2e (id) VALUES (?)", (4242u64,))
        .await?;
    drop(c);
    for h in ["db2", "db3", "db4"] {
        wait_row(&lab, h, 4242, Duration::from_secs(10)).await?;
    }

    // A replica dies: its reader VIPs move to the others.
    lab.kill_mysqld("db3").await?;
    cluster
        .wait_show(
            Duration::from_secs(20),
            "db3 HARD_OFFLINE without roles, reader VIPs elsewhere",
            |s| {
                let db3 = s.hosts.iter().find(|h| h.name == "db3");
                let readers: usize = s
                    .hosts
                    .iter()
                    .map(|h| h.roles.iter().filter(|r| r.role == "reader").count())
                    .sum();
                db3.is_some_and(|h| h.state == HostState::HardOffline as i32 && h.roles.is_empty())
                    && readers == lab.reader_vips().len()
            },
        )
        .await?;
    // It comes back and returns to ONLINE (auto_set_online 2).
    lab.start_mysqld("db3").await?;
    cluster
        .wait_show(Duration::from_secs(30), "db3 back ONLINE", |s| {
            s.hosts
                .iter()
                .any(|h| h.name == "db3" && h.state == HostState::Online as i32)
        })
        .await?;
    wait_row(&lab, "db3", 4242, Duration::from_secs(10)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_in_the_middle_of_a_failover_still_completes() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut cluster = MmmCluster::start(&lab, "")?;
    cluster.wait_all_online("db1", SETTLE).await?;
    let leader = cluster.cluster_status_of("mon1").await?.leader_name;
    assert!(!leader.is_empty(), "a leader is known");

    lab.kill_mysqld("db1").await?;
    // Kill the leader as soon as the failover has started (or, at the latest, when db1 is judged).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = cluster.show().await?;
        let db1_down = s
            .hosts
            .iter()
            .any(|h| h.name == "db1" && h.state != HostState::Online as i32);
        if db1_down || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.kill_monitor(&leader)?;
    let show = cluster
        .wait_show(
            Duration::from_secs(30),
            "writer on db2 after the leader died",
            |s| owner_of_role(s, "writer").as_deref() == Some("db2"),
        )
        .await?;
    let survivor = cluster.running_monitors()[0].clone();
    let status = cluster.cluster_status_of(&survivor).await?;
    assert_ne!(status.leader_name, leader, "a new leader took over");
    assert!(show
        .hosts
        .iter()
        .all(|h| h.name == "db1" || h.state == HostState::Online as i32));
    // The new writer accepts writes through the VIP.
    let mut c = lab
        .connect_ip(lab.writer_vip(), Duration::from_secs(2))
        .await?;
    let id: u32 = c.query_first("SELECT @@server_id").await?.unwrap_or(0);
    assert_eq!(id, lab.host("db2").server_id);
    c.query_drop("CREATE TABLE IF NOT EXISTS app.after_leader (id INT PRIMARY KEY)")
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_monitor_stopping_changes_nothing_for_the_databases() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut cluster = MmmCluster::start(&lab, "")?;
    let before = cluster.wait_all_online("db1", SETTLE).await?;
    let leader = cluster.cluster_status_of("mon1").await?.leader_name;
    let victim = cluster
        .running_monitors()
        .into_iter()
        .find(|m| *m != leader)
        .expect("a follower");
    let history_before = cluster.mmmctl(&["--json", "history", "1000"])?;
    cluster.kill_monitor(&victim)?;
    // Watch for a while: nothing may change (absence of change cannot be waited on).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = cluster.show().await?;
    assert_eq!(
        before.hosts, after.hosts,
        "hosts, states and roles unchanged"
    );
    let history_after = cluster.mmmctl(&["--json", "history", "1000"])?;
    // The decisions, not the answer's staleness note (its age differs from call to call).
    let decisions = |out: &std::process::Output| -> anyhow::Result<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let d = v["decisions"].clone();
        anyhow::ensure!(
            d.as_array().is_some_and(|a| !a.is_empty()),
            "no decisions in {v}"
        );
        Ok(d)
    };
    assert_eq!(
        decisions(&history_before)?,
        decisions(&history_after)?,
        "no decision was taken"
    );
    let mut c = lab
        .connect_ip(lab.writer_vip(), Duration::from_secs(2))
        .await?;
    let id: u32 = c.query_first("SELECT @@server_id").await?.unwrap_or(0);
    assert_eq!(id, lab.host("db1").server_id);
    Ok(())
}
