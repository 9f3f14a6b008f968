//! The README's migration from a running MMM 2.2.1 cluster, checked: the lab starts in the state MMM
//! leaves (every host ONLINE and replicating, db1 the writer with read_only=0, its writer VIP added by
//! hand as MMM's agent adds it, `ip addr add VIP/32`), MMM's daemons are gone, and the same config files
//! are used. A client writes through the writer VIP throughout. The guide's steps: `mmm-agent
//! --keep-writer` on db1, then every agent, then the monitors; mmm-rs must adopt db1 as the writer
//! without moving the VIP and without one write failing. A negative control skips `--keep-writer`: the
//! agent's first start fences the running writer, and the same checks see failed writes.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mmm_lab::cluster::MmmCluster;
use mmm_lab::workload::{History, Workload, WorkloadSpec};
use mmm_lab::{workspace_bin, Lab, LabSpec};

const SETTLE: Duration = Duration::from_secs(40);
/// The lease `--keep-writer` keeps: ample for starting the agents and monitors and their adoption of
/// db1 (a few seconds in the lab), short as the guide recommends.
const KEPT_LEASE_SECS: &str = "60";
/// How long the client keeps writing once mmm-rs has adopted the writer (lease renewals and
/// re-assertions run during it).
const AFTER_ADOPTION: Duration = Duration::from_secs(3);

/// `ip -n NS addr add VIP/32 dev IFACE`, as MMM's agent adds a role IP.
fn add_vip_by_hand(lab: &Lab, host: &str) -> anyhow::Result<()> {
    let h = lab.host(host);
    let out = Command::new("ip")
        .args(["-n", &h.ns, "addr", "add"])
        .arg(format!("{}/32", lab.writer_vip()))
        .args(["dev", &h.iface])
        .output()
        .context("running ip addr add")?;
    if !out.status.success() {
        bail!(
            "ip addr add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// True when the host's interface holds the writer VIP.
fn holds_vip(lab: &Lab, host: &str) -> anyhow::Result<bool> {
    let h = lab.host(host);
    let out = Command::new("ip")
        .args(["-n", &h.ns, "-4", "-o", "addr", "show", "dev", &h.iface])
        .output()
        .context("running ip addr show")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.contains(&format!(" {}/32", lab.writer_vip())))
}

/// Runs the MMM-to-mmm-rs start on a lab in MMM's state: with `keep_writer`, the guide's step first.
/// Returns the client's history and whether the agent of db1 ever removed the writer VIP.
async fn migrate(keep_writer: bool) -> anyhow::Result<(History, bool)> {
    let lab = Lab::start(LabSpec::cluster()).await?;
    // MMM's state: db1 writable (the lab's default), the others read-only replicas, the VIP on db1.
    add_vip_by_hand(&lab, "db1")?;
    let load = Workload::start(
        &lab,
        WorkloadSpec {
            target: lab.writer_vip(),
            readers: Vec::new(),
            interval: Duration::from_millis(5),
            op_timeout: Duration::from_millis(500),
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if load.acked() == 0 {
        bail!("no write through the hand-made VIP before the migration");
    }

    // The same (MMM-style) config files for mmm-rs.
    let mut cluster = MmmCluster::configure(&lab, "", false)?;
    if keep_writer {
        let config = cluster.configs.agent("db1")?.to_string_lossy().into_owned();
        let mut step = lab.spawn_in(
            "db1",
            &workspace_bin("mmm-agent"),
            &["--config", &config, "--keep-writer", KEPT_LEASE_SECS],
            "keep-writer-db1",
        )?;
        let status = step.wait_exit(Duration::from_secs(15)).await?;
        let log = std::fs::read_to_string(step.log_path()).unwrap_or_default();
        if !status.success() {
            bail!("mmm-agent --keep-writer failed ({status}): {log}");
        }
        eprintln!("--keep-writer: {}", log.trim());
    }
    let started = Instant::now();
    for h in lab.hosts() {
        cluster.start_agent(&h.name)?;
    }
    for m in lab.monitors() {
        cluster.start_monitor(&m.name)?;
    }
    let adopted = cluster.wait_all_online("db1", SETTLE).await;
    let adopted_after = started.elapsed();
    tokio::time::sleep(AFTER_ADOPTION).await;
    let history = load.stop().await;
    adopted?;
    eprintln!(
        "mmm-rs adopted db1 {adopted_after:?} after the agents started; {} writes acknowledged, {} failed, \
         longest outage {:?}",
        history.acks.len(),
        history.errors.len(),
        history.longest_outage()
    );
    let log_path = cluster
        .agent_process("db1")
        .context("db1's agent")?
        .log_path()
        .to_path_buf();
    let agent_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let vip_removed = agent_log
        .lines()
        .any(|l| l.contains("VIP removed") && l.contains(&lab.writer_vip().to_string()));
    let vip_removed = vip_removed || !holds_vip(&lab, "db1")?;
    Ok((history, vip_removed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mmm_rs_adopts_mmms_running_writer_without_a_failed_write() -> anyhow::Result<()> {
    mmm_lab::init_logging();
    let (history, vip_removed) = migrate(true).await?;
    assert!(!vip_removed, "the writer VIP stayed on db1 throughout");
    assert!(
        history.errors.is_empty(),
        "no write failed during the migration: {:?}",
        history.errors.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(history.writers().len(), 1, "one server took every write");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_keep_writer_the_first_agent_start_fences_the_running_writer() -> anyhow::Result<()>
{
    mmm_lab::init_logging();
    let (history, vip_removed) = migrate(false).await?;
    assert!(
        !history.errors.is_empty() || vip_removed,
        "the checks see the interruption the guide's step avoids: errors {}, VIP removed {vip_removed}",
        history.errors.len()
    );
    Ok(())
}
