//! The seeded random nemesis with overlapping faults (`mmm_lab::random_nemesis`), judged by the oracle: a
//! short run in CI; the long soak is `bench/src/bin/soak.rs`. The seed is printed with the command that
//! replays it (`MMM_FAULT_SEED=<seed>`); `MMM_FAULT_STEPS` sets the number of faults (default 5).

use std::time::Duration;

use anyhow::Context;
use mmm_lab::random_nemesis::{plan, run, seed_from_env, SEED_ENV};
use mmm_lab::scenario::{Expect, Scenario};
use mmm_lab::{Lab, LabSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_nemesis_with_overlapping_faults() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let seed = seed_from_env()?;
    let steps: usize = std::env::var("MMM_FAULT_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let replay = format!(
        "{SEED_ENV}={seed} MMM_FAULT_STEPS={steps} cargo test -p mmm-lab --test random_nemesis -- --nocapture"
    );
    eprintln!("random nemesis: seed {seed}, {steps} steps; replay with: {replay}");
    let steps = plan(seed, steps);
    eprintln!("plan: {steps:?}");
    let lab = Lab::start(LabSpec::cluster()).await?;
    // Flapping detection stays on (MMM's flap_count 3 within flap_duration).
    let mut env = Scenario::start(&lab, "auto_set_online 2").await?;
    env.operator_set_online = true;
    env.load().await?;
    let name = format!("random nemesis, seed {seed}");
    if let Err(e) = run(&mut env, &steps).await {
        mmm_lab::scenario::save_logs(&lab, &name);
        return Err(e.context(format!("replay with: {replay}")));
    }
    env.finish(
        &name,
        Expect::outage(Duration::from_secs(120))
            .with_repairs()
            .with_reads_of_undone_writes(),
    )
    .await
    .with_context(|| format!("replay with: {replay}"))?;
    Ok(())
}
