//! Failover benchmarks on the lab (real MariaDB servers, agents and 3 monitors in network namespaces):
//!
//! 1. unplanned failover: kill -9 of the writer's mysqld, and the writer host's link going down, under a
//!    steady write load through the writer VIP; detection (fault → HARD_OFFLINE decision), action (writer
//!    role decision → first write acknowledged by the new writer) and the client's write outage;
//! 2. planned switchover (`move_role writer`): the client's write outage and the monitor's own figure;
//! 3. monitor leader loss: leader kill → a new leader has committed, and the client's write outage meanwhile.
//!
//! Each scenario reuses one lab: after a failover the dead host is brought back and the cluster waits
//! until every host is ONLINE again, then the current writer is the next victim. Every series runs with the
//! default settings and with the fastest settings considered safe. Prints markdown tables.
//!
//! The split-brain oracle (`mmm_lab::oracle`: probes on each master, a writer through the writer VIP,
//! readers, and samples of every server's `read_only` and VIPs) runs beside the measuring client and
//! judges every failover run (every series of switchovers and leader kills); a run with a finding counts
//! as failed, and the verdict is printed with each series' outage row.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;
use mmm_bench::stats::{between_ms, header, Samples};
use mmm_lab::cluster::{owner_of_role, MmmCluster};
use mmm_lab::oracle::{Oracle, OracleSpec};
use mmm_lab::workload::{History, Workload, WorkloadSpec};
use mmm_lab::{Lab, LabSpec};
use mmm_proto::{HistoryRequest, HostRequest, HostState, MoveRoleRequest, PROTOCOL_VERSION};

/// Benchmark options.
#[derive(Parser, Debug)]
#[command(about = "Failover, switchover and monitor-leader-loss timings on the lab")]
struct Args {
    /// Fewer runs of everything (a smoke run).
    #[arg(long)]
    quick: bool,
    /// mysqld kills per settings profile.
    #[arg(long, default_value_t = 20)]
    kill_runs: usize,
    /// Link-down runs per settings profile.
    #[arg(long, default_value_t = 20)]
    link_runs: usize,
    /// Planned switchovers (default settings).
    #[arg(long, default_value_t = 20)]
    switch_runs: usize,
    /// Monitor leader kills (default settings).
    #[arg(long, default_value_t = 5)]
    leader_runs: usize,
    /// Pause of the measuring client between two writes, in ms; 0 writes as fast as it can (each write
    /// waits for its semi-sync acknowledgement, so that is one write at a time, back to back).
    #[arg(long, default_value_t = 5)]
    client_interval_ms: u64,
    /// Run only these scenarios (default: all of them, in this order).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Settings profiles of the kill and link-down scenarios (default: both).
    #[arg(long, value_enum, value_delimiter = ',')]
    profiles: Vec<ProfileName>,
}

/// The settings profiles, by name.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ProfileName {
    /// [`DEFAULTS`].
    Defaults,
    /// [`FAST`].
    Fast,
}

/// The scenarios of this benchmark.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// kill -9 of the writer's mysqld.
    Kill,
    /// The writer host's link goes down.
    Link,
    /// Planned switchover (`move_role writer`).
    Switchover,
    /// kill -9 of the monitor leader.
    Leader,
}

/// A fault comes at a random moment within this long after the load starts: longer than a check period
/// (1 s) and a renewal interval (667 ms) of the default settings.
const FAULT_PHASE_SPREAD: Duration = Duration::from_millis(1_000);
/// Set (to anything), every failover and switchover run prints its outage and the timeline of its
/// writer move (a switchover slower than 150 ms prints it anyway).
const TIMING_ENV: &str = "MMM_BENCH_TIMING";
/// How long the cluster may take to settle (every host ONLINE) at start and after a fault.
const SETTLE: Duration = Duration::from_secs(60);
/// How long a host may take to return to ONLINE after a run.
const RECOVER: Duration = Duration::from_secs(30);
/// How long a failover may take before the run counts as failed.
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);

/// Monitor keys of a settings profile.
#[derive(Debug, Clone, Copy)]
struct Profile {
    /// Name shown in the tables.
    name: &'static str,
    /// Lines for `<monitor>`; may close it to add `<check default>` (sections can be reopened).
    keys: &'static str,
}

