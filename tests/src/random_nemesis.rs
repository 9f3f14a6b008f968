//! A seeded random nemesis with overlapping faults, for the CI test (a few steps) and the soak benchmark
//! (many): every step applies a fault drawn from [`FAULTS`] against whatever host is the writer at that
//! moment, and undoes faults only when their time is up (after 1 to 3 more steps), so several are active
//! at once. Flapping detection stays on (`flap_count` as configured); a host the cluster keeps out as
//! flapping is put back by the operator's `set_online` when the faults heal.
//!
//! The run is a pure function of the seed: [`plan`] draws every choice up front, and the seed is printed
//! with the command that replays it.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::Context;
use rand::{Rng, SeedableRng};

use crate::nemesis::ClockSkew;
use crate::scenario::Scenario;

/// Environment variable that replays a run with a given seed.
pub const SEED_ENV: &str = "MMM_FAULT_SEED";

/// One fault; the host it hits is resolved when it is applied (the writer, its peer, a replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 of the writer's mysqld (started again when undone).
    KillWriterMysqld,
    /// kill -9 of the writer's agent while its mysqld runs.
    KillWriterAgent,
    /// SIGSTOP of the writer's agent.
    PauseWriterAgent,
    /// SIGSTOP of the monitor leader.
    PauseLeader,
    /// The writer and the client namespace `cli1` cut off from everyone else.
    PartitionWriterWithClients,
    /// The monitors' packets to the writer dropped (one way).
    DropMonitorsToWriter,
    /// The writer's packets to the monitors dropped (one way).
    DropWriterToMonitors,
    /// The writer's link down.
    WriterLinkDown,
    /// kill -9 of a replica's mysqld.
    KillReplicaMysqld,
    /// A session holding `LOCK TABLES ... WRITE` on the writer.
    LockOnWriter,
    /// The writer's agent restarted with its wall clock 3 s behind.
    SkewWriterAgentClock,
    /// A planned `move_role writer` to the peer.
    MoveWriter,
}

/// Every fault the random nemesis draws from.
pub const FAULTS: [Fault; 12] = [
    Fault::KillWriterMysqld,
    Fault::KillWriterAgent,
    Fault::PauseWriterAgent,
    Fault::PauseLeader,
    Fault::PartitionWriterWithClients,
    Fault::DropMonitorsToWriter,
    Fault::DropWriterToMonitors,
    Fault::WriterLinkDown,
    Fault::KillReplicaMysqld,
    Fault::LockOnWriter,
    Fault::SkewWriterAgentClock,
    Fault::MoveWriter,
];

/// One step of a run: the fault, how many later steps it lasts, and the pause before the next step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// What is done.
    pub fault: Fault,
    /// Undone after this many more steps (1..=3), or at the final heal.
    pub lasts: usize,
    /// Pause after applying it.
    pub pause: Duration,
    /// A coin for choices inside the fault (which replica).
    pub coin: bool,
}

/// The steps of a run with `seed`.
pub fn plan(seed: u64, steps: usize) -> Vec<Step> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..steps)
        .map(|_| Step {
            fault: FAULTS[rng.random_range(0..FAULTS.len())],
            lasts: rng.random_range(1..=3),
            pause: Duration::from_millis(rng.random_range(1_000..4_000)),
            coin: rng.random_bool(0.5),
        })
        .collect()
}

/// The seed to use: `MMM_FAULT_SEED` if set, else a random one.
pub fn seed_from_env() -> anyhow::Result<u64> {
    match std::env::var(SEED_ENV) {
        Ok(s) => s.trim().parse().context(SEED_ENV),
        Err(_) => Ok(rand::random()),
    }
}

/// How to undo an applied fault.
#[derive(Debug)]
enum Undo {
    StartMysqld(String),
    StartAgent(String),
    ResumeAgent(String),
    ResumeMonitor(String),
    Heal(Vec<String>, Vec<String>),
    UnblockOneWay(Vec<(String, String)>),
    LinkUp(String),
    Release(Box<crate::LockHolder>),
    Nothing,
}

