//! An independent split-brain and lost-write oracle for the lab.
//!
//! The oracle never talks to mmm-monitor or mmm-agent. It judges from what the servers say about themselves
//! and from what its own clients were told (acknowledgements), so it sees what an application would see,
//! including an application pinned to one server's own address or stuck in an old writer's partition.
//!
//! # What is recorded
//!
//! - **Sampler** ([`sampler`]): every `sample_interval` ([`DEFAULT_SAMPLE_INTERVAL`], 20 ms) and for every DB
//!   host, `@@global.read_only` over a root connection through the server's unix socket, and which configured
//!   VIPs are on the host (a netlink address dump made inside its namespace). Each sample keeps when it was
//!   sent and when the answer came; no answer within [`sampler::SAMPLE_TIMEOUT`] is recorded as `None`
//!   ("not seen writable"). Samples are stored as runs of equal values ([`Timeline`]).
//! - **Clients** ([`clients`]): probe writers to each master's own address, writers through the writer VIP,
//!   readers through the reader VIPs, each with its own connection (re-made after any error) and every
//!   operation bounded by `op_timeout`. Workloads ([`Workloads`]): unique inserts, CAS registers shared by
//!   every writer ([`cas`]), list-append ([`list`]), and counter reads. An operation that timed out or broke
//!   its connection is *unknown*: never counted as acknowledged nor as failed for sure.
//! - **Final data** ([`state`]): at [`Oracle::stop`], the tables on the final writer and on the hosts that
//!   must converge with it, read through their unix sockets after waiting (bounded) for them to converge.
//!
//! # What counts as a finding ([`judge`])
//!
//! - **Two writable**: a window where two servers were both sampled `read_only=0`. A host's writable window
//!   runs, conservatively, from the first `0` sample's answer to the last consecutive `0` sample's question;
//!   a single `0` sample makes no window.
//! - **Split brain by acknowledgements** (primary evidence, independent of sampling luck): server A
//!   acknowledged a write x, server B then acknowledged y, and A acknowledged a write x2 sent after y was
//!   acknowledged (`y.acked < x2.sent`: the order is certain), while no sample of A taken entirely between
//!   x's ack and x2's sending showed it non-writable (`read_only=1` or no answer). A legitimate move back to A
//!   demotes A first, which the sampler sees.
//! - **Write on a read-only server**: a write acknowledged by a server whose samples just before it was sent
//!   and just after it was acknowledged both showed `read_only=1`, with no `0` between (a privileged account
//!   or a lock holder writing through `read_only`).
//! - **CAS duplicate** (logical split brain, timing-free): two acknowledged CAS operations that set the same
//!   register to the same value, from two servers or from one server twice.
//! - **Lost**: an acknowledged insert, list element, or CAS value missing from the final data (a register's
//!   final value below the highest acknowledged value: values only grow).
//! - **List order**: a list read that is not a prefix of the final list (of the longest read when the final
//!   data cannot be read), or an element at two positions.
//! - **Non-monotonic reads**: one server answering a counter read with less than a read from it that had
//!   completed before. Regressions across servers are counted, not findings (replicas lag differently).
//! - **Not converged / unreadable**: a host named as having to converge differs from the final writer.
//!
//! Measured, not judged: **writer VIP overlaps** (two hosts sampled holding the writer VIP; a planned
//! switchover legitimately overlaps for a few milliseconds while the old writer is read-only, so the caller
//! decides on a bound), per client the longest time without a successful operation, and op counts.
//!
//! # Limits
//!
//! Sampling can miss a flip shorter than the sample interval (a server writable for 10 ms between two
//! samples), and the conservative windows shorten every window by up to one sample on each side: the two
//! sampler rules under-report. The acknowledgement rules cannot miss writes that were acknowledged, but need
//! the clients to hit both servers; CAS duplicates need contention on a key. Conversely, a demotion that is
//! undone between two samples would make the acknowledgement rule fire for a legitimate failback; a real
//! failback takes far longer than one interval.

