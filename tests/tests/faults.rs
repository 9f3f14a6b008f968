//! The fault suite: 3 monitors, a master-master pair (db1, db2) and 2 replicas with semi-synchronous replication,
//! all real processes in network namespaces, each scenario with the checking client writing through the writer
//! VIP and reading through the reader VIPs.
//!
//! Invariants checked after every scenario (and after each step of the random sequence):
//! - never two servers accepting writes at once (the checking client's split-brain judgement);
//! - with semi-sync on, no acknowledged write lost (every host has every acknowledged row, hosts converge);
//! - every role change is present in `mmmctl history` (every server that acknowledged writes was named
//!   writer there, and the last writer decision names the current writer);
//! - the cluster returns to all hosts ONLINE once the faults heal (an old master with errant transactions is
//!   repaired by the test acting as the operator, then put back with `mmmctl set_online`).
//!
//! Each scenario prints its longest write outage (`FAULT-OUTAGE <scenario>: ...`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mmm_lab::cluster::{owner_of_role, MmmCluster};
use mmm_lab::workload::{History, Workload, WorkloadSpec};
use mmm_lab::{Lab, LabSpec};
use mmm_proto::{HostState, ShowReply};
use mysql_async::prelude::Queryable;
use rand::{Rng, SeedableRng};

/// Time for a fresh cluster to put every host ONLINE.
const SETTLE: Duration = Duration::from_secs(40);
/// Time for a failover to name a new writer.
const FAILOVER: Duration = Duration::from_secs(25);
/// Time for the cluster to return to all hosts ONLINE after the faults heal.
const HEAL: Duration = Duration::from_secs(90);
/// How long "all hosts ONLINE" must hold to count as healed.
const STABLE: Duration = Duration::from_secs(5);
/// Environment variable that replays the random sequence with a given seed.
const SEED_ENV: &str = "MMM_FAULT_SEED";

/// A cluster under test and the faults currently applied to it.
struct Env<'a> {
    /// The lab.
    lab: &'a Lab,
    /// The mmm-rs processes.
    cluster: MmmCluster<'a>,
    /// Hosts whose link is down.
    links_down: BTreeSet<String>,
    /// Hosts whose agent was killed.
    agents_down: BTreeSet<String>,
    /// Hosts repaired after errant transactions (for the report).
    repaired: Vec<String>,
    /// Shortest write pause that makes a return to an earlier writer a failback rather than split brain.
    /// Planned moves back and forth may pause less: scenarios with them set it to zero and rely on the
    /// stricter count of writer switches against the committed writer decisions (see `check_history`).
    failback_gap: Duration,
}