/// What a run did, for the report.
#[derive(Debug, Default, Clone)]
pub struct RunLog {
    /// Faults applied, in order, with the host they hit.
    pub applied: Vec<String>,
}

/// Applies the plan to a loaded scenario (faults overlap; each is undone when its time is up). The
/// caller then calls [`Scenario::finish`], which heals what is left and judges the run.
pub async fn run(env: &mut Scenario<'_>, steps: &[Step]) -> anyhow::Result<RunLog> {
    let mut active: VecDeque<(usize, Undo)> = VecDeque::new();
    let mut log = RunLog::default();
    for (i, step) in steps.iter().enumerate() {
        // Undo what is due first.
        let mut keep = VecDeque::new();
        while let Some((left, undo)) = active.pop_front() {
            if left <= 1 {
                undo_fault(env, undo).await?;
            } else {
                keep.push_back((left - 1, undo));
            }
        }
        active = keep;
        let (what, undo) = apply(env, step)
            .await
            .with_context(|| format!("step {i}: {:?}", step.fault))?;
        eprintln!("random nemesis step {i}: {what}");
        log.applied.push(what);
        active.push_back((step.lasts, undo));
        tokio::time::sleep(step.pause).await;
    }
    // Faults still active are undone by the scenario's heal; locks are released here.
    for (_, undo) in active {
        if let Undo::Release(h) = undo {
            let _ = h.release().await;
        }
    }
    Ok(log)
}