const DEFAULTS: Profile = Profile {
    name: "defaults (check_period 1, trap_period 2, timeout 1, writer_lease 2)",
    keys: "auto_set_online 1",
};

/// Faster checks and a shorter writer lease: after a lost link the outage is the longer of detection
/// (about 1.2 s here) and the lease plus the fence (0.7 s lease: the old writer certainly writes no
/// more 1.51 s after the last stamp the leader received), so both are shortened together.
const FAST: Profile = Profile {
    name: "fast (check_period 0.5, trap_period 1, timeout 0.5, writer_lease 0.7)",
    keys: "auto_set_online 1\nwriter_lease 0.7\n</monitor>\n<check default>\ncheck_period 0.5\n\
           trap_period 1\ntimeout 0.5\n</check>\n<monitor>",
};

/// The fault injected into the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// kill -9 of mysqld.
    KillMysqld,
    /// The host's link goes down.
    LinkDown,
}

impl Fault {
    /// How the tables name it.
    fn describe(self) -> &'static str {
        match self {
            Fault::KillMysqld => "kill -9 of the writer's mysqld",
            Fault::LinkDown => "the writer host's link goes down",
        }
    }
}

/// Results of one series of failovers.
#[derive(Default)]
struct Series {
    /// Fault → HARD_OFFLINE decision of the old writer.
    detection: Samples,
    /// Writer role decision → first write acknowledged by the new writer.
    action: Samples,
    /// Fault → first write acknowledged by the new writer.
    to_first_write: Samples,
    /// Last acknowledged write before the fault → first after.
    outage: Samples,
    /// Split-brain findings of the checking client, summed over the runs.
    split_brain: usize,
    /// Runs that failed, with the reason.
    failures: Vec<String>,
    /// Times the old writer did not return to ONLINE after a run (a fresh lab was started).
    returns_failed: usize,
    /// The split-brain oracle's verdicts on the runs.
    oracle: OracleTally,
}

/// The split-brain oracle's verdicts over a series: every run is judged (two writable servers, writes
/// acknowledged by two servers, lost or duplicated writes), and a run with a finding counts as failed.
#[derive(Default)]
struct OracleTally {
    /// Oracle sessions judged (one per failover run; one per series of switchovers or leader kills).
    judged: usize,
    /// Sessions the oracle could not judge (the cluster did not return to all ONLINE to converge).
    unjudged: usize,
    /// Sessions with a finding, and the first finding of each.
    findings: Vec<String>,
}

impl OracleTally {
    /// The verdict column of a table row.
    fn verdict(&self) -> String {
        let mut v = format!(
            "oracle: {} of {} judged clean",
            self.judged - self.findings.len(),
            self.judged
        );
        if self.unjudged > 0 {
            v += &format!(", {} not judged", self.unjudged);
        }
        v
    }

    /// Stops `oracle` once the cluster is back (every host ONLINE) and records its verdict.
    async fn judge(&mut self, lab: &Lab, cluster: &MmmCluster<'_>, oracle: Oracle, run: &str) {
        let writer = match wait_recovered(cluster).await {
            Ok(w) => w,
            Err(e) => {
                self.unjudged += 1;
                eprintln!("  {run}: not judged by the oracle: {e:#}");
                return;
            }
        };
        let others: Vec<String> = lab
            .hosts()
            .iter()
            .map(|h| h.name.clone())
            .filter(|h| *h != writer)
            .collect();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        match oracle.stop(lab, &writer, &others).await {
            Ok(report) => {
                self.judged += 1;
                if let Some(f) = report.findings().first() {
                    eprintln!("  {run}: {}", report.summary(run));
                    self.findings.push(format!(
                        "{run}: {} finding(s), first: {f}",
                        report.findings().len()
                    ));
                }
            }
            Err(e) => {
                self.unjudged += 1;
                eprintln!("  {run}: the oracle could not judge: {e:#}");
            }
        }
    }
}

