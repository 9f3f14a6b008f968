//! Many clusters on one set of monitor machines, as MMM runs them (`mmm_mon@CLUSTER`): one
//! `mmm-monitor` process per cluster on each of three "machines" (127.0.1.1-3, each cluster on ports of
//! its own), every cluster with 4 stand-in MySQL endpoints ([`StandIn`]) and a 1 s check period; no
//! agents run (checks, the quorum on observations, Raft and the decisions are what costs).
//!
//! Measured over a sampling window once every cluster judged every host ONLINE: CPU (percent of one
//! core) and resident memory summed over the processes of each machine, the check cycle of every
//! cluster (the mean time between two `mysql` checks of one of its hosts, from its first monitor's
//! `/metrics`), and the decision latency in a few clusters (an endpoint starts refusing connections →
//! its HARD_OFFLINE decision). Run it in a network namespace of its own (`bench/run.sh` does).
//! `MMM_BENCH_KEEP=1` keeps the configs and logs; `MMM_BENCH_MONITOR_LOG` sets the log filter.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use mmm_bench::monitors::{
    hard_offline_at, mysql_checks_done, online_hosts, write_cluster, ClusterFiles, Monitors,
};
use mmm_bench::procstat::{cpu_percent, sample, ProcSample};
use mmm_bench::standin::StandIn;
use mmm_bench::stats::{fmt_ms, Samples};

/// Benchmark options.
#[derive(Parser, Debug)]
#[command(
    about = "CPU, memory and check cycle of many clusters on one set of three monitor machines"
)]
struct Args {
    /// Numbers of clusters to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,50")]
    clusters: Vec<usize>,
    /// Hosts per cluster.
    #[arg(long, default_value_t = 4)]
    hosts: usize,
    /// CPU and check-cycle sampling window, seconds.
    #[arg(long, default_value_t = 20)]
    sample_secs: u64,
    /// Clusters in which one host is taken down for the decision latency.
    #[arg(long, default_value_t = 3)]
    downs: usize,
    /// Shorter windows and fewer clusters (a smoke run).
    #[arg(long)]
    quick: bool,
}

/// Monitor machines.
const MACHINES: usize = 3;
/// gRPC port of cluster 0; cluster `j` uses `PORT_BASE + 2 j`, its metrics the next port.
const PORT_BASE: u16 = 10_000;
/// Environment variable that keeps each run's directory (configs, data, monitor logs).
const KEEP_ENV: &str = "MMM_BENCH_KEEP";
/// How long the clusters may take to judge every host ONLINE.
const SETTLE: Duration = Duration::from_secs(120);

fn machine_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, k as u8)
}

fn port(j: usize) -> u16 {
    PORT_BASE + 2 * j as u16
}

fn metrics_port(j: usize) -> u16 {
    port(j) + 1
}

/// Address of host `i` of cluster `j` (`hosts` per cluster).
fn host_ip(j: usize, i: usize, hosts: usize) -> Ipv4Addr {
    let n = j * hosts + i;
    Ipv4Addr::new(127, 10, (n / 200) as u8, (n % 200 + 1) as u8)
}

