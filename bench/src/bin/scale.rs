//! Scale benchmark: one monitor cluster (3 real `mmm-monitor` processes on loopback) watching 10, 100
//! and 1,000 hosts at a 1 s check period. The hosts are stand-in MySQL endpoints ([`StandIn`]) on
//! 127.10.x.y; no agents run (the checks, the quorum on observations and the decisions are what scale).
//!
//! Per size: CPU (percent of one core) and resident memory of the leader and of a follower over a
//! sampling window, the check-cycle time (the mean time between two `mysql` checks of one host, from the
//! leader's `/metrics`) and the decision latency (a host's endpoint starts refusing connections → its
//! HARD_OFFLINE decision). Run it in a network namespace of its own (`bench/run.sh` does), since it binds
//! 127.0.1.1-3:9988/9990 and port 3306 on many loopback addresses. `MMM_BENCH_KEEP=1` keeps the
//! monitors' logs; `MMM_BENCH_MONITOR_LOG` sets their log filter (default `warn`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use mmm_bench::monitors::{
    control, hard_offline_at, mysql_checks_done, online_hosts, write_cluster, ClusterFiles,
    Monitors,
};
use mmm_bench::procstat::{cpu_percent, sample};
use mmm_bench::standin::StandIn;
use mmm_bench::stats::{fmt_ms, Samples};
use mmm_proto::{ClusterStatusRequest, PROTOCOL_VERSION};

/// Benchmark options.
#[derive(Parser, Debug)]
#[command(
    about = "CPU, memory, check-cycle time and decision latency of a monitor cluster by number of hosts"
)]
struct Args {
    /// Numbers of hosts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    hosts: Vec<usize>,
    /// CPU and check-cycle sampling window, seconds.
    #[arg(long, default_value_t = 20)]
    sample_secs: u64,
    /// Hosts taken down per size for the decision latency.
    #[arg(long, default_value_t = 3)]
    downs: usize,
    /// Shorter windows (a smoke run).
    #[arg(long)]
    quick: bool,
}

/// Monitor gRPC port.
const PORT: u16 = 9988;
/// Monitor metrics port.
const METRICS_PORT: u16 = 9990;
/// Environment variable that keeps each size's directory (configs, data, monitor logs).
const KEEP_ENV: &str = "MMM_BENCH_KEEP";
/// How long the cluster may take to judge every host ONLINE.
const SETTLE: Duration = Duration::from_secs(45);

fn monitor_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, k as u8)
}

fn host_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 10, (i / 200) as u8, (i % 200 + 1) as u8)
}