/// Starts the split-brain oracle's clients (probes on each master, a writer through the writer VIP,
/// readers) beside the measuring client, and waits until they write.
async fn start_oracle(lab: &Lab) -> anyhow::Result<Oracle> {
    let oracle = Oracle::start(lab, OracleSpec::default()).await?;
    oracle.wait_acks(50, Duration::from_secs(20)).await?;
    Ok(oracle)
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The measuring client's pause between writes (`--client-interval-ms`), set once by `main`.
static CLIENT_INTERVAL: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// The measuring client's pause between writes.
fn client_interval() -> Duration {
    *CLIENT_INTERVAL.get_or_init(|| Duration::from_millis(5))
}

fn workload_spec(lab: &Lab) -> WorkloadSpec {
    WorkloadSpec {
        target: lab.writer_vip(),
        readers: vec![],
        interval: client_interval(),
        op_timeout: Duration::from_millis(250),
    }
}

/// Starts the workload and waits until writes flow.
async fn start_load(lab: &Lab) -> anyhow::Result<Workload> {
    let load = Workload::start(lab, workload_spec(lab)).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while load.acked() < 20 {
        if Instant::now() > deadline {
            bail!("the workload acknowledged no write within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(load)
}

/// Waits until a write acknowledged by `server_id` after `after` appears; returns its ack time.
async fn wait_ack_from(
    load: &Workload,
    server_id: u32,
    after: Instant,
    limit: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        let first = load
            .history()
            .acks
            .iter()
            .filter(|a| a.server_id == server_id && a.acked > after)
            .map(|a| a.acked)
            .min();
        if let Some(t) = first {
            return Ok(t);
        }
        if Instant::now() > deadline {
            bail!("no write acknowledged by server {server_id} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The longest time without an acknowledged write overlapping `[from, to]`.
fn outage_in(h: &History, from: Instant, to: Instant) -> Duration {
    let mut acks: Vec<Instant> = h.acks.iter().map(|a| a.acked).collect();
    acks.sort();
    let before = acks.iter().rev().find(|t| **t <= from).copied();
    let mut prev = before.unwrap_or(h.started);
    let mut longest = Duration::ZERO;
    for t in acks.into_iter().filter(|t| *t > from) {
        longest = longest.max(t.saturating_duration_since(prev));
        prev = t;
        if t > to {
            break;
        }
    }
    longest
}

/// The decisions of the cluster (at most the last 1000).
async fn decisions(cluster: &MmmCluster<'_>) -> anyhow::Result<Vec<mmm_proto::DecisionView>> {
    let mut c = cluster.control().await?;
    Ok(c.history(HistoryRequest {
        protocol_version: PROTOCOL_VERSION,
        limit: 1000,
    })
    .await?
    .into_inner()
    .decisions)
}

/// Waits for the first decision at or after `since` matching `pred`; returns its time (Unix ms).
async fn wait_decision(
    cluster: &MmmCluster<'_>,
    since: i64,
    what: &str,
    pred: impl Fn(&mmm_proto::DecisionView) -> bool,
) -> anyhow::Result<i64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(ds) = decisions(cluster).await {
            if let Some(d) = ds.iter().find(|d| d.time_millis >= since && pred(d)) {
                return Ok(d.time_millis);
            }
        }
        if Instant::now() > deadline {
            bail!("no decision '{what}' found in the history");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every host is ONLINE and a writer is placed, setting ONLINE by hand a host that waits in
/// AWAITING_RECOVERY for more than a few seconds. Returns the writer; fails at once when a host holds
/// errant transactions (only a repair brings it back).
async fn wait_recovered(cluster: &MmmCluster<'_>) -> anyhow::Result<String> {
    let start = Instant::now();
    let mut last_nudge = Instant::now();
    loop {
        if let Ok(s) = cluster.show().await {
            let all_online = s.hosts.len() == cluster.lab.hosts().len()
                && s.hosts.iter().all(|h| h.state == HostState::Online as i32);
            if let (true, Some(w)) = (all_online, owner_of_role(&s, "writer")) {
                return Ok(w);
            }
            // A host kept out of rotation for errant transactions needs an operator's repair;
            // the series goes on with a fresh lab instead.
            if let Some(h) = s.hosts.iter().find(|h| !h.errant_gtids.is_empty()) {
                bail!(
                    "{} holds errant transactions ({}) and stays out of rotation",
                    h.name,
                    h.errant_gtids
                );
            }
            if last_nudge.elapsed() > Duration::from_secs(5) {
                last_nudge = Instant::now();
                for h in &s.hosts {
                    if h.state == HostState::AwaitingRecovery as i32 {
                        if let Ok(mut c) = cluster.control().await {
                            let r = c
                                .set_online(HostRequest {
                                    protocol_version: PROTOCOL_VERSION,
                                    host: h.name.clone(),
                                })
                                .await;
                            eprintln!(
                                "  set_online {}: {:?}",
                                h.name,
                                r.map(|r| r.into_inner().message)
                            );
                        }
                    }
                }
            }
            if start.elapsed() > RECOVER {
                bail!(
                    "cluster not back to all ONLINE within {RECOVER:?}: {:?}",
                    s.hosts
                );
            }
        } else if start.elapsed() > RECOVER {
            bail!("no monitor answers");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One failover of the current writer by `fault` (the cluster is all ONLINE with `writer`), measured;
/// the host is brought back afterwards.
async fn failover_run(
    lab: &Lab,
    cluster: &MmmCluster<'_>,
    writer: &str,
    fault: Fault,
    series: &mut Series,
) -> anyhow::Result<()> {
    let other = if writer == "db1" { "db2" } else { "db1" };
    let new_id = lab.host(other).server_id;
    let oracle = start_oracle(lab).await?;
    let load = start_load(lab).await?;
    // The fault comes at a random moment, as a real one does: its phase against the checks' probes and
    // the lease renewals (every third of a lease from the last status change, which the run's set-up
    // made) is then uniform. Without this the fault fell at the same point of the renewal cycle in
    // every run.
    tokio::time::sleep(Duration::from_millis(
        rand::random::<u64>() % FAULT_PHASE_SPREAD.as_millis() as u64,
    ))
    .await;
    let (t0, w0) = (Instant::now(), wall_ms());
    match fault {
        Fault::KillMysqld => lab.kill_mysqld(writer).await?,
        Fault::LinkDown => lab.link_down(writer).await?,
    }
    let first_new = wait_ack_from(&load, new_id, t0, FAILOVER_LIMIT).await;
    // A few more writes after the first, so the history shows whether the old writer still answers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let history = load.stop().await;
    let restore = match fault {
        Fault::KillMysqld => lab.start_mysqld(writer).await,
        Fault::LinkDown => lab.link_up(writer).await,
    };
    let first_new = first_new?;
    restore?;
    let first_new_wall = w0 + first_new.saturating_duration_since(t0).as_millis() as i64;
    series
        .to_first_write
        .push(first_new.saturating_duration_since(t0));
    series.outage.push(outage_in(&history, t0, first_new));
    series.split_brain += history.split_brain().len();
    let offline = wait_decision(cluster, w0, "old writer HARD_OFFLINE", |d| {
        d.host == writer && d.role.is_empty() && d.to == "HARD_OFFLINE"
    })
    .await;
    let role = wait_decision(cluster, w0, "writer role to the new writer", |d| {
        d.role.starts_with("writer(") && d.to == other
    })
    .await;
    match offline {
        Ok(t) => series.detection.push(between_ms(w0, t)),
        Err(e) => series.failures.push(format!("{e:#}")),
    }
    match role {
        Ok(t) => series.action.push(between_ms(t, first_new_wall)),
        Err(e) => series.failures.push(format!("{e:#}")),
    }
    if std::env::var_os(TIMING_ENV).is_some() {
        eprintln!(
            "  {fault:?} of {writer}: client outage {:?}",
            outage_in(&history, t0, first_new)
        );
        print_last_move_timing(cluster);
    }
    let run = format!("{fault:?} of {writer}");
    series.oracle.judge(lab, cluster, oracle, &run).await;
    Ok(())
}

/// Prints, to stderr, the timeline of the cluster's last writer move (`mmmctl history --timing`): where
/// a slow run's time went.
fn print_last_move_timing(cluster: &MmmCluster<'_>) {
    if let Ok(out) = cluster.mmmctl(&["history", "--timing", "40"]) {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        // The last move only.
        let from = lines
            .iter()
            .rposition(|l| !l.starts_with(' ') && !l.trim().is_empty())
            .unwrap_or(0);
        eprintln!("    {}", lines[from..].join("\n    "));
    }
}

/// With `MMM_LAB_KEEP` set, copies the lab's logs aside (a fresh lab reuses the slot's directory).
fn keep_logs(lab: &Lab, what: &str) {
    if std::env::var_os(mmm_lab::KEEP_DIR_ENV).is_none() {
        return;
    }
    let to = std::env::temp_dir().join(format!("mmm-bench-failed-{}-{what}", std::process::id()));
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(lab.dir().join("logs"))
        .arg(&to)
        .status();
    eprintln!("  logs of the failed run: {} ({copied:?})", to.display());
}

/// A series of failovers with `profile`. One lab serves as many runs as it can: when the old writer does
/// not return to ONLINE (e.g. it kept a transaction nobody else has, and is held out of rotation as it
/// should be), the next runs use a fresh lab.
async fn failover_series(profile: Profile, fault: Fault, runs: usize) -> anyhow::Result<Series> {
    let mut series = Series::default();
    let (mut done, mut labs) = (0usize, 0usize);
    while done < runs && labs < runs.max(3) {
        labs += 1;
        let lab = Lab::start(LabSpec::cluster()).await?;
        let cluster = MmmCluster::start(&lab, profile.keys)?;
        cluster.wait_all_online("db1", SETTLE).await?;
        while done < runs {
            let writer = match wait_recovered(&cluster).await {
                Ok(w) => w,
                Err(e) => {
                    eprintln!(
                        "  the cluster did not return to all ONLINE; a fresh lab follows: {e:#}"
                    );
                    series.returns_failed += 1;
                    break;
                }
            };
            done += 1;
            let t = Instant::now();
            if let Err(e) = failover_run(&lab, &cluster, &writer, fault, &mut series).await {
                eprintln!("  run {done}: FAILED: {e:#}");
                keep_logs(&lab, &format!("{fault:?}-run{done}"));
                series.failures.push(format!("run {done}: {e:#}"));
                continue;
            }
            eprintln!(
                "  run {done}/{runs} ({fault:?}): fault -> first write {:?}, took {:.1} s",
                series.to_first_write.last(),
                t.elapsed().as_secs_f64()
            );
        }
    }
    Ok(series)
}

/// Planned switchovers back and forth between db1 and db2.
async fn switchover_series(
    runs: usize,
) -> anyhow::Result<(Samples, Samples, usize, Vec<String>, OracleTally)> {
    let lab = Lab::start(LabSpec::cluster()).await?;
    let cluster = MmmCluster::start(&lab, DEFAULTS.keys)?;
    cluster.wait_all_online("db1", SETTLE).await?;
    let oracle = start_oracle(&lab).await?;
    let (mut client, mut reported, mut failures) = (Samples::new(), Samples::new(), Vec::new());
    let mut split_brain = 0;
    for run in 1..=runs {
        let writer = wait_recovered(&cluster).await?;
        let other = if writer == "db1" { "db2" } else { "db1" };
        let load = start_load(&lab).await?;
        let t0 = Instant::now();
        let mut c = cluster.control().await?;
        let mut stream = c
            .move_role(MoveRoleRequest {
                protocol_version: PROTOCOL_VERSION,
                role: "writer".into(),
                host: other.into(),
                force: false,
                wait: true,
            })
            .await?
            .into_inner();
        let mut done = None;
        while let Some(p) = tokio::time::timeout(FAILOVER_LIMIT, stream.message())
            .await
            .context("move_role timed out")??
        {
            if p.done {
                done = Some(p);
                break;
            }
        }
        let first_new = wait_ack_from(&load, lab.host(other).server_id, t0, FAILOVER_LIMIT).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let history = load.stop().await;
        split_brain += history.split_brain().len();
        match (done, first_new) {
            (Some(p), Ok(first)) if p.ok => {
                client.push(outage_in(&history, t0, first));
                reported.push(Duration::from_millis(p.writes_blocked_millis));
                eprintln!(
                    "  switchover {run}/{runs}: client outage {:?}",
                    outage_in(&history, t0, first)
                );
                // What the client met meanwhile (ms after the move began): where the outage goes.
                let errors: Vec<String> = history
                    .errors
                    .iter()
                    .filter(|(t, _)| *t >= t0 && *t <= first)
                    .map(|(t, e)| format!("+{} ms {e}", t.duration_since(t0).as_millis()))
                    .collect();
                if !errors.is_empty() {
                    eprintln!("    client errors: {}", errors.join("; "));
                }
                if outage_in(&history, t0, first) > Duration::from_millis(150)
                    || std::env::var_os(TIMING_ENV).is_some()
                {
                    print_last_move_timing(&cluster);
                }
            }
            (p, first) => failures.push(format!(
                "run {run}: move_role {:?}, first write on {other}: {:?}",
                p.map(|p| p.message),
                first.err().map(|e| format!("{e:#}"))
            )),
        }
    }
    let mut tally = OracleTally::default();
    tally
        .judge(&lab, &cluster, oracle, "switchover series")
        .await;
    Ok((client, reported, split_brain, failures, tally))
}

/// Monitor leader kills: time until a survivor names a new leader that has committed, and the client's
/// longest write outage meanwhile.
async fn leader_series(
    runs: usize,
) -> anyhow::Result<(Samples, Samples, usize, Vec<String>, OracleTally)> {
    let lab = Lab::start(LabSpec::cluster()).await?;
    let mut cluster = MmmCluster::start(&lab, DEFAULTS.keys)?;
    cluster.wait_all_online("db1", SETTLE).await?;
    let oracle = start_oracle(&lab).await?;
    let (mut elect, mut outage, mut changes, mut failures) =
        (Samples::new(), Samples::new(), 0usize, Vec::new());
    for run in 1..=runs {
        wait_recovered(&cluster).await?;
        // A leader that every member follows, with the killed one back.
        let status = cluster.cluster_status_of("mon1").await?;
        let leader = status.leader_name.clone();
        if leader.is_empty() {
            failures.push(format!("run {run}: no leader"));
            continue;
        }
        let survivor = cluster
            .running_monitors()
            .into_iter()
            .find(|m| *m != leader)
            .context("a follower")?;
        let before = decisions(&cluster).await?.len();
        let load = start_load(&lab).await?;
        let commit_before = cluster.cluster_status_of(&survivor).await?.commit_index;
        let t0 = Instant::now();
        cluster.kill_monitor(&leader)?;
        let deadline = t0 + Duration::from_secs(15);
        let mut elected = None;
        while Instant::now() < deadline {
            if let Ok(s) = cluster.cluster_status_of(&survivor).await {
                if !s.leader_name.is_empty()
                    && s.leader_name != leader
                    && s.commit_index > commit_before
                {
                    elected = Some(t0.elapsed());
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let history = load.stop().await;
        outage.push(outage_in(&history, t0, Instant::now()));
        match elected {
            Some(d) => elect.push(d),
            None => failures.push(format!("run {run}: no new leader within 15 s")),
        }
        let after = decisions(&cluster).await?.len();
        changes += after.saturating_sub(before);
        eprintln!("  leader kill {run}/{runs}: new leader after {elected:?}");
        cluster.start_monitor(&leader)?;
        // Let the restarted monitor catch up before the next kill.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = cluster
                .cluster_status_of(&leader)
                .await
                .is_ok_and(|s| !s.leader_name.is_empty() && s.members.iter().all(|m| m.reachable));
            if ok || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut tally = OracleTally::default();
    tally
        .judge(&lab, &cluster, oracle, "leader kill series")
        .await;
    Ok((elect, outage, changes, failures, tally))
}

fn print_series(title: &str, rows: &[(&str, &Series)]) {
    println!("\n### {title}\n");
    println!("{}", header("settings / measure"));
    for (name, s) in rows {
        println!(
            "{}",
            s.detection.row(&format!(
                "{name}: detection (fault → HARD_OFFLINE committed)"
            ))
        );
        println!(
            "{}",
            s.action.row(&format!(
                "{name}: action (writer decision → first write on new writer)"
            ))
        );
        println!(
            "{}",
            s.to_first_write
                .row(&format!("{name}: fault → first write on new writer"))
        );
        println!(
            "{}",
            s.outage.row(&format!(
                "{name}: client write outage (last ack before → first after); {}",
                s.oracle.verdict()
            ))
        );
    }
    for (name, s) in rows {
        println!(
            "\n{name}: {}; split-brain findings of the measuring client: {}; failed runs: {}; \
             old writer held out of rotation afterwards (fresh lab): {}",
            s.oracle.verdict(),
            s.split_brain,
            s.failures.len(),
            s.returns_failed
        );
        for f in s.failures.iter().chain(&s.oracle.findings) {
            println!("- {f}");
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    mmm_bench::init_logging();
    let mut a = Args::parse();
    if a.quick {
        a.kill_runs = a.kill_runs.min(3);
        a.link_runs = a.link_runs.min(2);
        a.switch_runs = a.switch_runs.min(3);
        a.leader_runs = a.leader_runs.min(2);
    }
    println!("Machine: {}", mmm_bench::machine::describe());
    let interval = Duration::from_millis(a.client_interval_ms);
    let _ = CLIENT_INTERVAL.set(interval);
    if interval.is_zero() {
        println!(
            "Client: one writer through the writer VIP, writing as fast as it can (back to back)"
        );
    } else {
        println!("Client: one writer through the writer VIP, a write every {interval:?}");
    }
    let runs = |s: Scenario| a.only.is_empty() || a.only.contains(&s);

    let profiles: Vec<Profile> = [(ProfileName::Defaults, DEFAULTS), (ProfileName::Fast, FAST)]
        .into_iter()
        .filter(|(n, _)| a.profiles.is_empty() || a.profiles.contains(n))
        .map(|(_, p)| p)
        .collect();
    if runs(Scenario::Kill) {
        fault_tables(Fault::KillMysqld, &profiles, a.kill_runs).await?;
    }
    if runs(Scenario::Link) {
        fault_tables(Fault::LinkDown, &profiles, a.link_runs).await?;
    }
    if runs(Scenario::Switchover) {
        switchover_table(a.switch_runs).await?;
    }
    if runs(Scenario::Leader) {
        leader_table(a.leader_runs).await?;
    }
    Ok(())
}

async fn fault_tables(fault: Fault, profiles: &[Profile], runs: usize) -> anyhow::Result<()> {
    let mut series = Vec::new();
    for &p in profiles {
        eprintln!("{}, {}: {runs} runs", fault.describe(), p.name);
        series.push((p.name, failover_series(p, fault, runs).await?));
    }
    print_series(
        &format!("Unplanned failover: {}", fault.describe()),
        &series.iter().map(|(n, s)| (*n, s)).collect::<Vec<_>>(),
    );
    Ok(())
}

async fn switchover_table(runs: usize) -> anyhow::Result<()> {
    eprintln!("planned switchover: {runs} runs");
    let (client, reported, split_brain, failures, tally) = switchover_series(runs).await?;
    println!("\n### Planned switchover (move_role writer), defaults\n");
    println!("{}", header("measure"));
    println!(
        "{}",
        client.row(&format!(
            "client write outage (last ack before → first ack on new writer); {}",
            tally.verdict()
        ))
    );
    println!(
        "{}",
        reported.row("writes blocked, as move_role reports it")
    );
    println!(
        "\nsplit-brain findings of the checking client: {split_brain}; failed runs: {}",
        failures.len()
    );
    for f in failures.iter().chain(&tally.findings) {
        println!("- {f}");
    }
    Ok(())
}

async fn leader_table(runs: usize) -> anyhow::Result<()> {
    eprintln!("monitor leader kill: {runs} runs");
    let (elect, outage, changes, failures, tally) = leader_series(runs).await?;
    println!("\n### Monitor leader loss (kill -9 of the leader monitor), defaults\n");
    println!("{}", header("measure"));
    println!("{}", elect.row("leader kill → new leader has committed"));
    println!(
        "{}",
        outage.row(&format!(
            "client's longest write outage meanwhile; {}",
            tally.verdict()
        ))
    );
    println!("\ndecisions taken about the databases during the leader changes: {changes}; failed runs: {}", failures.len());
    for f in failures.iter().chain(&tally.findings) {
        println!("- {f}");
    }
    Ok(())
}
