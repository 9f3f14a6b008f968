//! A fault scenario on a running cluster, judged by the [`crate::oracle`]: the harness shared by the fault
//! suite, the fencing tests, the random nemesis and the soak benchmark.
//!
//! A [`Scenario`] starts 3 monitors and one agent per DB host on a lab, waits until every host is ONLINE
//! with db1 as the writer, and runs the oracle's clients in the client namespace `cli1` (so a partition can
//! keep them with the old writer): a probe writer straight to each master's own address, a writer through
//! the writer VIP and a reader per reader VIP, on insert, CAS-register and list-append workloads.
//!
//! [`Scenario::finish`] heals every fault it knows of, waits for the cluster to be whole again (all hosts
//! ONLINE for a while), stops the clients and checks, failing the test on any of:
//! - an oracle finding: two servers writable at once, two servers acknowledging writes in the same period,
//!   a write acknowledged by a read-only server, duplicate CAS values, an acknowledged write lost, a list
//!   read out of order, a server going back in time, or a host that did not converge;
//! - a write outage through the writer VIP longer than the scenario's bound ([`Expect::outage`]);
//! - a host repaired by hand (errant transactions, a replica stopped by strict mode) where the scenario does
//!   not allow it ([`Expect::repairs`]);
//! - a server that acknowledged writes through the writer VIP without `mmmctl history` ever naming it the
//!   writer, more writer changes seen by the client than the history has, or a last writer decision that
//!   does not name the current writer.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mmm_proto::{HostState, ShowReply};
use mysql_async::prelude::Queryable;

use crate::cluster::{owner_of_role, MmmCluster};
use crate::oracle::state::{gtid_seqs_by_server, gtids};
use crate::oracle::{self, NsRuntime, Oracle, OracleReport, OracleSpec, Role};
use crate::Lab;

/// Time for a fresh cluster to put every host ONLINE.
pub const SETTLE: Duration = Duration::from_secs(40);
/// Time for a failover to name a new writer.
pub const FAILOVER: Duration = Duration::from_secs(25);
/// Time for the cluster to return to all hosts ONLINE after the faults heal.
pub const HEAL: Duration = Duration::from_secs(90);
/// How long "all hosts ONLINE" must hold to count as healed.
const STABLE: Duration = Duration::from_secs(5);
/// The client namespace the oracle's clients run in.
pub const CLIENT_NS: &str = "cli1";

/// What a scenario allows.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// Longest write outage through the writer VIP allowed (generous in tests; real figures in the
    /// benchmarks).
    pub outage: Duration,
    /// Whether hosts may need an operator's repair before they are ONLINE again (an old writer that
    /// committed a transaction nobody received, a replica whose binlog got ahead of its data in a crash).
    /// Reads served by a host that was then repaired may show its undone tail: allowed with this (see
    /// [`undone_read_tolerated`]).
    pub repairs: bool,
    /// Whether clients cut off with the old writer may read writes that were never acknowledged and are
    /// undone when it rejoins (list reads that are no prefix of the final list): a commit waiting for its
    /// semi-synchronous acknowledgement when the old writer is demoted is killed unacknowledged, but
    /// MariaDB commits it locally, where readers of that server see it until the host is rebuilt (and
    /// then see the counter go back). Printed, not failed, when set.
    pub reads_of_undone_writes: bool,
}

impl Expect {
    /// An outage bound and no repairs.
    pub fn outage(outage: Duration) -> Self {
        Expect {
            outage,
            repairs: false,
            reads_of_undone_writes: false,
        }
    }

    /// The same, repairs allowed.
    pub fn with_repairs(mut self) -> Self {
        self.repairs = true;
        self
    }

    /// The same, reads of undone writes on the old writer tolerated (see the field).
    pub fn with_reads_of_undone_writes(mut self) -> Self {
        self.reads_of_undone_writes = true;
        self
    }
}

