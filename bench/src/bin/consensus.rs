//! Raft benchmark: commit latency on 3 nodes, time from leader kill to the next commit, and log
//! growth and snapshot time over many decisions. One process, real gRPC on loopback, sled with
//! fsync. Prints a markdown table.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;
use mmm_consensus::{Command, ConsensusNode, HostState, LocalCluster, Request};

/// Benchmark options.
#[derive(Parser, Debug)]
#[command(about = "Raft commit latency, leader failover and log growth of mmm-consensus")]
struct Args {
    /// Sequential commits measured for latency.
    #[arg(long, default_value_t = 2000)]
    commits: usize,
    /// Leader kills measured.
    #[arg(long, default_value_t = 10)]
    kill_runs: usize,
    /// Decisions committed for the log growth measurement.
    #[arg(long, default_value_t = 100_000)]
    decisions: usize,
    /// Concurrent writers during the log growth measurement.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

const T: Duration = Duration::from_secs(10);
const HOSTS: usize = 8;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn register() -> Request {
    Request {
        time_ms: now_ms(),
        reason: "bench".into(),
        command: Command::Register {
            hosts: (0..HOSTS).map(|i| format!("db{i}")).collect(),
            role_ips: vec![],
            cluster_id: None,
        },
    }
}

/// A decision that changes something (so it lands in the bounded history).
fn decision(k: usize) -> Request {
    let state = if (k / HOSTS).is_multiple_of(2) {
        HostState::Online
    } else {
        HostState::HardOffline
    };
    Request {
        time_ms: now_ms(),
        reason: format!("bench decision {k}"),
        command: Command::SetHostState {
            host: format!("db{}", k % HOSTS),
            state,
        },
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn leader(c: &LocalCluster) -> anyhow::Result<Arc<ConsensusNode>> {
    let i = c.wait_leader(T).await?;
    Ok(c.node(i)?.clone())
}

async fn commit_latency(n: usize) -> anyhow::Result<Vec<Duration>> {
    let dir = tempfile::tempdir()?;
    let c = LocalCluster::start(3, dir.path(), |_| {}).await?;
    let lead = leader(&c).await?;
    lead.write(register()).await?;
    let mut lat = Vec::with_capacity(n);
    for k in 0..n {
        let t = Instant::now();
        lead.write(decision(k)).await?;
        lat.push(t.elapsed());
    }
    c.shutdown().await;
    lat.sort();
    Ok(lat)
}

async fn failover(runs: usize) -> anyhow::Result<Vec<Duration>> {
    let dir = tempfile::tempdir()?;
    let mut c = LocalCluster::start(3, dir.path(), |_| {}).await?;
    leader(&c).await?.write(register()).await?;
    let mut times = Vec::with_capacity(runs);
    for run in 0..runs {
        let old = c.wait_leader(T).await?;
        let survivor = (old + 1) % 3;
        let node = c.node(survivor)?.clone();
        let t = Instant::now();
        c.kill(old).await;
        let resp = node
            .write(decision(run))
            .await
            .context("write after leader kill")?;
        times.push(t.elapsed());
        c.restart(old).await?;
        c.wait_applied(resp.epoch.index, T).await?;
    }
    c.shutdown().await;
    times.sort();
    Ok(times)
}

/// Results of the log growth run.
struct Growth {
    /// Wall time of all decisions.
    elapsed: Duration,
    /// Largest number of log entries kept on the leader, sampled.
    max_log_len: usize,
    /// Entries kept at the end.
    final_log_len: usize,
    /// Leader's store size on disk at the end.
    disk_bytes: u64,
    /// Time to build one snapshot of the final state (triggered explicitly).
    snapshot_time: Duration,
    /// Last applied index.
    last_index: u64,
}

async fn growth(decisions: usize, concurrency: usize) -> anyhow::Result<Growth> {
    let dir = tempfile::tempdir()?;
    let c = LocalCluster::start(3, dir.path(), |_| {}).await?;
    let lead = leader(&c).await?;
    lead.write(register()).await?;
    let started = Instant::now();
    let per = decisions.div_ceil(concurrency.max(1));
    let mut tasks = Vec::new();
    for w in 0..concurrency.max(1) {
        let node = lead.clone();
        tasks.push(tokio::spawn(async move {
            let mut max_len = 0;
            for k in 0..per {
                let idx = w * per + k;
                if idx >= decisions {
                    break;
                }
                node.write(decision(idx)).await?;
                if k.is_multiple_of(100) {
                    max_len = max_len.max(node.log_len());
                }
            }
            anyhow::Ok(max_len)
        }));
    }
    let mut max_log_len = 0;
    for t in tasks {
        max_log_len = max_log_len.max(t.await??);
    }
    let elapsed = started.elapsed();
    let last_index = lead
        .metrics()
        .borrow()
        .last_applied
        .map(|l| l.index)
        .unwrap_or(0);

    let t = Instant::now();
    lead.raft().trigger().snapshot().await?;
    lead.raft()
        .wait(Some(T))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last_index),
            "snapshot of the final state",
        )
        .await?;
    let snapshot_time = t.elapsed();
    let g = Growth {
        elapsed,
        max_log_len,
        final_log_len: lead.log_len(),
        disk_bytes: lead.store_size_on_disk(),
        snapshot_time,
        last_index,
    };
    c.shutdown().await;
    Ok(g)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    mmm_bench::init_logging();
    let args = Args::parse();
    if args.commits == 0 {
        bail!("--commits must be > 0");
    }

    eprintln!("commit latency: {} sequential commits...", args.commits);
    let lat = commit_latency(args.commits).await?;
    eprintln!("leader kill -> next commit: {} runs...", args.kill_runs);
    let fo = failover(args.kill_runs).await?;
    eprintln!(
        "log growth: {} decisions, {} writers...",
        args.decisions, args.concurrency
    );
    let g = growth(args.decisions, args.concurrency).await?;

    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| commit latency p50 (3 nodes, {} commits, fsync) | {} |",
        lat.len(),
        ms(percentile(&lat, 0.50))
    );
    println!("| commit latency p99 | {} |", ms(percentile(&lat, 0.99)));
    println!(
        "| commit latency max | {} |",
        ms(lat.last().copied().unwrap_or_default())
    );
    if !fo.is_empty() {
        println!(
            "| leader kill -> next commit, median ({} runs) | {} |",
            fo.len(),
            ms(percentile(&fo, 0.5))
        );
        println!(
            "| leader kill -> next commit, min / max | {} / {} |",
            ms(fo[0]),
            ms(fo[fo.len() - 1])
        );
    }
    println!(
        "| {} decisions ({} writers): wall time / throughput | {:.1} s / {:.0} commits/s |",
        args.decisions,
        args.concurrency,
        g.elapsed.as_secs_f64(),
        args.decisions as f64 / g.elapsed.as_secs_f64()
    );
    println!("| last applied index | {} |", g.last_index);
    println!(
        "| log entries kept on the leader: max sampled / at end | {} / {} |",
        g.max_log_len, g.final_log_len
    );
    println!(
        "| leader store size on disk at end | {:.1} MiB |",
        g.disk_bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "| snapshot of the final state (build + fsync) | {} |",
        ms(g.snapshot_time)
    );
    Ok(())
}