fn host_name(i: usize) -> String {
    format!("h{:04}", i + 1)
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Writes the configuration of one cluster of `n` hosts; returns the monitors' files.
fn write_configs(dir: &Path, n: usize) -> anyhow::Result<Vec<PathBuf>> {
    let monitors: Vec<Ipv4Addr> = (1..=3).map(monitor_ip).collect();
    let hosts: Vec<(String, Ipv4Addr)> = (0..n).map(|i| (host_name(i), host_ip(i))).collect();
    write_cluster(
        dir,
        &ClusterFiles {
            tag: "",
            monitors: &monitors,
            port: PORT,
            metrics_port: METRICS_PORT,
            hosts: &hosts,
            writer_vip: Ipv4Addr::new(127, 0, 2, 50),
        },
    )
}

/// Result of one size.
struct SizeResult {
    /// Number of hosts.
    hosts: usize,
    /// Time until every host was ONLINE after the monitors started.
    settle: Duration,
    /// Hosts ONLINE when the settle time ran out (None: all were ONLINE in time).
    partial: Option<usize>,
    /// CPU % of one core: leader, follower.
    cpu: (f64, f64),
    /// RSS MiB at the end of the window: leader, follower.
    rss_mib: (f64, f64),
    /// Mean time between two mysql checks of one host on the leader.
    cycle: Option<Duration>,
    /// Endpoint refusing → HARD_OFFLINE decision.
    decision: Samples,
}

async fn measure(n: usize, window: Duration, downs: usize) -> anyhow::Result<SizeResult> {
    let dir = tempfile::tempdir()?;
    let configs = write_configs(dir.path(), n)?;
    let mut standins = Vec::with_capacity(n);
    for i in 0..n {
        standins.push(StandIn::start(SocketAddr::from((host_ip(i), 3306))).await?);
    }
    let mut monitors = Monitors::default();
    for (k, cfg) in configs.iter().enumerate() {
        monitors.spawn(cfg, &dir.path().join(format!("mon{}.log", k + 1)))?;
    }
    let started = Instant::now();
    let mut online_at_settle = None;
    // Every host ONLINE.
    loop {
        let online = online_hosts(monitor_ip(1), PORT).await;
        if online == n {
            break;
        }
        if started.elapsed() > SETTLE {
            // Measured all the same: the table shows the cluster did not keep up.
            eprintln!("  {n} hosts: only {online} ONLINE after {SETTLE:?}");
            online_at_settle = Some(online);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let settle = started.elapsed();
    // The leader (retried: an overloaded cluster may be between leaders).
    let mut leader = 0usize;
    for _ in 0..50 {
        if let Ok(mut c) = control(monitor_ip(1), PORT).await {
            if let Ok(r) = c
                .cluster_status(ClusterStatusRequest {
                    protocol_version: PROTOCOL_VERSION,
                    local: false,
                })
                .await
            {
                leader = r
                    .into_inner()
                    .leader_name
                    .trim_start_matches("mon")
                    .parse()
                    .unwrap_or(0);
            }
        }
        if (1..=3).contains(&leader) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !(1..=3).contains(&leader) {
        eprintln!("  {n} hosts: no leader known; measuring mon1 as the leader");
        leader = 1;
    }
    let follower = if leader == 1 { 2 } else { 1 };
    let (lpid, fpid) = (monitors.0[leader - 1].id(), monitors.0[follower - 1].id());
    // Let the start-up settle before sampling.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (l0, f0, c0) = (
        sample(lpid)?,
        sample(fpid)?,
        mysql_checks_done(monitor_ip(leader), METRICS_PORT)
            .await
            .ok(),
    );
    tokio::time::sleep(window).await;
    let (l1, f1, c1) = (
        sample(lpid)?,
        sample(fpid)?,
        mysql_checks_done(monitor_ip(leader), METRICS_PORT)
            .await
            .ok(),
    );
    let cycle = match (c0, c1) {
        (Some(a), Some(b)) if b > a => {
            let per_sec = (b - a) / l1.at.saturating_duration_since(l0.at).as_secs_f64();
            Some(Duration::from_secs_f64(n as f64 / per_sec))
        }
        _ => None,
    };
    // Decision latency: the last hosts (replicas) go down one after another.
    let mut decision = Samples::new();
    for d in 0..downs.min(n.saturating_sub(2)) {
        let i = n - 1 - d;
        let name = host_name(i);
        let w0 = wall_ms();
        standins[i].refuse();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = hard_offline_at(monitor_ip(leader), PORT, &name, w0).await;
            if let Some(at) = found {
                decision.push(Duration::from_millis((at - w0).max(0) as u64));
                break;
            }
            if Instant::now() > deadline {
                eprintln!("  {name}: no HARD_OFFLINE decision within 30 s");
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
    Ok(SizeResult {
        hosts: n,
        settle,
        partial: online_at_settle,
        cpu: (cpu_percent(&l0, &l1), cpu_percent(&f0, &f1)),
        rss_mib: (
            l1.rss_bytes as f64 / 1048576.0,
            f1.rss_bytes as f64 / 1048576.0,
        ),
        cycle,
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
    }
    println!("Machine: {}", mmm_bench::machine::describe());
    let mut results = Vec::new();
    for &n in &a.hosts {
        eprintln!("scale: {n} hosts, {} s window", a.sample_secs);
        results.push(measure(n, Duration::from_secs(a.sample_secs), a.downs).await?);
    }
    println!("\n### Scale: 3 monitors, check_period 1 s, stand-in MySQL endpoints\n");
    println!(
        "| hosts | all ONLINE after start | leader CPU (% of a core) | follower CPU | leader RSS | follower RSS | check cycle (mean time between two mysql checks of a host) | decision latency (refusing → HARD_OFFLINE), p50 / max |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &results {
        println!(
            "| {} | {} | {:.1} % | {:.1} % | {:.0} MiB | {:.0} MiB | {} | {} / {} |",
            r.hosts,
            match r.partial {
                None => format!("{:.1} s", r.settle.as_secs_f64()),
                Some(k) => format!(
                    "only {k} of {} after {:.0} s",
                    r.hosts,
                    r.settle.as_secs_f64()
                ),
            },
            r.cpu.0,
            r.cpu.1,
            r.rss_mib.0,
            r.rss_mib.1,
            fmt_ms(r.cycle),
            fmt_ms(r.decision.percentile(0.5)),
            fmt_ms(r.decision.max())
        );
    }
    Ok(())
}