pub mod cas;
pub mod clients;
pub mod history;
pub mod judge;
pub mod list;
pub mod netns;
pub mod sampler;
pub mod state;
pub mod timeline;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mysql_async::prelude::Queryable;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use clients::{Account, ClientSpec};
pub use history::{ClientInfo, Event, History, Op, Outcome, Role};
pub use judge::{judge, ClientStats, Evidence, Finding, LostWrite, OracleReport, Overlap};
pub use netns::NsRuntime;
pub use sampler::Samples;
pub use state::FinalState;
pub use timeline::{Run, SampleTimes, Timeline};

use crate::{HostMode, Lab};

/// Default sampling period: often enough that a writable window of a few tens of milliseconds is seen, rare
/// enough that four hosts cost a few percent of one core (two cheap queries per host per period).
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_millis(20);
/// Default bound on one client operation: a healthy lab answers in a few milliseconds; anything slower is
/// an outage worth calling unknown.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(250);
/// Default pause between two operations of one client: about 100 operations per second per client, enough
/// contention on the CAS keys to expose two writers within a second.
pub const DEFAULT_OP_INTERVAL: Duration = Duration::from_millis(10);
/// How long [`Oracle::start`] keeps trying to create the tables (the writer may still be starting).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Oracle::start`] waits for the tables to replicate to every host: seconds in a healthy lab; a
/// host that is down on purpose only costs this once.
const TABLES_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Oracle::stop`] waits for the converging hosts to have the final writer's data.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between two looks while waiting.
const POLL: Duration = Duration::from_millis(100);
/// Unique ids of one oracle run: room for 1,000 clients of [`clients::CLIENT_SPAN`] ids each.
const RUN_SPAN: u64 = clients::CLIENT_SPAN * 1000;

/// Which write workloads the writers run (in turn, one operation each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workloads {
    /// Unique inserts (throughput and lost writes).
    pub insert: bool,
    /// CAS registers shared by every writer.
    pub cas: bool,
    /// List-append on shared lists.
    pub list: bool,
}

impl Workloads {
    /// Every workload.
    pub const ALL: Workloads = Workloads {
        insert: true,
        cas: true,
        list: true,
    };
}

/// What the oracle runs.
#[derive(Debug, Clone)]
pub struct OracleSpec {
    /// Sampling period of `read_only` and VIPs.
    pub sample_interval: Duration,
    /// Bound on connecting and on each operation.
    pub op_timeout: Duration,
    /// Pause between two operations of a client.
    pub op_interval: Duration,
    /// One probe writer per master, to the master's own address (an application pinned to that host).
    pub probes: bool,
    /// Number of writers through the writer VIP.
    pub vip_writers: usize,
    /// One reader per reader VIP.
    pub readers: bool,
    /// One more reader through the writer VIP (reads from the writer must be monotonic too).
    pub writer_vip_reader: bool,
    /// What the writers do.
    pub workloads: Workloads,
    /// Where the probes, VIP writers and readers run (a namespace's runtime handle; `None`: the caller's
    /// runtime in the root namespace). The runtime must outlive the oracle: a client whose runtime is gone
    /// has its events dropped.
    pub client_site: Option<tokio::runtime::Handle>,
    /// More clients (each with its own site), e.g. a root writer to prove writes through `read_only` are seen.
    pub extra_clients: Vec<ClientSpec>,
    /// Where the tables are created (the writer at start); `None`: the writer VIP.
    pub setup_target: Option<Ipv4Addr>,
}

impl Default for OracleSpec {
    fn default() -> Self {
        Self {
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
            op_timeout: DEFAULT_OP_TIMEOUT,
            op_interval: DEFAULT_OP_INTERVAL,
            probes: true,
            vip_writers: 1,
            readers: true,
            writer_vip_reader: false,
            workloads: Workloads::ALL,
            client_site: None,
            extra_clients: Vec::new(),
            setup_target: None,
        }
    }
}

/// A running oracle. Dropping it without [`Oracle::stop`] aborts its tasks.
pub struct Oracle {
    /// When the clients were started (time zero).
    started: Instant,
    /// Host names and server ids.
    hosts: Vec<(String, u32)>,
    /// The writer VIP (for the overlap measurement).
    writer_vip: Ipv4Addr,
    /// The sampler (taken at stop).
    sampler: Option<sampler::Sampler>,
    /// One runtime per DB host namespace, for the VIP sampler's netlink sockets; dropped after the sampler.
    runtimes: BTreeMap<String, NsRuntime>,
    /// The clients in history order.
    clients: Vec<ClientInfo>,
    /// The client tasks (taken when they are stopped).
    tasks: Vec<JoinHandle<Vec<Event>>>,
    /// Tells the clients to stop.
    stop_tx: watch::Sender<bool>,
    /// Acknowledged writes of every client so far.
    acked: Arc<AtomicU64>,
    /// The longest bound on one operation of any client (for the stop grace).
    op_timeout: Duration,
    /// The merged history, once the clients are stopped.
    history: Option<History>,
}

impl std::fmt::Debug for Oracle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oracle")
            .field("clients", &self.clients)
            .field("acked", &self.acked())
            .finish()
    }
}

/// Creates the tables through `target` as the application user; returns the first unique id of this run.
async fn setup(target: Ipv4Addr, op_timeout: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let bound = op_timeout.max(Duration::from_secs(2));
    loop {
        let attempt = async {
            let mut c = crate::mariadb::connect(
                target,
                crate::users::APP_USER,
                crate::users::APP_PASSWORD,
                Some(crate::users::APP_DB),
                bound,
            )
            .await?;
            for sql in clients::schema()
                .into_iter()
                .chain(cas::schema())
                .chain(list::schema())
            {
                tokio::time::timeout(bound, c.query_drop(&sql))
                    .await
                    .with_context(|| format!("`{sql}` timed out"))??;
            }
            let max: Option<u64> = tokio::time::timeout(
                bound,
                c.query_first(format!(
                    "SELECT CAST(GREATEST(COALESCE((SELECT MAX(id) FROM {}), 0), \
                     COALESCE((SELECT MAX(elem) FROM {}), 0)) AS UNSIGNED)",
                    clients::INSERT_TABLE,
                    list::TABLE
                )),
            )
            .await
            .context("reading the largest id timed out")??;
            let _ = tokio::time::timeout(bound, c.disconnect()).await;
            anyhow::Ok((max.unwrap_or(0) / RUN_SPAN + 1) * RUN_SPAN)
        };
        match attempt.await {
            Ok(base) => return Ok(base),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!(
                    "creating the oracle's tables through {target}: still failing after {SETUP_TIMEOUT:?}"
                )))
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Waits until every host has the oracle's tables and rows (replicated from the setup target); a host that
/// does not within the bound is only warned about (it may be down on purpose).
async fn wait_tables(lab: &Lab) {
    let deadline = Instant::now() + TABLES_TIMEOUT;
    for h in lab.hosts() {
        loop {
            let ok = async {
                let mut c = sampler::connect_socket(&h.socket, Duration::from_secs(2)).await?;
                let n: Option<u64> = tokio::time::timeout(
                    Duration::from_secs(2),
                    c.query_first(format!(
                        "SELECT (SELECT COUNT(*) FROM {db}.{}) + (SELECT COUNT(*) FROM {db}.{}) + \
                         (SELECT COUNT(*) FROM {db}.{} WHERE 0)",
                        cas::TABLE,
                        list::HEAD_TABLE,
                        clients::INSERT_TABLE,
                        db = crate::users::APP_DB
                    )),
                )
                .await??;
                let _ = c.disconnect().await;
                anyhow::Ok(n == Some(u64::from(cas::KEYS + list::KEYS)))
            }
            .await
            .unwrap_or(false);
            if ok {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(host = %h.name, "the oracle's tables did not reach this host");
                break;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Oracle {
    /// Creates the tables, starts the sampler on every host and the clients the spec asks for.
    pub async fn start(lab: &Lab, spec: OracleSpec) -> anyhow::Result<Oracle> {
        if spec.op_timeout.is_zero() || spec.sample_interval.is_zero() {
            bail!("the oracle's op_timeout and sample_interval must be more than zero");
        }
        let writer_vip = lab.writer_vip();
        let target = spec.setup_target.unwrap_or(writer_vip);
        let id_base = setup(target, spec.op_timeout).await?;
        wait_tables(lab).await;

        let mut runtimes = BTreeMap::new();
        for h in lab.hosts() {
            runtimes.insert(h.name.clone(), NsRuntime::start(&h.ns)?);
        }
        let configured: BTreeSet<Ipv4Addr> = std::iter::once(writer_vip)
            .chain(lab.reader_vips())
            .collect();
        let sampled: Vec<sampler::SampledHost> = lab
            .hosts()
            .iter()
            .map(|h| sampler::SampledHost {
                name: h.name.clone(),
                socket: h.socket.clone(),
            })
            .collect();
        let sampler =
            sampler::Sampler::start(&sampled, &runtimes, &configured, spec.sample_interval);

        let mut specs: Vec<ClientSpec> = Vec::new();
        let client = |name: String, target, role| ClientSpec {
            name,
            target,
            role,
            account: Account::App,
            site: spec.client_site.clone(),
            op_timeout: None,
        };
        if spec.probes {
            for h in lab.hosts().iter().filter(|h| h.mode == HostMode::Master) {
                specs.push(client(format!("probe-{}", h.name), h.ip, Role::Writer));
            }
        }
        for i in 1..=spec.vip_writers {
            specs.push(client(format!("vip-writer-{i}"), writer_vip, Role::Writer));
        }
        if spec.readers {
            for vip in lab.reader_vips() {
                specs.push(client(format!("reader-{vip}"), vip, Role::Reader));
            }
        }
        if spec.writer_vip_reader {
            specs.push(client(
                format!("reader-{writer_vip}"),
                writer_vip,
                Role::Reader,
            ));
        }
        specs.extend(spec.extra_clients.iter().cloned());
        let names: BTreeSet<&str> = specs.iter().map(|c| c.name.as_str()).collect();
        if names.len() != specs.len() {
            bail!("the oracle's client names must be unique");
        }

        let longest_op_timeout = specs
            .iter()
            .filter_map(|c| c.op_timeout)
            .fold(spec.op_timeout, Duration::max);
        let (stop_tx, stop_rx) = watch::channel(false);
        let acked = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut clients = Vec::new();
        let mut tasks = Vec::new();
        for (index, c) in specs.into_iter().enumerate() {
            let info = ClientInfo {
                name: c.name.clone(),
                role: c.role,
                target: c.target,
            };
            let run = clients::ClientRun {
                index,
                info: info.clone(),
                account: c.account,
                workloads: spec.workloads,
                op_timeout: c.op_timeout.unwrap_or(spec.op_timeout),
                op_interval: spec.op_interval,
                id_base: id_base + index as u64 * clients::CLIENT_SPAN,
                acked: acked.clone(),
            };
            let fut = clients::run(run, stop_rx.clone());
            tasks.push(match &c.site {
                Some(h) => h.spawn(fut),
                None => tokio::spawn(fut),
            });
            clients.push(info);
        }
        tracing::info!(slot = lab.slot(), clients = ?clients.iter().map(|c| &c.name).collect::<Vec<_>>(), "oracle started");
        Ok(Oracle {
            started,
            hosts: lab
                .hosts()
                .iter()
                .map(|h| (h.name.clone(), h.server_id))
                .collect(),
            writer_vip,
            sampler: Some(sampler),
            runtimes,
            clients,
            tasks,
            stop_tx,
            acked,
            op_timeout: longest_op_timeout,
            history: None,
        })
    }

    /// Acknowledged writes of all clients so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` writes were acknowledged in total.
    pub async fn wait_acks(&self, n: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.acked() < n {
            if Instant::now() >= deadline {
                bail!(
                    "the oracle's clients had {} acknowledged writes after {timeout:?}, waited for {n}",
                    self.acked()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Stops the clients (each finishes its current operation, bounded) and returns their merged history;
    /// the sampler keeps running until [`Oracle::stop`]. Calling it again returns the same history.
    pub async fn stop_clients(&mut self) -> History {
        if let Some(h) = &self.history {
            return h.clone();
        }
        let stopped = Instant::now();
        let _ = self.stop_tx.send(true);
        let grace = self.op_timeout * 3 + Duration::from_secs(1);
        let mut events = Vec::new();
        for task in std::mem::take(&mut self.tasks) {
            events.extend(sampler::join_bounded(task, grace).await.unwrap_or_default());
        }
        events.sort_by_key(|e| e.sent);
        let history = History {
            started: self.started,
            stopped,
            clients: self.clients.clone(),
            events,
        };
        self.history = Some(history.clone());
        history
    }

    /// Stops everything, reads the final data of `final_writer` and of the `converge` hosts (waiting at most
    /// [`CONVERGE_TIMEOUT`] for replication to settle and for them to equal the final writer's) and judges.
    pub async fn stop(
        self,
        lab: &Lab,
        final_writer: &str,
        converge: &[&str],
    ) -> anyhow::Result<OracleReport> {
        Ok(judge(
            &self.stop_evidence(lab, final_writer, converge).await?,
        ))
    }

    /// Like [`Oracle::stop`], returning what was recorded instead of judging it (see [`judge()`]).
    pub async fn stop_evidence(
        mut self,
        lab: &Lab,
        final_writer: &str,
        converge: &[&str],
    ) -> anyhow::Result<Evidence> {
        let history = self.stop_clients().await;
        let samples = match self.sampler.take() {
            Some(s) => s.stop().await,
            None => Samples::default(),
        };
        let final_states = final_states(lab, final_writer, converge).await?;
        Ok(Evidence {
            history,
            samples,
            hosts: self.hosts.clone(),
            writer_vip: self.writer_vip,
            final_writer: final_writer.to_string(),
            final_states,
        })
    }
}

/// Reads the final data of the final writer and the converging hosts once replication has settled on each
/// of them ([`state::settled`]) and they agree, or when [`CONVERGE_TIMEOUT`] has passed.
async fn final_states(
    lab: &Lab,
    final_writer: &str,
    converge: &[&str],
) -> anyhow::Result<BTreeMap<String, Result<FinalState, String>>> {
    let mut names = vec![final_writer];
    names.extend(converge.iter().filter(|h| **h != final_writer));
    for n in &names {
        if lab.try_host(n).is_none() {
            bail!("the lab has no DB host {n}");
        }
    }
    let sockets_by_ip = lab
        .hosts()
        .iter()
        .map(|h| (h.ip.to_string(), h.socket.clone()))
        .collect();
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let expired = Instant::now() >= deadline;
        let mut all_settled = true;
        for n in &names {
            if !state::settled(&lab.host(n).socket, &sockets_by_ip)
                .await
                .unwrap_or(false)
            {
                all_settled = false;
                break;
            }
        }
        if all_settled || expired {
            let mut out = BTreeMap::new();
            for n in &names {
                let r = state::read(&lab.host(n).socket)
                    .await
                    .map_err(|e| format!("{e:#}"));
                out.insert(n.to_string(), r);
            }
            let reference = out.get(final_writer).and_then(|r| r.as_ref().ok());
            let agreed = reference.is_some() && out.values().all(|r| r.as_ref().ok() == reference);
            if agreed || expired {
                return Ok(out);
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.stop_tx.send(true);
        for t in &self.tasks {
            t.abort();
        }
        // The sampler's tasks see the stop channel close; the namespace runtimes stop when dropped.
        self.sampler.take();
        std::mem::take(&mut self.runtimes);
    }
}
