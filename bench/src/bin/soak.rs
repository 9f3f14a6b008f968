//! The long soak: many runs of the seeded random nemesis with overlapping faults
//! (`mmm_lab::random_nemesis`), each on a fresh lab, each judged by the oracle. Prints a markdown table:
//! per run the seed, faults injected, writer changes, split brains, lost writes, longest write outage
//! through the writer VIP, and the verdict; then the totals. A run with any finding counts as failed.
//!
//!   target/release/soak [--runs N] [--steps M] [--seed S]

use std::time::Duration;

use clap::Parser;
use mmm_lab::oracle::Finding;
use mmm_lab::random_nemesis::{plan, run};
use mmm_lab::scenario::{Expect, Scenario};
use mmm_lab::{Lab, LabSpec};

/// Command line of the soak.
#[derive(Debug, Parser)]
struct Args {
    /// Runs, each on a fresh lab.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Faults per run.
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Seed of the first run (the others follow it); random when absent.
    #[arg(long)]
    seed: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mmm_bench::init_logging();
    let args = Args::parse();
    let first = args.seed.unwrap_or_else(rand_seed);
    println!("| run | seed | faults | writer changes | split brains | lost writes | other findings | longest outage | verdict |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let (mut failed, mut faults, mut changes, mut splits, mut lost) = (0, 0, 0, 0, 0);
    let mut longest = Duration::ZERO;
    for r in 0..args.runs {
        let seed = first.wrapping_add(r as u64);
        let row = one(seed, args.steps).await;
        match row {
            Ok((n, j)) => {
                let split = j
                    .report
                    .findings()
                    .iter()
                    .filter(|f| {
                        matches!(
                            f,
                            Finding::SplitBrainByAcks { .. }
                                | Finding::CasDuplicate { .. }
                                | Finding::TwoWritable(_)
                                | Finding::WriteOnReadOnly { .. }
                        )
                    })
                    .count();
                let l = j.report.lost().len();
                let other = j.problems.len().saturating_sub(split + l);
                let ok = j.problems.is_empty();
                faults += n;
                changes += j.writer_changes;
                splits += split;
                lost += l;
                longest = longest.max(j.outage);
                if !ok {
                    failed += 1;
                    for p in &j.problems {
                        eprintln!("run {r} (seed {seed}): {p}");
                    }
                }
                println!(
                    "| {r} | {seed} | {n} | {} | {split} | {l} | {other} | {} ms | {} |",
                    j.writer_changes,
                    j.outage.as_millis(),
                    if ok { "ok" } else { "FAILED" }
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("run {r} (seed {seed}) could not be judged: {e:#}");
                println!("| {r} | {seed} | - | - | - | - | - | - | ERROR |");
            }
        }
    }
    println!(
        "| **all** | {first}.. | {faults} | {changes} | {splits} | {lost} | | {} ms | {} of {} failed |",
        longest.as_millis(),
        failed,
        args.runs
    );
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

async fn one(seed: u64, steps: usize) -> anyhow::Result<(usize, mmm_lab::scenario::Judged)> {
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut env = Scenario::start(&lab, "auto_set_online 2").await?;
    env.operator_set_online = true;
    env.load().await?;
    let plan = plan(seed, steps);
    run(&mut env, &plan).await?;
    env.finish_judged(
        &format!("soak seed {seed}"),
        Expect::outage(Duration::from_secs(120))
            .with_repairs()
            .with_reads_of_undone_writes(),
    )
    .await
    .map(|j| (plan.len(), j))
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}