impl<'a> Env<'a> {
    /// Starts agents and monitors and waits until every host is ONLINE with db1 as writer.
    async fn start(lab: &'a Lab, extra_keys: &str) -> anyhow::Result<Env<'a>> {
        let cluster = MmmCluster::start(lab, extra_keys)?;
        cluster.wait_all_online("db1", SETTLE).await?;
        Ok(Env {
            lab,
            cluster,
            links_down: BTreeSet::new(),
            agents_down: BTreeSet::new(),
            repaired: Vec::new(),
            failback_gap: mmm_lab::workload::FAILBACK_MIN_GAP,
        })
    }

    /// Starts the checking client through the VIPs and waits for 50 acknowledged writes.
    async fn load(&self) -> anyhow::Result<Workload> {
        let load = Workload::start(
            self.lab,
            WorkloadSpec {
                target: self.lab.writer_vip(),
                readers: self.lab.reader_vips(),
                interval: Duration::from_millis(5),
                // A pool's connect timeout: a SYN sent while the VIP had no owner is lost, and the client
                // gives up on it after this and connects again.
                op_timeout: Duration::from_millis(250),
            },
        )
        .await?;
        // Some history before the fault: the client's CREATE TABLE is long replicated (a replica killed
        // right after applying DDL can restart with a GTID position older than its binlog, which strict
        // mode refuses; that is MariaDB's, not a failover's, problem).
        wait_acks(&load, 50, Duration::from_secs(10)).await?;
        Ok(load)
    }

    async fn writer(&self) -> anyhow::Result<String> {
        owner_of_role(&self.cluster.show().await?, "writer").context("no writer")
    }

    async fn leader(&self) -> anyhow::Result<String> {
        for m in self.cluster.running_monitors() {
            if let Ok(s) = self.cluster.cluster_status_of(&m).await {
                if !s.leader_name.is_empty() {
                    return Ok(s.leader_name);
                }
            }
        }
        bail!("no running monitor knows a leader")
    }

    /// Waits until the writer role is on a host other than `old`; returns it.
    async fn wait_new_writer(&self, old: &str, timeout: Duration) -> anyhow::Result<String> {
        let s = self
            .cluster
            .wait_show(timeout, &format!("writer moved away from {old}"), |s| {
                owner_of_role(s, "writer").is_some_and(|w| w != old)
            })
            .await?;
        owner_of_role(&s, "writer").context("no writer")
    }

    fn kill_agent(&mut self, host: &str) -> anyhow::Result<()> {
        self.cluster.kill_agent(host)?;
        self.agents_down.insert(host.to_string());
        Ok(())
    }

    fn start_agent(&mut self, host: &str) -> anyhow::Result<()> {
        self.cluster.start_agent(host)?;
        self.agents_down.remove(host);
        Ok(())
    }

    async fn link_down(&mut self, host: &str) -> anyhow::Result<()> {
        self.lab.link_down(host).await?;
        self.links_down.insert(host.to_string());
        Ok(())
    }

    /// Undoes every fault: blocks removed, links up, agents started (before their mysqld, so that a server
    /// whose agent died never comes up unmanaged), mysqlds and monitors started. Then waits for every host to be
    /// ONLINE, repairing (as an operator would) hosts reported with errant transactions.
    async fn heal(&mut self) -> anyhow::Result<()> {
        self.lab.unblock_all().await?;
        for h in std::mem::take(&mut self.links_down) {
            self.lab.link_up(&h).await?;
        }
        for h in self.agents_down.clone() {
            self.start_agent(&h)?;
        }
        let hosts: Vec<String> = self.lab.hosts().iter().map(|h| h.name.clone()).collect();
        for h in &hosts {
            if !self.lab.mysqld_running(h) {
                self.lab.start_mysqld(h).await?;
            }
        }
        let running = self.cluster.running_monitors();
        for m in self.lab.monitors() {
            if !running.contains(&m.name) {
                self.cluster.start_monitor(&m.name)?;
            }
        }
        self.wait_all_online_repairing(HEAL).await
    }

    /// Waits until every host is ONLINE and some host is the writer; a host shown with errant transactions is
    /// repaired and set online.
    async fn wait_all_online_repairing(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        // All ONLINE must hold for a while: a returning host can be put back before its errant check ran.
        let mut online_since: Option<Instant> = None;
        while Instant::now() < deadline {
            match self.cluster.show().await {
                Ok(s) if all_online(&s, self.lab.hosts().len()) => {
                    let since = *online_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= STABLE {
                        return Ok(());
                    }
                }
                Ok(s) => {
                    online_since = None;
                    if let (Some(h), Some(w)) = (
                        s.hosts.iter().find(|h| !h.errant_gtids.is_empty()),
                        owner_of_role(&s, "writer"),
                    ) {
                        let (h, gtids) = (h.name.clone(), h.errant_gtids.clone());
                        eprintln!(
                            "{h} reported with errant transactions {gtids}: repairing it from {w}"
                        );
                        self.repair_errant(&h, &w).await?;
                    }
                    for h in &s.hosts {
                        if h.state == HostState::AwaitingRecovery as i32
                            && h.errant_gtids.is_empty()
                            && !self.repaired.contains(&h.name)
                            && self.repair_crashed_replica(&h.name).await?
                        {
                            self.repaired
                                .push(format!("{} (binlog ahead of InnoDB after a crash)", h.name));
                        }
                    }
                    last = format!("{s:?}");
                }
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("the cluster did not return to all hosts ONLINE within {timeout:?}; last: {last}")
    }

    /// The operator's repair of a host with errant transactions: with its agent stopped, the rows the master
    /// does not have are deleted (not logged), its binlog is reset to the master's GTID state for the
    /// transactions they share, replication starts again from there, and `set_online` puts it back.
    async fn repair_errant(&mut self, host: &str, master: &str) -> anyhow::Result<()> {
        if !self.agents_down.contains(host) {
            self.kill_agent(host)?;
        }
        let mut h = self.lab.mysql(host).await?;
        let mut m = self.lab.mysql(master).await?;
        h.query_drop("STOP SLAVE").await?;
        let host_state: String = h
            .query_first("SELECT @@gtid_binlog_state")
            .await?
            .unwrap_or_default();
        let master_state: String = m
            .query_first("SELECT @@gtid_binlog_state")
            .await?
            .unwrap_or_default();
        let host_rows: Vec<(u64, u32)> = h.query("SELECT id, server_id FROM app.chk").await?;
        let master_rows: BTreeSet<(u64, u32)> = m
            .query("SELECT id, server_id FROM app.chk")
            .await?
            .into_iter()
            .collect();
        h.query_drop("SET SESSION sql_log_bin = 0").await?;
        let extra: Vec<(u64, u32)> = host_rows
            .into_iter()
            .filter(|r| !master_rows.contains(r))
            .collect();
        for (id, sid) in &extra {
            h.exec_drop(
                "DELETE FROM app.chk WHERE id = ? AND server_id = ?",
                (id, sid),
            )
            .await?;
        }
        let state = repaired_binlog_state(&host_state, &master_state)?;
        let slave_pos = last_per_domain(&state);
        eprintln!(
            "repair {host}: deleted {} rows the master lacks {extra:?}; binlog state {host_state:?} -> {state:?}, \
             slave pos {slave_pos:?} (master state {master_state:?})",
            extra.len()
        );
        h.query_drop("RESET MASTER").await?;
        h.query_drop(format!("SET GLOBAL gtid_binlog_state = '{state}'"))
            .await?;
        h.query_drop(format!("SET GLOBAL gtid_slave_pos = '{slave_pos}'"))
            .await?;
        // Not configured yet when its agent had not re-pointed it: the agent does, when it starts.
        let _ = h.query_drop("START SLAVE").await;
        drop((h, m));
        self.start_agent(host)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.cluster.mmmctl(&["set_online", host])?;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if out.status.success() && text.contains("OK") {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "set_online {host} refused: {text} {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.repaired.push(host.to_string());
        Ok(())
    }

    /// A replica whose SQL thread stopped on MariaDB's strict-mode error 1950 after a kill -9: its binlog
    /// kept transactions its InnoDB data (and `gtid_slave_pos`, stored in InnoDB) lost, so replication
    /// re-applies one the binlog already has. InnoDB is the truth: the binlog is reset and replication
    /// re-applies what InnoDB lacks. Returns whether it repaired anything.
    async fn repair_crashed_replica(&mut self, host: &str) -> anyhow::Result<bool> {
        let Ok(mut c) = self.lab.mysql_timeout(host, Duration::from_secs(1)).await else {
            return Ok(false);
        };
        let row: Option<mysql_async::Row> = c.query_first("SHOW SLAVE STATUS").await?;
        let errno: u32 = row
            .and_then(|r| r.get::<Option<u32>, _>("Last_SQL_Errno").flatten())
            .unwrap_or(0);
        if errno != 1950 {
            return Ok(false);
        }
        let pos: (String, String) = c
            .query_first("SELECT @@gtid_binlog_pos, @@gtid_slave_pos")
            .await?
            .unwrap_or_default();
        eprintln!(
            "{host}: replication stopped by strict mode (1950) with binlog {:?} ahead of slave pos {:?}: \
             resetting the binlog and letting replication re-apply",
            pos.0, pos.1
        );
        c.query_drop("STOP SLAVE").await?;
        c.query_drop("RESET MASTER").await?;
        c.query_drop("START SLAVE").await?;
        Ok(true)
    }

    /// Every role change in `mmmctl history`: each server that acknowledged writes in `history` was named the
    /// writer there, and the last writer decision names the current writer.
    async fn check_history(&self, history: &History) -> anyhow::Result<()> {
        let out = self.cluster.mmmctl(&["--json", "history", "1000"])?;
        if !out.status.success() {
            bail!(
                "mmmctl history failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("mmmctl --json history")?;
        let decisions = v["decisions"].as_array().context("decisions")?;
        let writer_to: Vec<String> = decisions
            .iter()
            .filter(|d| d["role"].as_str().is_some_and(|r| r.starts_with("writer")))
            .filter_map(|d| d["to"].as_str().map(str::to_string))
            .filter(|t| t != "-")
            .collect();
        for sid in history.writers() {
            let host = self
                .lab
                .hosts()
                .iter()
                .find(|h| h.server_id == sid)
                .map(|h| h.name.clone())
                .with_context(|| format!("unknown server id {sid}"))?;
            if !writer_to.contains(&host) {
                bail!("{host} accepted writes but mmmctl history never named it writer: {writer_to:?}");
            }
        }
        // One sequential client switches servers only when the writer moved: never more often than the
        // writer decisions (the initial one included). Two servers taking writes at once make it bounce.
        let switches = writer_runs(history);
        if switches > writer_to.len() {
            bail!(
                "the client's writes went to {switches} runs of servers but mmmctl history has only {} writer \
                 decisions {writer_to:?}",
                writer_to.len()
            );
        }
        let current = self.writer().await?;
        if writer_to.last() != Some(&current) {
            bail!("the last writer decision in mmmctl history is {writer_to:?}, the writer is {current}");
        }
        Ok(())
    }

    /// Heals, stops the client and checks every invariant; returns the longest write outage. On failure the
    /// processes' logs are copied to `/tmp/mmm-faults-logs/<scenario>` (the lab dir goes when the lab drops).
    async fn finish(self, load: Workload, scenario: &str) -> anyhow::Result<Duration> {
        let lab = self.lab;
        let r = self.finish_inner(load, scenario).await;
        if r.is_err() {
            save_logs(lab, scenario);
        }
        r
    }

    async fn finish_inner(mut self, load: Workload, scenario: &str) -> anyhow::Result<Duration> {
        self.heal().await?;
        // A few writes after the cluster is whole again.
        wait_acks(&load, load.acked() + 20, Duration::from_secs(10)).await?;
        let history = load.stop().await;
        let sb = history.split_brain_with(self.failback_gap);
        if !sb.is_empty() {
            bail!("{scenario}: two servers accepted writes: {sb:?}");
        }
        let hosts: Vec<&str> = self.lab.hosts().iter().map(|h| h.name.as_str()).collect();
        let report = history.verify(self.lab, &hosts).await?;
        // The report judges split brain with the default failback gap; scenarios with planned moves judged it
        // above with theirs (and count the switches against the writer decisions in `check_history`).
        let problems: Vec<String> = report
            .problems()
            .into_iter()
            .filter(|p| {
                self.failback_gap >= mmm_lab::workload::FAILBACK_MIN_GAP
                    || !p.starts_with("split brain:")
            })
            .collect();
        if !problems.is_empty() {
            bail!("{scenario}: checking client: {problems:?}");
        }
        self.check_history(&history).await?;
        let outage = history.longest_outage();
        eprintln!(
            "FAULT-OUTAGE {scenario}: {outage:?} ({} writes acknowledged, repaired: {:?})",
            history.acks.len(),
            self.repaired
        );
        Ok(outage)
    }
}

/// Copies the lab's logs to `/tmp/mmm-faults-logs/<scenario>` for a failed scenario.
fn save_logs(lab: &Lab, scenario: &str) {
    let slug: String = scenario
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dest = std::path::Path::new("/tmp/mmm-faults-logs").join(slug);
    let _ = std::fs::create_dir_all(&dest);
    let _ = std::process::Command::new("cp")
        .arg("-r")
        .arg(lab.dir().join("logs"))
        .arg(&dest)
        .status();
    eprintln!("logs of the failed scenario copied to {}", dest.display());
}

/// Number of runs of consecutive acknowledged writes accepted by one server.
fn writer_runs(history: &History) -> usize {
    let mut acks = history.acks.clone();
    acks.sort_by_key(|a| (a.acked, a.id));
    let mut runs = 0;
    let mut prev = None;
    for a in acks {
        if prev != Some(a.server_id) {
            runs += 1;
            prev = Some(a.server_id);
        }
    }
    runs
}

fn all_online(s: &ShowReply, n: usize) -> bool {
    s.hosts.len() == n
        && s.hosts.iter().all(|h| h.state == HostState::Online as i32)
        && owner_of_role(s, "writer").is_some()
}

/// Waits until the client has at least `n` acknowledged writes.
async fn wait_acks(load: &Workload, n: u64, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while load.acked() < n {
        if Instant::now() > deadline {
            bail!(
                "the client has {} acknowledged writes, not {n}, after {timeout:?}",
                load.acked()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Parses a MariaDB GTID list into (domain, server_id, seq).
fn parse_gtids(s: &str) -> anyhow::Result<Vec<(u32, u32, u64)>> {
    s.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| {
            let p: Vec<&str> = g.split('-').collect();
            if p.len() != 3 {
                bail!("bad GTID {g:?}");
            }
            Ok((p[0].parse()?, p[1].parse()?, p[2].parse()?))
        })
        .collect()
}

/// The host's binlog state without its errant part: each (domain, server) pair the master also has is capped
/// at the master's sequence number, pairs the master lacks are dropped.
fn repaired_binlog_state(host: &str, master: &str) -> anyhow::Result<String> {
    let m = parse_gtids(master)?;
    let mut out = Vec::new();
    for (d, s, n) in parse_gtids(host)? {
        if let Some(&(_, _, mn)) = m.iter().find(|(md, ms, _)| *md == d && *ms == s) {
            out.push(format!("{d}-{s}-{}", n.min(mn)));
        }
    }
    Ok(out.join(","))
}

/// The GTID position of a binlog state: per domain, the entry with the highest sequence number.
fn last_per_domain(state: &str) -> String {
    let mut best: std::collections::BTreeMap<u32, (u32, u64)> = Default::default();
    for (d, s, n) in parse_gtids(state).unwrap_or_default() {
        let e = best.entry(d).or_insert((s, n));
        if n > e.1 {
            *e = (s, n);
        }
    }
    best.iter()
        .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `@@read_only` of a host.
async fn read_only(lab: &Lab, host: &str) -> anyhow::Result<bool> {
    let mut c = lab.mysql(host).await?;
    let v: Option<u8> = c.query_first("SELECT @@read_only").await?;
    Ok(v == Some(1))
}

/// Whether the host's interface carries `ip`.
fn has_ip(lab: &Lab, host: &str, ip: std::net::Ipv4Addr) -> anyhow::Result<bool> {
    let h = lab.host(host);
    let out = std::process::Command::new("ip")
        .args(["-n", &h.ns, "-o", "-4", "addr", "show"])
        .output()
        .context("ip addr")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.contains(&format!(" {ip}/")))
}

async fn lab_env() -> anyhow::Result<Lab> {
    mmm_lab::init_logging();
    Lab::start(LabSpec::cluster()).await
}

const KEYS: &str = "auto_set_online 2";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_kill_master_mysqld() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let env = Env::start(&lab, KEYS).await?;
    let load = env.load().await?;
    lab.kill_mysqld("db1").await?;
    let w = env.wait_new_writer("db1", FAILOVER).await?;
    assert_eq!(w, "db2", "the writer moves to db1's peer");
    wait_acks(&load, load.acked() + 20, FAILOVER).await?;
    env.finish(load, "kill -9 master mysqld").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_kill_master_mysqld_and_agent() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Env::start(&lab, KEYS).await?;
    let load = env.load().await?;
    env.kill_agent("db1")?;
    lab.kill_mysqld("db1").await?;
    let w = env.wait_new_writer("db1", FAILOVER).await?;
    assert_eq!(w, "db2");
    wait_acks(&load, load.acked() + 20, FAILOVER).await?;
    env.finish(load, "kill -9 master mysqld and agent").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_master_link_down() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Env::start(&lab, KEYS).await?;
    let load = env.load().await?;
    env.link_down("db1").await?;
    let w = env.wait_new_writer("db1", FAILOVER).await?;
    assert_eq!(w, "db2");
    wait_acks(&load, load.acked() + 20, FAILOVER).await?;
    env.finish(load, "master link down").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_writer_isolated_from_monitors_demotes_itself_first() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let env = Env::start(&lab, KEYS).await?;
    let load = env.load().await?;
    let isolated = Instant::now();
    for m in lab.monitors() {
        lab.block("db1", &m.name).await?;
    }
    let w = env.wait_new_writer("db1", FAILOVER).await?;
    assert_eq!(w, "db2");
    wait_acks(&load, load.acked() + 20, FAILOVER).await?;
    // The old writer demoted itself: read only, no writer VIP (it is still reachable from the clients).
    assert!(read_only(&lab, "db1").await?, "db1 is read_only");
    assert!(
        !has_ip(&lab, "db1", lab.writer_vip())?,
        "db1 dropped the writer VIP"
    );
    // Every write db1 acknowledged after the isolation was acknowledged before db2 was sent any.
    let h = load.history();
    let (id1, id2) = (lab.host("db1").server_id, lab.host("db2").server_id);
    let last_db1 = h
        .acks
        .iter()
        .filter(|a| a.server_id == id1 && a.acked > isolated)
        .map(|a| a.acked)
        .max();
    let first_db2 = h
        .acks
        .iter()
        .filter(|a| a.server_id == id2)
        .map(|a| a.sent)
        .min()
        .context("db2 acknowledged writes")?;
    if let Some(l) = last_db1 {
        assert!(
            l < first_db2,
            "db1 acknowledged a write {:?} after db2 was sent its first",
            l - first_db2
        );
    }
    env.finish(load, "writer isolated from the monitors")
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_kill_leader_idle() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Env::start(&lab, KEYS).await?;
    let load = env.load().await?;
    let leader = env.leader().await?;
    env.cluster.kill_monitor(&leader)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(l) = env.leader().await {
            if l != leader {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("no new leader after {leader} died");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_acks(&load, load.acked() + 50, Duration::from_secs(10)).await?;
    assert_eq!(
        env.writer().await?,
        "db1",
        "an idle leader's death moves nothing"
    );
    env.finish(load, "kill -9 monitor leader (idle)").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_kill_leader_mid_failover() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Env::start(&lab, KEYS).await?;
    let load = env.load().await?;
    let leader = env.leader().await?;
    lab.kill_mysqld("db1").await?;
    env.cluster
        .wait_show(Duration::from_secs(15), "db1 judged down", |s| {
            s.hosts
                .iter()
                .any(|h| h.name == "db1" && h.state != HostState::Online as i32)
        })
        .await?;
    env.cluster.kill_monitor(&leader)?;
    let w = env.wait_new_writer("db1", Duration::from_secs(30)).await?;
    assert_eq!(w, "db2");
    wait_acks(&load, load.acked() + 20, FAILOVER).await?;
    env.finish(load, "kill -9 monitor leader mid-failover")
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_partition_one_monitor_then_heal() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let env = Env::start(&lab, KEYS).await?;
    let load = env.load().await?;
    // The leader is the interesting one to cut off: the others must take over and keep the lease renewed.
    let leader = env.leader().await?;
    for other in lab
        .monitors()
        .iter()
        .map(|m| m.name.clone())
        .filter(|m| *m != leader)
        .chain(lab.hosts().iter().map(|h| h.name.clone()))
    {
        lab.block(&leader, &other).await?;
    }
    let others: Vec<String> = lab
        .monitors()
        .iter()
        .map(|m| m.name.clone())
        .filter(|m| *m != leader)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = env.cluster.cluster_status_of(&others[0]).await;
        if s.is_ok_and(|s| !s.leader_name.is_empty() && s.leader_name != leader) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the majority elected no new leader");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_acks(&load, load.acked() + 100, Duration::from_secs(10)).await?;
    assert_eq!(env.writer().await?, "db1");
    env.finish(load, "partition one monitor (the leader), then heal")
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_restart_all_monitors() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Env::start(&lab, KEYS).await?;
    let load = env.load().await?;
    let before = env.cluster.show().await?;
    for m in env.cluster.running_monitors() {
        env.cluster.kill_monitor(&m)?;
    }
    for m in lab.monitors() {
        env.cluster.start_monitor(&m.name)?;
    }
    let after = env
        .cluster
        .wait_show(Duration::from_secs(30), "monitors back", |s| {
            all_online(s, lab.hosts().len())
        })
        .await?;
    assert_eq!(
        owner_of_role(&before, "writer"),
        owner_of_role(&after, "writer"),
        "the writer is where it was (state from disk)"
    );
    wait_acks(&load, load.acked() + 50, Duration::from_secs(15)).await?;
    env.finish(load, "restart all three monitors").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_replica_dies_and_returns() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let env = Env::start(&lab, KEYS).await?;
    let load = env.load().await?;
    lab.kill_mysqld("db3").await?;
    env.cluster
        .wait_show(
            Duration::from_secs(20),
            "db3 out, its reader VIPs moved",
            |s| {
                let readers: usize = s
                    .hosts
                    .iter()
                    .map(|h| h.roles.iter().filter(|r| r.role == "reader").count())
                    .sum();
                s.hosts.iter().any(|h| {
                    h.name == "db3"
                        && h.state == HostState::HardOffline as i32
                        && h.roles.is_empty()
                }) && readers == lab.reader_vips().len()
            },
        )
        .await?;
    assert_eq!(env.writer().await?, "db1");
    env.finish(load, "a replica dies and returns").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_old_master_returns_without_errant() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let env = Env::start(&lab, KEYS).await?;
    let load = env.load().await?;
    lab.kill_mysqld("db1").await?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    wait_acks(&load, load.acked() + 50, FAILOVER).await?;
    lab.start_mysqld("db1").await?;
    // It comes back as a replica of db2 (unless the kill left it a transaction nobody received: then the
    // errant check reports it and the heal repairs it, which the report shows).
    env.finish(load, "old master returns (no errant injected)")
        .await?;
    let mut c = lab.mysql("db1").await?;
    let row: Option<mysql_async::Row> = c.query_first("SHOW SLAVE STATUS").await?;
    let src: String = row.and_then(|r| r.get("Master_Host")).unwrap_or_default();
    assert_eq!(
        src,
        lab.host("db2").ip.to_string(),
        "db1 replicates from db2"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_old_master_returns_with_errant() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Env::start(&lab, KEYS).await?;
    let load = env.load().await?;
    lab.kill_mysqld("db1").await?;
    assert_eq!(env.wait_new_writer("db1", FAILOVER).await?, "db2");
    wait_acks(&load, load.acked() + 50, FAILOVER).await?;
    // db1's agent has applied "no roles" (it was up): stop it, start mysqld unmanaged and commit a
    // transaction nobody else will ever have.
    env.cluster
        .wait_show(Duration::from_secs(10), "db1 without roles", |s| {
            s.hosts
                .iter()
                .any(|h| h.name == "db1" && h.roles.is_empty())
        })
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.kill_agent("db1")?;
    assert!(!has_ip(&lab, "db1", lab.writer_vip())?, "db1 holds no VIP");
    lab.start_mysqld("db1").await?;
    lab.exec(
        "db1",
        "INSERT INTO app.chk (id, server_id, ts) VALUES (999999999, @@server_id, NOW(6))",
    )
    .await?;
    let db1_pos = lab.gtid_current_pos("db1").await?;
    env.start_agent("db1")?;
    let s = env
        .cluster
        .wait_show(Duration::from_secs(20), "db1 reported errant", |s| {
            s.hosts
                .iter()
                .any(|h| h.name == "db1" && !h.errant_gtids.is_empty())
        })
        .await?;
    let db1 = s.hosts.iter().find(|h| h.name == "db1").expect("db1");
    eprintln!("db1 at {db1_pos} reported errant: {}", db1.errant_gtids);
    assert!(
        db1_pos.contains(&db1.errant_gtids),
        "the errant GTID {} is db1's own newest ({db1_pos})",
        db1.errant_gtids
    );
    // Kept out of rotation: no role while errant, for a while.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let s = env.cluster.show().await?;
        let h = s.hosts.iter().find(|h| h.name == "db1").expect("db1");
        assert!(h.roles.is_empty(), "an errant host holds no role: {s:?}");
        assert_ne!(
            h.state,
            HostState::Online as i32,
            "an errant host is not ONLINE"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The operator cannot put it back while the transaction is there.
    let out = env.cluster.mmmctl(&["set_online", "db1"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("errant transactions") && !text.starts_with("OK"),
        "set_online of a host with an errant transaction is refused: {text}"
    );
    let out = env.cluster.mmmctl(&["--json", "history", "1000"])?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("errant_gtids"),
        "the errant finding is in the history"
    );
    env.finish(load, "old master returns with an errant transaction")
        .await?;
    Ok(())
}

/// `move_role writer <to>` through the real mmmctl; returns how long it took.
fn move_writer(env: &Env<'_>, to: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = env.cluster.mmmctl(&["move_role", "writer", to])?;
    if !out.status.success() {
        bail!(
            "move_role writer {to}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_planned_move_role_and_back() -> anyhow::Result<()> {
    let lab = lab_env().await?;
    let mut env = Env::start(&lab, KEYS).await?;
    env.failback_gap = Duration::ZERO;
    let load = env.load().await?;
    let took = move_writer(&env, "db2")?;
    assert_eq!(env.writer().await?, "db2");
    wait_acks(&load, load.acked() + 100, Duration::from_secs(10)).await?;
    let back = move_writer(&env, "db1")?;
    assert_eq!(env.writer().await?, "db1");
    wait_acks(&load, load.acked() + 100, Duration::from_secs(10)).await?;
    eprintln!("move_role writer db2 took {took:?}, back {back:?}");
    let h = load.history();
    let ids: Vec<u32> = h.writers();
    assert_eq!(
        ids,
        vec![lab.host("db1").server_id, lab.host("db2").server_id],
        "writes went to db1, then db2 (and db1 again, which writers() lists once)"
    );
    assert_eq!(
        writer_runs(&h),
        3,
        "db1, then db2, then db1 again, with no write to the other in between"
    );
    env.finish(load, "planned move_role writer db2 and back")
        .await?;
    Ok(())
}

/// One fault of the random sequence.
#[derive(Debug, Clone, Copy)]
enum Fault {
    KillWriterMysqld,
    KillWriterMysqldAndAgent,
    WriterLinkDown,
    IsolateWriter,
    KillLeader,
    PartitionMonitor,
    RestartMonitors,
    KillReplica,
    MoveWriter,
}

const FAULTS: [Fault; 9] = [
    Fault::KillWriterMysqld,
    Fault::KillWriterMysqldAndAgent,
    Fault::WriterLinkDown,
    Fault::IsolateWriter,
    Fault::KillLeader,
    Fault::PartitionMonitor,
    Fault::RestartMonitors,
    Fault::KillReplica,
    Fault::MoveWriter,
];

/// Applies one fault and waits for its visible effect (a new writer when the writer is hit).
async fn apply(env: &mut Env<'_>, f: Fault, rng: &mut rand::rngs::StdRng) -> anyhow::Result<()> {
    let lab = env.lab;
    let writer = env.writer().await?;
    let peer = if writer == "db1" { "db2" } else { "db1" };
    match f {
        Fault::KillWriterMysqld => {
            lab.kill_mysqld(&writer).await?;
            env.wait_new_writer(&writer, FAILOVER).await?;
        }
        Fault::KillWriterMysqldAndAgent => {
            env.kill_agent(&writer)?;
            lab.kill_mysqld(&writer).await?;
            env.wait_new_writer(&writer, FAILOVER).await?;
        }
        Fault::WriterLinkDown => {
            env.link_down(&writer).await?;
            env.wait_new_writer(&writer, FAILOVER).await?;
        }
        Fault::IsolateWriter => {
            for m in lab.monitors() {
                lab.block(&writer, &m.name).await?;
            }
            env.wait_new_writer(&writer, FAILOVER).await?;
        }
        Fault::KillLeader => {
            let leader = env.leader().await?;
            env.cluster.kill_monitor(&leader)?;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Fault::PartitionMonitor => {
            let victim = lab.monitors()[rng.random_range(0..lab.monitors().len())]
                .name
                .clone();
            for m in lab.monitors() {
                if m.name != victim {
                    lab.block(&victim, &m.name).await?;
                }
            }
            for h in lab.hosts() {
                lab.block(&victim, &h.name).await?;
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Fault::RestartMonitors => {
            for m in env.cluster.running_monitors() {
                env.cluster.kill_monitor(&m)?;
            }
            for m in lab.monitors() {
                env.cluster.start_monitor(&m.name)?;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        Fault::KillReplica => {
            let r = if rng.random_bool(0.5) { "db3" } else { "db4" };
            lab.kill_mysqld(r).await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Fault::MoveWriter => {
            move_writer(env, peer)?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_random_sequence() -> anyhow::Result<()> {
    let seed: u64 = match std::env::var(SEED_ENV) {
        Ok(s) => s.parse().context(SEED_ENV)?,
        Err(_) => rand::random(),
    };
    eprintln!("random fault sequence: seed {seed} (replay with {SEED_ENV}={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let steps: usize = 4;
    let plan: Vec<Fault> = (0..steps)
        .map(|_| FAULTS[rng.random_range(0..FAULTS.len())])
        .collect();
    eprintln!("plan: {plan:?}");
    let keys = "auto_set_online 2\nflap_count 1000";
    let lab = lab_env().await?;
    let mut env = Env::start(&lab, keys).await?;
    env.failback_gap = Duration::ZERO;
    let load = env.load().await?;
    if let Err(e) = run_plan(&mut env, &load, &plan, &mut rng, seed).await {
        save_logs(&lab, &format!("random sequence (seed {seed})"));
        return Err(e);
    }
    env.finish(load, &format!("random sequence (seed {seed})"))
        .await
        .with_context(|| format!("seed {seed}"))?;
    Ok(())
}

/// Applies each fault of the plan, heals, and checks the invariants after each.
async fn run_plan(
    env: &mut Env<'_>,
    load: &Workload,
    plan: &[Fault],
    rng: &mut rand::rngs::StdRng,
    seed: u64,
) -> anyhow::Result<()> {
    for (i, f) in plan.iter().enumerate() {
        eprintln!("step {i}: {f:?}");
        apply(env, *f, rng)
            .await
            .with_context(|| format!("seed {seed}, step {i}: {f:?}"))?;
        env.heal()
            .await
            .with_context(|| format!("seed {seed}, heal after step {i}: {f:?}"))?;
        wait_acks(load, load.acked() + 20, Duration::from_secs(30))
            .await
            .with_context(|| format!("seed {seed}, writes after step {i}: {f:?}"))?;
        let sb = load.history().split_brain_with(env.failback_gap);
        if !sb.is_empty() {
            bail!("seed {seed}, after step {i} ({f:?}): split brain {sb:?}");
        }
        env.check_history(&load.history())
            .await
            .with_context(|| format!("seed {seed}, after step {i}: {f:?}"))?;
    }
    Ok(())
}

#[test]
fn repaired_binlog_state_caps_and_drops_the_errant_part() {
    assert_eq!(
        repaired_binlog_state("0-1-101,0-2-50", "0-1-100,0-2-150").unwrap(),
        "0-1-100,0-2-50"
    );
    assert_eq!(
        repaired_binlog_state("0-1-101,0-3-7", "0-1-100").unwrap(),
        "0-1-100"
    );
    assert_eq!(last_per_domain("0-1-100,0-2-50,1-1-3"), "0-1-100,1-1-3");
}