fn host_name(i: usize) -> String {
    format!("db{}", i + 1)
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Writes cluster `j`'s configuration (files tagged `_c<j>`); returns its monitors' files.
fn write_configs(dir: &Path, j: usize, hosts: usize) -> anyhow::Result<Vec<PathBuf>> {
    let monitors: Vec<Ipv4Addr> = (1..=MACHINES).map(machine_ip).collect();
    let hosts: Vec<(String, Ipv4Addr)> = (0..hosts)
        .map(|i| (host_name(i), host_ip(j, i, hosts)))
        .collect();
    write_cluster(
        dir,
        &ClusterFiles {
            tag: &format!("_c{j}"),
            monitors: &monitors,
            port: port(j),
            metrics_port: metrics_port(j),
            hosts: &hosts,
            writer_vip: Ipv4Addr::new(127, 0, 2, (j + 1) as u8),
        },
    )
}

/// Result of one number of clusters.
struct RunResult {
    clusters: usize,
    hosts: usize,
    /// Time until every cluster had every host ONLINE (or how many clusters had by the deadline).
    settle: Duration,
    partial: Option<usize>,
    /// Per machine: CPU % of one core and RSS MiB, summed over its monitor processes.
    machines: Vec<(f64, f64)>,
    /// Check cycle of every cluster that answered.
    cycles: Samples,
    /// Endpoint refusing → HARD_OFFLINE decision.
    decision: Samples,
}

async fn measure(
    c: usize,
    hosts: usize,
    window: Duration,
    downs: usize,
) -> anyhow::Result<RunResult> {
    let dir = tempfile::tempdir()?;
    let mut standins = Vec::with_capacity(c * hosts);
    let mut monitors = Monitors::default();
    // pids[k][j]: machine k's process of cluster j.
    let mut pids: Vec<Vec<u32>> = vec![Vec::new(); MACHINES];
    for j in 0..c {
        for i in 0..hosts {
            standins.push(StandIn::start(SocketAddr::from((host_ip(j, i, hosts), 3306))).await?);
        }
        for (k, cfg) in write_configs(dir.path(), j, hosts)?.iter().enumerate() {
            let pid = monitors.spawn(cfg, &dir.path().join(format!("c{j}-mon{}.log", k + 1)))?;
            pids[k].push(pid);
        }
    }
    let started = Instant::now();
    let mut partial = None;
    let mut pending: Vec<usize> = (0..c).collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for &j in &pending {
            if online_hosts(machine_ip(1), port(j)).await < hosts {
                still.push(j);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if started.elapsed() > SETTLE {
            eprintln!(
                "  {c} clusters: {} not all ONLINE after {SETTLE:?}",
                pending.len()
            );
            partial = Some(c - pending.len());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settle = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let read_all = |pids: &Vec<Vec<u32>>| -> anyhow::Result<Vec<Vec<ProcSample>>> {
        pids.iter()
            .map(|m| m.iter().map(|p| sample(*p)).collect())
            .collect()
    };
    let checks = |j: usize| mysql_checks_done(machine_ip(1), metrics_port(j));
    // Each cluster's counter is read at a time of its own (reading 50 takes a while): the rate is
    // counted between its own two reads.
    let mut c0 = Vec::with_capacity(c);
    for j in 0..c {
        c0.push(checks(j).await.ok().map(|n| (n, Instant::now())));
    }
    let s0 = read_all(&pids)?;
    tokio::time::sleep(window).await;
    let s1 = read_all(&pids)?;
    let mut cycles = Samples::new();
    for (j, before) in c0.into_iter().enumerate() {
        if let (Some((a, ta)), Ok(b)) = (before, checks(j).await) {
            let elapsed = ta.elapsed().as_secs_f64();
            if b > a {
                let per_sec = (b - a) / elapsed;
                cycles.push(Duration::from_secs_f64(hosts as f64 / per_sec));
            }
        }
    }
    let machines = (0..MACHINES)
        .map(|k| {
            let cpu: f64 = s0[k]
                .iter()
                .zip(&s1[k])
                .map(|(a, b)| cpu_percent(a, b))
                .sum();
            let rss: f64 = s1[k].iter().map(|s| s.rss_bytes as f64).sum::<f64>() / 1048576.0;
            (cpu, rss)
        })
        .collect();
    // Decision latency: the last host (a replica) of a few clusters goes down.
    let mut decision = Samples::new();
    for j in (0..c).step_by((c / downs.max(1)).max(1)).take(downs) {
        let i = hosts - 1;
        let w0 = wall_ms();
        standins[j * hosts + i].refuse();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(at) = hard_offline_at(machine_ip(1), port(j), &host_name(i), w0).await {
                decision.push(Duration::from_millis((at - w0).max(0) as u64));
                break;
            }
            if Instant::now() > deadline {
                eprintln!("  cluster {j}: no HARD_OFFLINE decision within 30 s");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    drop(monitors);
    drop(standins);
    if std::env::var_os(KEEP_ENV).is_some() {
        eprintln!("  kept (configs, monitor logs): {}", dir.keep().display());
    }
    Ok(RunResult {
        clusters: c,
        hosts,
        settle,
        partial,
        machines,
        cycles,
        decision,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    mmm_bench::init_logging();
    let mut a = Args::parse();
    if a.quick {
        a.sample_secs = a.sample_secs.min(6);
        a.downs = a.downs.min(1);
        a.clusters.iter_mut().for_each(|c| *c = (*c).min(10));
    }
    println!("Machine: {}", mmm_bench::machine::describe());
    let mut results = Vec::new();
    for &c in &a.clusters {
        eprintln!(
            "clusters: {c} x {} hosts, {} s window",
            a.hosts, a.sample_secs
        );
        results.push(measure(c, a.hosts, Duration::from_secs(a.sample_secs), a.downs).await?);
    }
    println!(
        "\n### Many clusters on three monitor machines: one monitor process per cluster per machine, check_period 1 s, stand-in MySQL endpoints\n"
    );
    println!(
        "| clusters x hosts | monitor processes per machine | all ONLINE after start | CPU per machine (% of a core), busiest | RSS per machine, largest | RSS per process | check cycle p50 / max over clusters | decision latency (refusing → HARD_OFFLINE), p50 / max |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &results {
        let cpu = r.machines.iter().map(|m| m.0).fold(0.0, f64::max);
        let rss = r.machines.iter().map(|m| m.1).fold(0.0, f64::max);
        println!(
            "| {} x {} | {} | {} | {:.1} % | {:.0} MiB | {:.1} MiB | {} / {} | {} / {} |",
            r.clusters,
            r.hosts,
            r.clusters,
            match r.partial {
                None => format!("{:.1} s", r.settle.as_secs_f64()),
                Some(k) => format!(
                    "only {k} of {} clusters after {:.0} s",
                    r.clusters,
                    r.settle.as_secs_f64()
                ),
            },
            cpu,
            rss,
            rss / r.clusters.max(1) as f64,
            fmt_ms(r.cycles.percentile(0.5)),
            fmt_ms(r.cycles.max()),
            fmt_ms(r.decision.percentile(0.5)),
            fmt_ms(r.decision.max())
        );
    }
    Ok(())
}