/// A cluster under test, the oracle watching it, and the faults currently applied.
pub struct Scenario<'a> {
    /// The lab.
    pub lab: &'a Lab,
    /// The mmm-rs processes.
    pub cluster: MmmCluster<'a>,
    /// The oracle (taken at finish).
    oracle: Option<Oracle>,
    /// Where the oracle's clients run; dropped after the oracle.
    client_rt: Option<NsRuntime>,
    /// Hosts whose link is down.
    links_down: BTreeSet<String>,
    /// Hosts whose agent was killed.
    agents_down: BTreeSet<String>,
    /// Hosts repaired by hand, with why.
    pub repaired: Vec<String>,
    /// Hosts put back ONLINE by the operator's `set_online` after staying AWAITING_RECOVERY (flapping).
    pub set_online_by_hand: Vec<String>,
    /// Whether the heal may put back hosts that stay AWAITING_RECOVERY (flapping detection on).
    pub operator_set_online: bool,
}

impl<'a> Scenario<'a> {
    /// Starts agents and monitors (with `extra_keys` in `<monitor>`) and waits until every host is ONLINE
    /// with db1 as writer.
    pub async fn start(lab: &'a Lab, extra_keys: &str) -> anyhow::Result<Scenario<'a>> {
        let cluster = MmmCluster::start(lab, extra_keys)?;
        Self::with_cluster(lab, cluster).await
    }

    /// Like [`Scenario::start`], with `line` (e.g. `kill_stalled_mysqld 0`) added to the `<agent>`
    /// section of `host`'s agent configuration (a negative control turning one safeguard off).
    pub async fn start_with_agent_setting(
        lab: &'a Lab,
        extra_keys: &str,
        host: &str,
        line: &str,
    ) -> anyhow::Result<Scenario<'a>> {
        Self::start_edited(lab, extra_keys, |configs| {
            let conf = configs
                .agents
                .get(host)
                .with_context(|| format!("no agent configuration for {host}"))?;
            edit_file(conf, "<agent>\n", &format!("<agent>\n    {line}\n"))
        })
        .await
    }

