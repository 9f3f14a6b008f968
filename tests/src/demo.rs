//! The demo: a real 3-monitor cluster managing four real MariaDB hosts, showing a failover.
//!
//! Brings up the lab, starts the agents and monitors, prints `mmmctl show`, writes through the writer
//! VIP, kills the master's mysqld, prints the writer VIP moving and the client's write outage in
//! milliseconds, checks every acknowledged write survived, and tears everything down.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cluster::{owner_of_role, MmmCluster};
use crate::workload::{Workload, WorkloadSpec};
use crate::{Lab, LabSpec};

fn print_mmmctl(cluster: &MmmCluster<'_>, args: &[&str]) -> anyhow::Result<()> {
    let out = cluster.mmmctl(args)?;
    println!("$ mmmctl {}", args.join(" "));
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// Runs the demo from start to teardown.
pub async fn run() -> anyhow::Result<()> {
    println!("== starting the lab: bridge, namespaces, 4 MariaDB servers (db1/db2 master-master, db3/db4 replicas, GTID, semi-sync)");
    let started = Instant::now();
    let lab = Lab::start(LabSpec::cluster()).await?;
    println!(
        "   lab up in {:.1} s, subnet {}.0/24, configs in {}",
        started.elapsed().as_secs_f64(),
        lab.subnet_prefix(),
        lab.dir().display()
    );
    println!("== `mmmctl certs init`: a CA and a certificate per monitor, agent and operator; mutual TLS on every connection");
    println!("== starting 4 agents and 3 monitors (mon1..mon3, Raft)");
    let cluster = MmmCluster::start_with(&lab, "auto_set_online 5", true)?;
    cluster
        .wait_all_online("db1", Duration::from_secs(60))
        .await
        .context("the cluster did not settle")?;
    print_mmmctl(&cluster, &["cluster"])?;
    print_mmmctl(&cluster, &["show"])?;

    println!(
        "== writing through the writer VIP {} every 5 ms",
        lab.writer_vip()
    );
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
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("   {} writes acknowledged so far", load.acked());

    println!("== kill -9 of db1's mysqld (the writer)");
    let killed = Instant::now();
    lab.kill_mysqld("db1").await?;
    cluster
        .wait_show(Duration::from_secs(30), "the writer role on db2", |s| {
            owner_of_role(s, "writer").as_deref() == Some("db2")
        })
        .await?;
    println!(
        "   writer role on db2 after {} ms",
        killed.elapsed().as_millis()
    );
    let before = load.acked();
    let deadline = Instant::now() + Duration::from_secs(20);
    while load.acked() == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let history = load.stop().await;
    print_mmmctl(&cluster, &["show"])?;
    print_mmmctl(&cluster, &["history", "8"])?;
    let outage = history.longest_outage();
    println!(
        "== client's write outage around the failover: {} ms",
        outage.as_millis()
    );
    let report = history.verify(&lab, &["db2", "db3", "db4"]).await?;
    println!(
        "== checking client: {} acknowledged writes, missing on any surviving host: {}, split brain: {}",
        report.acked,
        report.missing.values().map(Vec::len).sum::<usize>(),
        if report.split_brain.is_empty() { "none" } else { "FOUND" }
    );
    report.ensure_ok()?;
    println!("== tearing down");
    Ok(())
}