async fn apply(env: &mut Scenario<'_>, step: &Step) -> anyhow::Result<(String, Undo)> {
    let lab = env.lab;
    let writer = env.writer().await.unwrap_or_else(|_| "db1".into());
    let peer = if writer == "db1" { "db2" } else { "db1" }.to_string();
    let monitors: Vec<String> = lab.monitors().iter().map(|m| m.name.clone()).collect();
    Ok(match step.fault {
        Fault::KillWriterMysqld if lab.mysqld_running(&writer) => {
            lab.kill_mysqld(&writer).await?;
            (
                format!("kill -9 mysqld of {writer}"),
                Undo::StartMysqld(writer),
            )
        }
        Fault::KillWriterAgent if env.cluster.agent_process(&writer).is_some() => {
            env.kill_agent(&writer)?;
            (
                format!("kill -9 agent of {writer}"),
                Undo::StartAgent(writer),
            )
        }
        Fault::PauseWriterAgent if env.cluster.agent_process(&writer).is_some() => {
            env.cluster.pause_agent(&writer)?;
            (
                format!("SIGSTOP agent of {writer}"),
                Undo::ResumeAgent(writer),
            )
        }
        Fault::PauseLeader => match env.leader().await {
            Ok(leader) if env.cluster.monitor_process(&leader).is_some() => {
                env.cluster.pause_monitor(&leader)?;
                (
                    format!("SIGSTOP monitor leader {leader}"),
                    Undo::ResumeMonitor(leader),
                )
            }
            _ => ("no leader to pause".into(), Undo::Nothing),
        },
        Fault::PartitionWriterWithClients => {
            let a = vec![writer.clone(), "cli1".to_string()];
            let b: Vec<String> = lab
                .hosts()
                .iter()
                .map(|h| h.name.clone())
                .filter(|h| *h != writer)
                .chain(monitors.iter().cloned())
                .chain(["cli2".to_string()])
                .collect();
            let (ar, br): (Vec<&str>, Vec<&str>) = (
                a.iter().map(String::as_str).collect(),
                b.iter().map(String::as_str).collect(),
            );
            lab.partition(&ar, &br).await?;
            (
                format!("partition {{{writer}, cli1}} from the rest"),
                Undo::Heal(a, b),
            )
        }
        Fault::DropMonitorsToWriter | Fault::DropWriterToMonitors => {
            let to_writer = step.fault == Fault::DropMonitorsToWriter;
            let mut pairs = Vec::new();
            for m in &monitors {
                let (from, to) = if to_writer {
                    (m.clone(), writer.clone())
                } else {
                    (writer.clone(), m.clone())
                };
                lab.block_one_way(&from, &to).await?;
                pairs.push((from, to));
            }
            let dir = if to_writer {
                "monitors -> writer"
            } else {
                "writer -> monitors"
            };
            (
                format!("one-way drops {dir} ({writer})"),
                Undo::UnblockOneWay(pairs),
            )
        }
        Fault::WriterLinkDown => {
            env.link_down(&writer).await?;
            (format!("link down {writer}"), Undo::LinkUp(writer))
        }
        Fault::KillReplicaMysqld => {
            let r = if step.coin { "db3" } else { "db4" }.to_string();
            if lab.mysqld_running(&r) {
                lab.kill_mysqld(&r).await?;
                (format!("kill -9 mysqld of {r}"), Undo::StartMysqld(r))
            } else {
                (format!("{r} already down"), Undo::Nothing)
            }
        }
        Fault::LockOnWriter => match lab.hold_table_lock(&writer).await {
            Ok(h) => (
                format!("LOCK TABLES WRITE held on {writer}"),
                Undo::Release(Box::new(h)),
            ),
            Err(e) => (format!("lock on {writer} not taken: {e:#}"), Undo::Nothing),
        },
        Fault::SkewWriterAgentClock if env.cluster.agent_process(&writer).is_some() => {
            env.cluster.kill_agent(&writer)?;
            env.cluster
                .start_agent_with_clock(&writer, ClockSkew::behind(3))?;
            (
                format!("agent of {writer} restarted with its clock 3 s behind"),
                Undo::Nothing,
            )
        }
        Fault::MoveWriter => {
            let out = env.cluster.mmmctl(&["move_role", "writer", &peer])?;
            (
                format!(
                    "move_role writer {peer}: {}",
                    String::from_utf8_lossy(&out.stdout).trim()
                ),
                Undo::Nothing,
            )
        }
        other => (
            format!("{other:?} skipped (target not running)"),
            Undo::Nothing,
        ),
    })
}

async fn undo_fault(env: &mut Scenario<'_>, undo: Undo) -> anyhow::Result<()> {
    let lab = env.lab;
    match undo {
        Undo::StartMysqld(h) => {
            if !lab.mysqld_running(&h) {
                lab.start_mysqld(&h).await?;
            }
        }
        Undo::StartAgent(h) => {
            if env.cluster.agent_process(&h).is_none() {
                env.start_agent(&h)?;
            }
        }
        Undo::ResumeAgent(h) => {
            let _ = env.cluster.resume_agent(&h);
        }
        Undo::ResumeMonitor(m) => {
            let _ = env.cluster.resume_monitor(&m);
        }
        Undo::Heal(a, b) => {
            let (ar, br): (Vec<&str>, Vec<&str>) = (
                a.iter().map(String::as_str).collect(),
                b.iter().map(String::as_str).collect(),
            );
            lab.heal_partition(&ar, &br).await?;
        }
        Undo::UnblockOneWay(pairs) => {
            for (from, to) in pairs {
                lab.unblock_one_way(&from, &to).await?;
            }
        }
        Undo::LinkUp(h) => env.link_up(&h).await?,
        Undo::Release(h) => {
            let _ = h.release().await;
        }
        Undo::Nothing => {}
    }
    eprintln!("random nemesis: undone");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_plan() {
        assert_eq!(plan(42, 20), plan(42, 20));
        assert_ne!(plan(42, 20), plan(43, 20));
        assert!(plan(7, 50).iter().all(|s| (1..=3).contains(&s.lasts)));
    }
}