    /// Like [`Scenario::start`], with `line` added to the `<agent>` section of every agent's
    /// configuration.
    pub async fn start_with_every_agent_setting(
        lab: &'a Lab,
        extra_keys: &str,
        line: &str,
    ) -> anyhow::Result<Scenario<'a>> {
        Self::start_edited(lab, extra_keys, |configs| {
            for conf in configs.agents.values() {
                edit_file(conf, "<agent>\n", &format!("<agent>\n    {line}\n"))?;
            }
            Ok(())
        })
        .await
    }

    /// Like [`Scenario::start`], with the writer role on `hosts` (e.g. a replica made
    /// writer-eligible too) instead of the two masters.
    pub async fn start_with_writer_hosts(
        lab: &'a Lab,
        extra_keys: &str,
        hosts: &[&str],
    ) -> anyhow::Result<Scenario<'a>> {
        let masters: Vec<&str> = lab
            .hosts()
            .iter()
            .filter(|h| h.mode == crate::lab::HostMode::Master)
            .map(|h| h.name.as_str())
            .collect();
        Self::start_edited(lab, extra_keys, |configs| {
            edit_file(
                &configs.common,
                &format!("<role writer>\n    hosts {}\n", masters.join(", ")),
                &format!("<role writer>\n    hosts {}\n", hosts.join(", ")),
            )
        })
        .await
    }

    /// Writes the configuration files, lets `edit` change them, starts every agent and monitor and
    /// waits as [`Scenario::start`] does.
    async fn start_edited(
        lab: &'a Lab,
        extra_keys: &str,
        edit: impl FnOnce(&crate::configs::LabConfigs) -> anyhow::Result<()>,
    ) -> anyhow::Result<Scenario<'a>> {
        let mut cluster = MmmCluster::configure(lab, extra_keys, false)?;
        edit(&cluster.configs)?;
        for h in lab.hosts() {
            cluster.start_agent(&h.name)?;
        }
        for m in lab.monitors() {
            cluster.start_monitor(&m.name)?;
        }
        Self::with_cluster(lab, cluster).await
    }

    /// The writer `old`'s mysqld dies and the cluster fails over; then `old` comes back with a
    /// transaction nobody else has (committed by hand while its agent was stopped: never acknowledged
    /// to any client of the oracle) and its agent is started again. Returns `old`'s GTID position.
    pub async fn old_master_returns_with_errant(&mut self, old: &str) -> anyhow::Result<String> {
        let lab = self.lab;
        lab.kill_mysqld(old).await?;
        let new = self.wait_new_writer(old, FAILOVER).await?;
        self.wait_more_acks(50, FAILOVER).await?;
        // Its agent has applied "no roles" (it was up): stop it, start mysqld unmanaged and commit.
        self.cluster
            .wait_show(
                Duration::from_secs(10),
                "the old writer without roles",
                |s| s.hosts.iter().any(|h| h.name == old && h.roles.is_empty()),
            )
            .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.kill_agent(old)?;
        lab.start_mysqld(old).await?;
        lab.exec(
            old,
            "INSERT INTO app.oracle_ins (id, client, server_id) VALUES (999999999, 'by hand', @@server_id)",
        )
        .await?;
        let pos = lab.gtid_current_pos(old).await?;
        self.start_agent(old)?;
        tracing::info!(old, new = %new, position = %pos, "old master back with an errant transaction");
        Ok(pos)
    }

    /// Like [`Scenario::start`] with a cluster the caller started (e.g. with skewed clocks).
    pub async fn with_cluster(
        lab: &'a Lab,
        cluster: MmmCluster<'a>,
    ) -> anyhow::Result<Scenario<'a>> {
        cluster.wait_all_online("db1", SETTLE).await?;
        Ok(Scenario {
            lab,
            cluster,
            oracle: None,
            client_rt: None,
            links_down: BTreeSet::new(),
            agents_down: BTreeSet::new(),
            repaired: Vec::new(),
            set_online_by_hand: Vec::new(),
            operator_set_online: false,
        })
    }

    /// Starts the oracle's clients in [`CLIENT_NS`] and waits for some acknowledged writes.
    pub async fn load(&mut self) -> anyhow::Result<()> {
        self.load_with(|_| Vec::new()).await
    }

    /// [`Scenario::load`] with more clients, made for the client namespace's runtime.
    pub async fn load_with(
        &mut self,
        extra: impl FnOnce(tokio::runtime::Handle) -> Vec<crate::oracle::ClientSpec>,
    ) -> anyhow::Result<()> {
        let rt = NsRuntime::start(&self.lab.client(CLIENT_NS).ns)?;
        let oracle = Oracle::start(
            self.lab,
            OracleSpec {
                client_site: Some(rt.handle()),
                extra_clients: extra(rt.handle()),
                ..OracleSpec::default()
            },
        )
        .await?;
        self.client_rt = Some(rt);
        // Some history before the fault: the tables are long replicated (a replica killed right after
        // applying DDL can restart with a GTID position older than its binlog, which strict mode refuses).
        oracle.wait_acks(100, Duration::from_secs(20)).await?;
        self.oracle = Some(oracle);
        Ok(())
    }

    /// Waits until `n` more writes were acknowledged (by any of the oracle's writers).
    pub async fn wait_more_acks(&self, n: u64, timeout: Duration) -> anyhow::Result<()> {
        let o = self.oracle.as_ref().context("the load is not running")?;
        o.wait_acks(o.acked() + n, timeout).await
    }

    /// The writer as `show` says.
    pub async fn writer(&self) -> anyhow::Result<String> {
        owner_of_role(&self.cluster.show().await?, "writer").context("no writer")
    }

    /// The Raft leader as any running monitor knows it.
    pub async fn leader(&self) -> anyhow::Result<String> {
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
    pub async fn wait_new_writer(&self, old: &str, timeout: Duration) -> anyhow::Result<String> {
        let s = self
            .cluster
            .wait_show(timeout, &format!("writer moved away from {old}"), |s| {
                owner_of_role(s, "writer").is_some_and(|w| w != old)
            })
            .await?;
        owner_of_role(&s, "writer").context("no writer")
    }

    /// kill -9 of a host's agent (started again by the heal).
    pub fn kill_agent(&mut self, host: &str) -> anyhow::Result<()> {
        self.cluster.kill_agent(host)?;
        self.agents_down.insert(host.to_string());
        Ok(())
    }

    /// Starts a host's agent again.
    pub fn start_agent(&mut self, host: &str) -> anyhow::Result<()> {
        self.cluster.start_agent(host)?;
        self.agents_down.remove(host);
        Ok(())
    }

    /// Pulls a host's link (plugged back by the heal).
    pub async fn link_down(&mut self, host: &str) -> anyhow::Result<()> {
        self.lab.link_down(host).await?;
        self.links_down.insert(host.to_string());
        Ok(())
    }

    /// Plugs a host's link back in.
    pub async fn link_up(&mut self, host: &str) -> anyhow::Result<()> {
        self.lab.link_up(host).await?;
        self.links_down.remove(host);
        Ok(())
    }

    /// Undoes every fault: processes resumed, blocks removed, links up, agents started (before their
    /// mysqld, so that a server whose agent died never comes up unmanaged), mysqlds and monitors started.
    /// Then waits for every host to be ONLINE, repairing (as an operator would) hosts reported with errant
    /// transactions and replicas stopped by strict mode; the repairs are recorded in `repaired`.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        self.cluster.resume_all()?;
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

    /// Waits until every host is ONLINE and some host is the writer; a host shown with errant transactions
    /// is repaired and set online.
    async fn wait_all_online_repairing(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        // All ONLINE must hold for a while: a returning host can be put back before its errant check ran.
        let mut online_since: Option<Instant> = None;
        let mut awaiting_since: std::collections::BTreeMap<String, Instant> = Default::default();
        let hosts: Vec<String> = self.lab.hosts().iter().map(|h| h.name.clone()).collect();
        while Instant::now() < deadline {
            // A mysqld its agent killed (the fence's last resort) is started again, as systemd does.
            for h in &hosts {
                if !self.lab.mysqld_running(h) {
                    eprintln!("{h}: mysqld not running (killed by its agent?): starting it again");
                    self.lab.start_mysqld(h).await?;
                }
            }
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
                        let awaiting = h.state == HostState::AwaitingRecovery as i32;
                        if !awaiting {
                            awaiting_since.remove(&h.name);
                        }
                        let since = *awaiting_since
                            .entry(h.name.clone())
                            .or_insert_with(Instant::now);
                        if awaiting
                            && self.operator_set_online
                            && h.errant_gtids.is_empty()
                            && since.elapsed() > Duration::from_secs(10)
                        {
                            let out = self.cluster.mmmctl(&["set_online", &h.name])?;
                            eprintln!(
                                "{} stayed AWAITING_RECOVERY (flapping?): set_online: {}",
                                h.name,
                                String::from_utf8_lossy(&out.stdout).trim()
                            );
                            self.set_online_by_hand.push(h.name.clone());
                            awaiting_since.remove(&h.name);
                        }
                        if awaiting
                            && h.errant_gtids.is_empty()
                            && !self.repaired.iter().any(|r| r.starts_with(&h.name))
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

    /// The operator's repair of a host with errant transactions: a rebuild of the application data from
    /// the writer. With the host's agent stopped, a consistent snapshot of the writer's `app` tables and
    /// the GTID position it corresponds to (`START TRANSACTION WITH CONSISTENT SNAPSHOT` and
    /// `BINLOG_GTID_POS` of the snapshot's binlog position) replace the host's tables (not logged), its
    /// binlog is reset to that position, replication continues from there, and `set_online` puts it back.
    async fn repair_errant(&mut self, host: &str, master: &str) -> anyhow::Result<()> {
        if !self.agents_down.contains(host) {
            self.kill_agent(host)?;
        }
        let mut h = self.lab.mysql(host).await?;
        let mut m = self.lab.mysql(master).await?;
        h.query_drop("STOP SLAVE").await?;
        let before: String = h
            .query_first("SELECT @@gtid_binlog_state")
            .await?
            .unwrap_or_default();
        let tables: Vec<String> = m
            .query(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' \
                 AND TABLE_TYPE = 'BASE TABLE'",
            )
            .await?;
        m.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            .await?;
        let file: Option<(String, String)> = m
            .query_first("SHOW STATUS LIKE 'Binlog_snapshot_file'")
            .await?;
        let pos: Option<(String, String)> = m
            .query_first("SHOW STATUS LIKE 'Binlog_snapshot_position'")
            .await?;
        let (file, pos) = (
            file.context("Binlog_snapshot_file")?.1,
            pos.context("Binlog_snapshot_position")?.1,
        );
        let gtid: Option<String> = m
            .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file.clone(), pos.clone()))
            .await?;
        let gtid = gtid.context("BINLOG_GTID_POS")?;
        let mut copies = Vec::new();
        for t in &tables {
            let rows: Vec<mysql_async::Row> = m.query(format!("SELECT * FROM app.{t}")).await?;
            copies.push((t.clone(), rows));
        }
        m.query_drop("COMMIT").await?;
        h.query_drop("SET SESSION sql_log_bin = 0").await?;
        let mut copied = 0;
        for (t, rows) in copies {
            h.query_drop(format!("DELETE FROM app.{t}")).await?;
            for r in rows {
                let vals: Vec<mysql_async::Value> = r.unwrap();
                let marks = vec!["?"; vals.len()].join(", ");
                h.exec_drop(format!("INSERT INTO app.{t} VALUES ({marks})"), vals)
                    .await?;
                copied += 1;
            }
        }
        h.query_drop("RESET MASTER").await?;
        h.query_drop(format!("SET GLOBAL gtid_binlog_state = '{gtid}'"))
            .await?;
        h.query_drop(format!("SET GLOBAL gtid_slave_pos = '{gtid}'"))
            .await?;
        eprintln!(
            "repair {host}: rebuilt from {master}'s snapshot at {gtid} ({file}:{pos}, {copied} rows); binlog \
             state was {before:?}"
        );
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
        self.repaired.push(format!("{host} (errant transactions)"));
        Ok(())
    }

    /// A replica whose SQL thread stopped on MariaDB's strict-mode error 1950 after a kill -9: its binlog
    /// kept transactions its InnoDB data (and `gtid_slave_pos`, stored in InnoDB) lost, so replication
    /// re-applies one the binlog already has. InnoDB is the truth: the binlog is reset and replication
    /// re-applies what InnoDB lacks. Not for a binlog ahead with the host's own transactions the writer
    /// lacks (an old writer's tail: errant, reported by the errant check). Returns whether it repaired
    /// anything.
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
        let (binlog, slave, own): (String, String, u32) = c
            .query_first("SELECT @@gtid_binlog_pos, @@gtid_slave_pos, @@server_id")
            .await?
            .unwrap_or_default();
        // A binlog ahead with the host's *own* transactions that the writer lacks is an old writer's
        // unacknowledged tail: errant, for the errant check to report (and the operator to rebuild),
        // never reset here.
        let writer_pos: String = match self.writer().await {
            Ok(w) if w != host => match self.lab.mysql_timeout(&w, Duration::from_secs(1)).await {
                Ok(mut wc) => wc
                    .query_first("SELECT CONCAT(@@gtid_binlog_pos, ',', @@gtid_slave_pos)")
                    .await?
                    .unwrap_or_default(),
                Err(_) => return Ok(false),
            },
            _ => return Ok(false),
        };
        let writer_seqs = gtid_seqs_by_server(&writer_pos);
        let own_tail_lacking = gtids(&binlog).any(|(domain, sid, seq)| {
            sid == own && writer_seqs.get(&(domain, sid)).is_none_or(|&w| seq > w)
        });
        if own_tail_lacking {
            return Ok(false);
        }
        let pos = (binlog, slave);
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

    /// Every role change in `mmmctl history`: each server that acknowledged writes through the writer VIP
    /// was named the writer there, the client saw no more writer changes than the history has, and the last
    /// writer decision names the current writer.
    async fn check_history(&self, history: &oracle::History) -> anyhow::Result<()> {
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
        // Writer changes: consecutive decisions naming the same host are one (a move commits several).
        let mut changes: Vec<&String> = writer_to.iter().collect();
        changes.dedup();
        let name_of = |sid: u32| {
            self.lab
                .hosts()
                .iter()
                .find(|h| h.server_id == sid)
                .map(|h| h.name.clone())
        };
        let vip = self.lab.writer_vip();
        let mut runs: Vec<u32> = Vec::new();
        let mut acks: Vec<&oracle::Event> = history
            .events
            .iter()
            .filter(|e| e.is_write_ack() && history.clients[e.client].target == vip)
            .collect();
        acks.sort_by_key(|e| e.done);
        for e in acks {
            let Some(sid) = e.server_id else { continue };
            if runs.last() != Some(&sid) {
                runs.push(sid);
            }
        }
        for sid in runs.iter().collect::<BTreeSet<_>>() {
            let host = name_of(*sid).with_context(|| format!("unknown server id {sid}"))?;
            if !writer_to.contains(&host) {
                bail!("{host} accepted writes through the writer VIP but mmmctl history never named it writer: {writer_to:?}");
            }
        }
        if runs.len() > changes.len() {
            bail!(
                "the writer VIP's writes went to {} runs of servers {runs:?} but mmmctl history has only {} writer \
                 changes {changes:?}",
                runs.len(),
                changes.len()
            );
        }
        let current = self.writer().await?;
        if writer_to.last() != Some(&current) {
            bail!("the last writer decision in mmmctl history is {writer_to:?}, the writer is {current}");
        }
        Ok(())
    }

    /// Heals, stops the clients and checks everything the module docs list; returns the oracle's report.
    /// On failure the processes' logs are copied to `/tmp/mmm-faults-logs/<scenario>`.
    pub async fn finish(self, scenario: &str, expect: Expect) -> anyhow::Result<OracleReport> {
        let lab = self.lab;
        let r = match self.finish_judged(scenario, expect).await {
            Ok(j) if j.problems.is_empty() => Ok(j.report),
            Ok(j) => Err(anyhow::anyhow!(
                "{scenario}:\n  {}",
                j.problems.join("\n  ")
            )),
            Err(e) => Err(e),
        };
        if r.is_err() {
            save_logs(lab, scenario);
        }
        r
    }

    /// Like [`Scenario::finish`], returning the verdict instead of failing on it (the soak benchmark
    /// counts findings over many runs). Errors only when the cluster could not be healed or judged.
    pub async fn finish_judged(mut self, scenario: &str, expect: Expect) -> anyhow::Result<Judged> {
        self.heal().await?;
        // A few writes after the cluster is whole again.
        self.wait_more_acks(20, Duration::from_secs(15)).await?;
        let writer = self.writer().await?;
        let oracle = self.oracle.take().context("the load was never started")?;
        let hosts: Vec<String> = self.lab.hosts().iter().map(|h| h.name.clone()).collect();
        let converge: Vec<&str> = hosts
            .iter()
            .map(String::as_str)
            .filter(|h| *h != writer)
            .collect();
        let evidence = oracle.stop_evidence(self.lab, &writer, &converge).await?;
        drop(self.client_rt.take());
        let report = oracle::judge(&evidence);
        eprintln!("{}", report.summary(scenario));
        eprintln!("FAULT-REPAIRS {scenario}: {:?}", self.repaired);
        eprintln!(
            "FAULT-KILLS {scenario}: {:?} (mysqld killed by its agent, the fence's last resort)",
            killed_by_agents(self.lab)
        );
        let mut problems = Vec::new();
        let mut findings = Vec::new();
        for f in report.findings() {
            if undone_read_tolerated(f, &expect, &self.repaired) {
                eprintln!("FAULT-TOLERATED {scenario}: {f}");
            } else {
                problems.push(format!("oracle: {f}"));
                findings.push(f.clone());
            }
        }
        let outage = report
            .clients
            .iter()
            .filter(|c| c.role == Role::Writer && c.name.starts_with("vip-writer"))
            .map(|c| c.longest_outage)
            .max()
            .unwrap_or_default();
        eprintln!("FAULT-OUTAGE {scenario}: {outage:?} through the writer VIP");
        if outage > expect.outage {
            problems.push(format!(
                "the write outage through the writer VIP was {outage:?}, more than the {:?} allowed",
                expect.outage
            ));
        }
        if !expect.repairs && !self.repaired.is_empty() {
            problems.push(format!(
                "hosts needed an operator's repair, which this scenario does not allow: {:?}",
                self.repaired
            ));
        }
        if let Err(e) = self.check_history(&evidence.history).await {
            problems.push(format!("{e:#}"));
        }
        let writer_changes = self.writer_changes().await.unwrap_or(0);
        Ok(Judged {
            report,
            findings,
            problems,
            outage,
            writer_changes,
            repaired: self.repaired.clone(),
        })
    }

    /// Number of times the writer changed hosts in `mmmctl history` (the first writer included).
    pub async fn writer_changes(&self) -> anyhow::Result<usize> {
        let out = self.cluster.mmmctl(&["--json", "history", "1000"])?;
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("mmmctl --json history")?;
        let mut to: Vec<String> = v["decisions"]
            .as_array()
            .context("decisions")?
            .iter()
            .filter(|d| d["role"].as_str() == Some("active_master"))
            .filter_map(|d| d["to"].as_str().map(str::to_string))
            .filter(|t| t != "-")
            .collect();
        to.dedup();
        Ok(to.len())
    }
}

/// Whether a finding is a read of writes that were never acknowledged and were undone later, and the
/// scenario allows it.
///
/// Such reads show as list reads that are not a prefix of the final list and as a counter going back on
/// one server. Two cases allow them:
/// - `expect.repairs` and every offending read was served by a host rebuilt from the writer afterwards
///   (`repaired`, each entry starting with the host's name): what its readers saw before was its own
///   tail that nobody acknowledged (a commit left by a crash or a demotion while it waited for its
///   semi-synchronous acknowledgement, which MariaDB keeps when the server starts again). A read of such
///   a write served by any other host is still a finding.
/// - `expect.reads_of_undone_writes` (clients cut off with the old writer): list reads from any host, and
///   counters going back on a repaired host.
pub fn undone_read_tolerated(f: &oracle::Finding, expect: &Expect, repaired: &[String]) -> bool {
    let is_repaired = |host: &str| {
        repaired
            .iter()
            .any(|r| r.split_whitespace().next() == Some(host))
    };
    match f {
        oracle::Finding::ListNotPrefix { served_by, .. } => {
            expect.reads_of_undone_writes
                || (expect.repairs
                    && !served_by.is_empty()
                    && served_by.iter().all(|h| is_repaired(h)))
        }
        oracle::Finding::NonMonotonicRead { host, .. } => {
            (expect.repairs || expect.reads_of_undone_writes) && is_repaired(host)
        }
        _ => false,
    }
}

/// The verdict of a finished scenario.
#[derive(Debug)]
pub struct Judged {
    /// The oracle's report.
    pub report: OracleReport,
    /// The report's findings the scenario does not tolerate ([`undone_read_tolerated`]): what a test
    /// that judges findings itself must look at.
    pub findings: Vec<oracle::Finding>,
    /// Everything held against the run (empty: passed).
    pub problems: Vec<String>,
    /// Longest write outage through the writer VIP.
    pub outage: Duration,
    /// Writer changes in the history (the first writer included).
    pub writer_changes: usize,
    /// Hosts repaired by hand.
    pub repaired: Vec<String>,
}

/// Copies the lab's logs to `/tmp/mmm-faults-logs/<scenario>` for a failed scenario.
pub fn save_logs(lab: &Lab, scenario: &str) {
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

/// Every host ONLINE and a writer.
pub fn all_online(s: &ShowReply, n: usize) -> bool {
    s.hosts.len() == n
        && s.hosts.iter().all(|h| h.state == HostState::Online as i32)
        && owner_of_role(s, "writer").is_some()
}

/// The hosts whose agent killed their mysqld (the fence's last resort), from the agents' logs.
pub fn killed_by_agents(lab: &Lab) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(lab.dir().join("logs")) else {
        return Vec::new();
    };
    let mut hosts: Vec<String> = dir
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let host = name.strip_prefix("agent-")?.split('-').next()?.to_string();
            let text = std::fs::read_to_string(e.path()).ok()?;
            text.contains("mysqld killed (kill -9)").then_some(host)
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Replaces the first `from` in the file at `path` by `to`; an error when `from` is not there.
fn edit_file(path: &std::path::Path, from: &str, to: &str) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !text.contains(from) {
        bail!("{from:?} not found in {}", path.display());
    }
    std::fs::write(path, text.replacen(from, to, 1))
        .with_context(|| format!("cannot write {}", path.display()))
}
