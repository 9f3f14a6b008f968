//! Judging: pure functions from recorded [`Evidence`] (samples, the merged client history, final states) to
//! an [`OracleReport`]. The rules are stated in the module docs of [`super`]; each is one function here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::history::{Event, History, Op, Outcome, Role};
use super::sampler::Samples;
use super::state::FinalState;
use super::timeline::Timeline;

/// Triggers of one rule closer together than this are reported as one episode (with a count), so a long
/// split brain is one finding, not thousands.
pub const EPISODE_GAP: Duration = Duration::from_secs(1);
/// At most this many findings are spelled out by [`OracleReport::ensure_ok`].
const MAX_LISTED: usize = 30;

/// Everything the judge looks at.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The clients' merged history (its `started` is time zero of the report).
    pub history: History,
    /// What the sampler recorded.
    pub samples: Samples,
    /// Host name and `@@server_id` of every DB host.
    pub hosts: Vec<(String, u32)>,
    /// The writer VIP.
    pub writer_vip: Ipv4Addr,
    /// The host whose final data is the reference.
    pub final_writer: String,
    /// Final data of the final writer and of every host that must converge with it (an error text when it
    /// could not be read).
    pub final_states: BTreeMap<String, Result<FinalState, String>>,
}

/// A time window where two hosts were in the same state at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The two hosts, in name order.
    pub hosts: [String; 2],
    /// Start, relative to the history's start.
    pub start: Duration,
    /// Length.
    pub length: Duration,
}

/// An acknowledged write that the final data does not have.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LostWrite {
    /// An inserted id.
    Insert {
        /// The id.
        id: u64,
        /// The host that acknowledged it.
        by: String,
    },
    /// A register below an acknowledged value.
    Register {
        /// The register.
        key: u32,
        /// The highest acknowledged value.
        acked: u64,
        /// The value in the final data.
        found: u64,
        /// The host that acknowledged `acked`.
        by: String,
    },
    /// A list element.
    ListElement {
        /// The list.
        key: u32,
        /// The element.
        elem: u64,
        /// The host that acknowledged it.
        by: String,
    },
}

/// Something the oracle holds against the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Two servers were sampled `read_only=0` at the same time.
    TwoWritable(Overlap),
    /// `host` acknowledged writes before and after `other` acknowledged one (order certain), and was never
    /// seen non-writable in between: two servers accepted writes in the same period.
    SplitBrainByAcks {
        /// The server that kept accepting writes.
        host: String,
        /// The server that accepted writes in between.
        other: String,
        /// Number of `other`'s acks in the episode that `host` straddled.
        count: usize,
        /// `host`'s ack before (relative time of the ack).
        before: Duration,
        /// `other`'s first such ack (relative time of the ack).
        between: Duration,
        /// `host`'s write after it (relative time it was sent).
        after: Duration,
        /// `other`'s last such ack in the episode.
        last: Duration,
    },
    /// A write acknowledged by a server sampled `read_only=1` just before it was sent and just after it was
    /// acknowledged, with no `read_only=0` sample between.
    WriteOnReadOnly {
        /// The server.
        host: String,
        /// The client that wrote.
        client: String,
        /// Number of such acks in the episode.
        count: usize,
        /// First one (relative time of the ack).
        first: Duration,
        /// Last one.
        last: Duration,
    },
    /// Two acknowledged CAS operations moved the same register to the same value.
    CasDuplicate {
        /// The register.
        key: u32,
        /// The value both set.
        value: u64,
        /// Who: (client, host, relative ack time).
        acks: Vec<(String, String, Duration)>,
    },
    /// An acknowledged write missing from a host's final data.
    Lost {
        /// The host whose final data lacks it.
        host: String,
        /// What is missing.
        write: LostWrite,
    },
    /// A list read that is not a prefix of the final list (of the longest read when no final list exists).
    ListNotPrefix {
        /// The list.
        key: u32,
        /// The first offending read's client.
        client: String,
        /// When it was sent.
        at: Duration,
        /// How many reads of this list offend.
        count: usize,
        /// The hosts that served the offending reads (`?` where the connection's server is unknown): a
        /// read of a host later rebuilt from the writer may show that host's own undone tail.
        served_by: BTreeSet<String>,
        /// The read and the reference, shortened.
        detail: String,
    },
    /// An element at two positions of one list (in a read or in the final data).
    ListDuplicate {
        /// The list.
        key: u32,
        /// The element.
        elem: u64,
        /// Where it was seen (a client's read or a host's final data).
        seen_in: String,
    },
    /// A server answered a read with a smaller counter than a read from it that had completed before.
    NonMonotonicRead {
        /// The server.
        host: String,
        /// The client of the later read.
        client: String,
        /// When the later read was sent.
        at: Duration,
        /// The earlier, larger value.
        before: u64,
        /// The later, smaller value.
        after: u64,
        /// Number of such reads on this server.
        count: usize,
    },
    /// A host that must converge with the final writer has different data.
    NotConverged {
        /// The host.
        host: String,
        /// How it differs.
        detail: String,
    },
    /// A host's final data could not be read.
    FinalStateUnreadable {
        /// The host.
        host: String,
        /// Why.
        error: String,
    },
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn at(d: Duration) -> String {
    format!("+{:.3}s", d.as_secs_f64())
}

impl fmt::Display for LostWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostWrite::Insert { id, by } => write!(f, "insert id {id} (acknowledged by {by})"),
            LostWrite::Register {
                key,
                acked,
                found,
                by,
            } => write!(
                f,
                "register {key} = {acked} (acknowledged by {by}; final value {found})"
            ),
            LostWrite::ListElement { key, elem, by } => {
                write!(f, "element {elem} of list {key} (acknowledged by {by})")
            }
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::TwoWritable(o) => write!(
                f,
                "two writable servers: {} and {} both read_only=0 from {} for {}",
                o.hosts[0],
                o.hosts[1],
                at(o.start),
                ms(o.length)
            ),
            Finding::SplitBrainByAcks {
                host,
                other,
                count,
                before,
                between,
                after,
                last,
            } => write!(
                f,
                "split brain by acknowledgements: {host} acked at {}, {other} acked at {}, {host} took another \
                 write sent at {} and was never seen non-writable in between ({count} such acks by {other} \
                 until {})",
                at(*before),
                at(*between),
                at(*after),
                at(*last)
            ),
            Finding::WriteOnReadOnly {
                host,
                client,
                count,
                first,
                last,
            } => write!(
                f,
                "write accepted by read-only server {host}: {count} acks to {client} from {} to {} \
                 (sampled read_only=1 before and after each)",
                at(*first),
                at(*last)
            ),
            Finding::CasDuplicate { key, value, acks } => {
                let who: Vec<String> = acks
                    .iter()
                    .map(|(c, h, t)| format!("{c} via {h} at {}", at(*t)))
                    .collect();
                write!(
                    f,
                    "CAS duplicate: register {key} set to {value} twice: {}",
                    who.join(", ")
                )
            }
            Finding::Lost { host, write } => write!(f, "lost on {host}: {write}"),
            Finding::ListNotPrefix {
                key,
                client,
                at: t,
                count,
                served_by,
                detail,
            } => write!(
                f,
                "list {key}: read by {client} at {} is not a prefix of the final list ({count} such reads, \
                 served by {served_by:?}): {detail}",
                at(*t)
            ),
            Finding::ListDuplicate { key, elem, seen_in } => {
                write!(f, "list {key}: element {elem} at two positions in {seen_in}")
            }
            Finding::NonMonotonicRead {
                host,
                client,
                at: t,
                before,
                after,
                count,
            } => write!(
                f,
                "non-monotonic reads on {host}: {client} read {after} at {} after a completed read of {before} \
                 ({count} such reads)",
                at(*t)
            ),
            Finding::NotConverged { host, detail } => {
                write!(f, "{host} did not converge with the final writer: {detail}")
            }
            Finding::FinalStateUnreadable { host, error } => {
                write!(f, "final data of {host} unreadable: {error}")
            }
        }
    }
}

/// Counters and the longest outage of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStats {
    /// The client's name.
    pub name: String,
    /// Writer or reader.
    pub role: Role,
    /// Writes acknowledged.
    pub acked: u64,
    /// CAS operations that found the register changed (done, nothing written).
    pub cas_misses: u64,
    /// Successful reads.
    pub reads: u64,
    /// Operations (and connects) refused.
    pub failed: u64,
    /// Operations with unknown outcome.
    pub unknown: u64,
    /// Longest time without a successful write (writers) or read (readers), from start to stop.
    pub longest_outage: Duration,
}

/// The oracle's verdict and measurements.
#[derive(Debug, Clone)]
pub struct OracleReport {
    /// Everything held against the run.
    pub findings: Vec<Finding>,
    /// Windows with two servers sampled writable (also findings).
    pub two_writable: Vec<Overlap>,
    /// Windows with two hosts holding the writer VIP (not a finding by itself: a planned switchover
    /// overlaps briefly while the old writer is read-only; see [`OracleReport::vip_overlaps_over`]).
    pub writer_vip_overlaps: Vec<Overlap>,
    /// Per client counters.
    pub clients: Vec<ClientStats>,
    /// Reads that returned a smaller counter than a completed read from any server (replicas lag
    /// differently; counted, not a finding; includes the same-server regressions that are findings).
    pub cross_server_regressions: usize,
    /// Number of events in the merged history.
    pub history_len: usize,
    /// Number of samples taken (read_only and VIP, all hosts).
    pub samples: u64,
    /// From the clients' start to their stop.
    pub duration: Duration,
}

impl OracleReport {
    /// Every finding.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Fails listing every finding (at most 30 spelled out) when there is any.
    pub fn ensure_ok(&self) -> anyhow::Result<()> {
        if self.findings.is_empty() {
            return Ok(());
        }
        let mut text = format!("the oracle has {} findings:", self.findings.len());
        for f in self.findings.iter().take(MAX_LISTED) {
            text += &format!("\n  - {f}");
        }
        if self.findings.len() > MAX_LISTED {
            text += &format!("\n  - ... {} more", self.findings.len() - MAX_LISTED);
        }
        anyhow::bail!(text)
    }

    /// Writer VIP overlaps longer than `bound`.
    pub fn vip_overlaps_over(&self, bound: Duration) -> Vec<&Overlap> {
        self.writer_vip_overlaps
            .iter()
            .filter(|o| o.length > bound)
            .collect()
    }

    /// Statistics of a client by name.
    pub fn client(&self, name: &str) -> Option<&ClientStats> {
        self.clients.iter().find(|c| c.name == name)
    }

    /// The lost-write findings: the host whose final data lacks the write, and the write.
    pub fn lost(&self) -> Vec<(&str, &LostWrite)> {
        self.findings
            .iter()
            .filter_map(|f| match f {
                Finding::Lost { host, write } => Some((host.as_str(), write)),
                _ => None,
            })
            .collect()
    }

    /// One line for logs.
    pub fn summary(&self, scenario: &str) -> String {
        let split = self
            .findings
            .iter()
            .filter(|f| {
                matches!(
                    f,
                    Finding::SplitBrainByAcks { .. } | Finding::CasDuplicate { .. }
                )
            })
            .count();
        let longest = |v: &[Overlap]| v.iter().map(|o| o.length).max().unwrap_or_default();
        let outage = self
            .clients
            .iter()
            .filter(|c| c.role == Role::Writer && c.acked > 0)
            .max_by_key(|c| c.longest_outage)
            .map_or("no write acknowledged".to_string(), |c| {
                format!(
                    "longest write outage {} via {}",
                    ms(c.longest_outage),
                    c.name
                )
            });
        format!(
            "ORACLE {scenario}: findings {}, split brains {split}, lost {}, two-writable {} (longest {}), \
             vip overlaps {} (longest {}), {outage}, {} events",
            self.findings.len(),
            self.lost().len(),
            self.two_writable.len(),
            ms(longest(&self.two_writable)),
            self.writer_vip_overlaps.len(),
            ms(longest(&self.writer_vip_overlaps)),
            self.history_len
        )
    }
}

/// Judges the evidence.
pub fn judge(ev: &Evidence) -> OracleReport {
    let t0 = ev.history.started;
    let two_writable = two_writable(t0, &ev.samples);
    let writer_vip_overlaps = vip_overlaps(t0, &ev.samples, ev.writer_vip);
    let mut findings: Vec<Finding> = two_writable
        .iter()
        .cloned()
        .map(Finding::TwoWritable)
        .collect();
    findings.extend(split_brain_by_acks(ev));
    findings.extend(writes_on_read_only(ev));
    findings.extend(cas_duplicates(ev));
    findings.extend(final_state_findings(ev));
    findings.extend(list_findings(ev));
    let (monotonic, cross_server_regressions) = read_monotonicity(ev);
    findings.extend(monotonic);
    let samples = ev
        .samples
        .read_only
        .values()
        .map(Timeline::samples)
        .chain(ev.samples.vips.values().map(Timeline::samples))
        .sum();
    OracleReport {
        findings,
        two_writable,
        writer_vip_overlaps,
        clients: client_stats(&ev.history),
        cross_server_regressions,
        history_len: ev.history.events.len(),
        samples,
        duration: ev.history.stopped.saturating_duration_since(t0),
    }
}

/// Pairwise intersections of two hosts' windows.
fn overlaps(t0: Instant, windows: &BTreeMap<String, Vec<(Instant, Instant)>>) -> Vec<Overlap> {
    let names: Vec<&String> = windows.keys().collect();
    let mut out = Vec::new();
    for (i, a) in names.iter().enumerate() {
        for b in &names[i + 1..] {
            for &(s1, e1) in &windows[*a] {
                for &(s2, e2) in &windows[*b] {
                    let (s, e) = (s1.max(s2), e1.min(e2));
                    if e > s {
                        out.push(Overlap {
                            hosts: [(*a).clone(), (*b).clone()],
                            start: s.saturating_duration_since(t0),
                            length: e - s,
                        });
                    }
                }
            }
        }
    }
    out.sort_by_key(|o| o.start);
    out
}

/// Windows where two servers were sampled `read_only=0` at once.
pub fn two_writable(t0: Instant, samples: &Samples) -> Vec<Overlap> {
    let windows = samples
        .read_only
        .iter()
        .map(|(h, t)| (h.clone(), t.windows(|v| *v == Some(false))))
        .collect();
    overlaps(t0, &windows)
}

/// Windows where two hosts were sampled holding `vip` at once.
pub fn vip_overlaps(t0: Instant, samples: &Samples, vip: Ipv4Addr) -> Vec<Overlap> {
    let windows = samples
        .vips
        .iter()
        .map(|(h, t)| {
            (
                h.clone(),
                t.windows(|v| v.as_ref().is_some_and(|s| s.contains(&vip))),
            )
        })
        .collect();
    overlaps(t0, &windows)
}

/// Host name of a server id (the id as text for an unknown one).
fn host_of(ev: &Evidence, server_id: u32) -> String {
    ev.hosts
        .iter()
        .find(|(_, id)| *id == server_id)
        .map_or_else(|| format!("server {server_id}"), |(h, _)| h.clone())
}

/// Acknowledged writes per host, sorted by ack time.
fn acks_by_host(ev: &Evidence) -> BTreeMap<String, Vec<&Event>> {
    let mut out: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for e in ev.history.write_acks() {
        if let Some(id) = e.server_id {
            out.entry(host_of(ev, id)).or_default().push(e);
        }
    }
    for v in out.values_mut() {
        v.sort_by_key(|e| e.done);
    }
    out
}

/// Groups sorted trigger times into episodes separated by more than [`EPISODE_GAP`].
fn episodes<T: Clone>(mut items: Vec<(Instant, T)>) -> Vec<Vec<(Instant, T)>> {
    items.sort_by_key(|(t, _)| *t);
    let mut out: Vec<Vec<(Instant, T)>> = Vec::new();
    for it in items {
        match out.last_mut() {
            Some(ep) if ep.last().is_some_and(|(t, _)| it.0 - *t < EPISODE_GAP) => ep.push(it),
            _ => out.push(vec![it]),
        }
    }
    out
}

/// The acknowledgement rule for split brain (see the module docs of [`super`]).
pub fn split_brain_by_acks(ev: &Evidence) -> Vec<Finding> {
    let t0 = ev.history.started;
    let acks = acks_by_host(ev);
    let empty = Timeline::default();
    let mut out = Vec::new();
    for (a, a_acks) in &acks {
        let ro = ev.samples.read_only.get(a).unwrap_or(&empty);
        let mut a_by_sent = a_acks.clone();
        a_by_sent.sort_by_key(|e| e.sent);
        for (b, b_acks) in &acks {
            if a == b {
                continue;
            }
            let mut triggers = Vec::new();
            for y in b_acks {
                let i = a_acks.partition_point(|x| x.done < y.done);
                let Some(x) = i.checked_sub(1).map(|i| a_acks[i]) else {
                    continue;
                };
                let Some(x2) = a_by_sent.get(a_by_sent.partition_point(|x2| x2.sent <= y.done))
                else {
                    continue;
                };
                if !ro.seen_between(x.done, x2.sent, |v| *v != Some(false)) {
                    triggers.push((y.done, (x.done, x2.sent)));
                }
            }
            for ep in episodes(triggers) {
                let (first_y, (x, x2)) = ep[0];
                out.push(Finding::SplitBrainByAcks {
                    host: a.clone(),
                    other: b.clone(),
                    count: ep.len(),
                    before: x.saturating_duration_since(t0),
                    between: first_y.saturating_duration_since(t0),
                    after: x2.saturating_duration_since(t0),
                    last: ep[ep.len() - 1].0.saturating_duration_since(t0),
                });
            }
        }
    }
    out
}

/// Writes acknowledged by a server sampled read-only just before and just after.
pub fn writes_on_read_only(ev: &Evidence) -> Vec<Finding> {
    let t0 = ev.history.started;
    let mut triggers: BTreeMap<(String, usize), Vec<(Instant, ())>> = BTreeMap::new();
    for (host, acks) in acks_by_host(ev) {
        let Some(ro) = ev.samples.read_only.get(&host) else {
            continue;
        };
        for e in acks {
            let i = ro.runs.partition_point(|r| r.first.received <= e.sent);
            let Some(run) = i.checked_sub(1).map(|i| &ro.runs[i]) else {
                continue;
            };
            if run.value == Some(true) && run.last.sent >= e.done {
                triggers
                    .entry((host.clone(), e.client))
                    .or_default()
                    .push((e.done, ()));
            }
        }
    }
    let mut out = Vec::new();
    for ((host, client), items) in triggers {
        for ep in episodes(items) {
            out.push(Finding::WriteOnReadOnly {
                host: host.clone(),
                client: ev.history.client_name(client).to_string(),
                count: ep.len(),
                first: ep[0].0.saturating_duration_since(t0),
                last: ep[ep.len() - 1].0.saturating_duration_since(t0),
            });
        }
    }
    out
}

/// Two acknowledged CAS operations to the same `(key, value)`.
pub fn cas_duplicates(ev: &Evidence) -> Vec<Finding> {
    let t0 = ev.history.started;
    let mut by_value: BTreeMap<(u32, u64), Vec<&Event>> = BTreeMap::new();
    for e in ev.history.write_acks() {
        if let Op::Cas {
            key,
            from: Some(from),
        } = e.op
        {
            by_value.entry((key, from + 1)).or_default().push(e);
        }
    }
    by_value
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|((key, value), v)| Finding::CasDuplicate {
            key,
            value,
            acks: v
                .iter()
                .map(|e| {
                    (
                        ev.history.client_name(e.client).to_string(),
                        e.server_id.map_or("?".into(), |id| host_of(ev, id)),
                        e.done.saturating_duration_since(t0),
                    )
                })
                .collect(),
        })
        .collect()
}

/// Acknowledged writes missing from one host's final data.
pub fn lost_writes(ev: &Evidence, state: &FinalState) -> Vec<LostWrite> {
    let by = |e: &Event| e.server_id.map_or("?".into(), |id| host_of(ev, id));
    let mut out = Vec::new();
    let mut highest: BTreeMap<u32, (u64, String)> = BTreeMap::new();
    for e in ev.history.write_acks() {
        match e.op {
            Op::Insert { id } if !state.inserts.contains(&id) => {
                out.push(LostWrite::Insert { id, by: by(e) })
            }
            Op::Append { key, elem } if !state.list(key).contains(&elem) => {
                out.push(LostWrite::ListElement {
                    key,
                    elem,
                    by: by(e),
                })
            }
            Op::Cas {
                key,
                from: Some(from),
            } => {
                let h = highest.entry(key).or_insert((0, String::new()));
                if from + 1 > h.0 {
                    *h = (from + 1, by(e));
                }
            }
            _ => {}
        }
    }
    for (key, (acked, by)) in highest {
        let found = state.registers.get(&key).copied().unwrap_or(0);
        if found < acked {
            out.push(LostWrite::Register {
                key,
                acked,
                found,
                by,
            });
        }
    }
    out.sort();
    out
}

/// Lost writes on every host read at the end, convergence with the final writer, unreadable states and
/// duplicate list elements in the final data.
fn final_state_findings(ev: &Evidence) -> Vec<Finding> {
    let mut out = Vec::new();
    let reference = ev
        .final_states
        .get(&ev.final_writer)
        .and_then(|r| r.as_ref().ok());
    for (host, state) in &ev.final_states {
        let state = match state {
            Ok(s) => s,
            Err(e) => {
                out.push(Finding::FinalStateUnreadable {
                    host: host.clone(),
                    error: e.clone(),
                });
                continue;
            }
        };
        out.extend(
            lost_writes(ev, state)
                .into_iter()
                .map(|write| Finding::Lost {
                    host: host.clone(),
                    write,
                }),
        );
        for (key, l) in &state.lists {
            for elem in duplicates(l.iter().map(|&(_, e)| e)) {
                out.push(Finding::ListDuplicate {
                    key: *key,
                    elem,
                    seen_in: format!("the final data of {host}"),
                });
            }
        }
        if let Some(r) = reference.filter(|_| host != &ev.final_writer) {
            if let Some(detail) = difference(r, state) {
                out.push(Finding::NotConverged {
                    host: host.clone(),
                    detail,
                });
            }
        }
    }
    out
}

/// How `other` differs from `reference`, in words; `None` when equal.
fn difference(reference: &FinalState, other: &FinalState) -> Option<String> {
    if reference == other {
        return None;
    }
    let mut parts = Vec::new();
    let missing = reference.inserts.difference(&other.inserts).count();
    let extra = other.inserts.difference(&reference.inserts).count();
    if missing + extra > 0 {
        parts.push(format!("inserts: {missing} missing, {extra} extra"));
    }
    let regs: Vec<u32> = reference
        .registers
        .keys()
        .chain(other.registers.keys())
        .filter(|k| reference.registers.get(k) != other.registers.get(k))
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !regs.is_empty() {
        parts.push(format!("registers differ: {regs:?}"));
    }
    let lists: BTreeSet<u32> = reference
        .lists
        .keys()
        .chain(other.lists.keys())
        .filter(|k| reference.lists.get(k) != other.lists.get(k))
        .copied()
        .collect();
    if !lists.is_empty() {
        parts.push(format!("lists differ: {lists:?}"));
    }
    Some(parts.join("; "))
}

/// Elements that occur more than once.
fn duplicates(items: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut seen = BTreeSet::new();
    let mut dup = BTreeSet::new();
    for i in items {
        if !seen.insert(i) {
            dup.insert(i);
        }
    }
    dup.into_iter().collect()
}

/// Shortened rendering of a list for messages.
fn short(l: &[u64]) -> String {
    if l.len() <= 8 {
        return format!("{l:?}");
    }
    format!("[{} elements ..., {:?}]", l.len(), &l[l.len() - 4..])
}

/// List reads against the final list (or the longest read), and duplicates within reads.
pub fn list_findings(ev: &Evidence) -> Vec<Finding> {
    let t0 = ev.history.started;
    let final_state = ev
        .final_states
        .get(&ev.final_writer)
        .and_then(|r| r.as_ref().ok());
    let mut reads: BTreeMap<u32, Vec<(&Event, &Vec<u64>)>> = BTreeMap::new();
    for e in &ev.history.events {
        if let (Op::ReadList { key }, Outcome::List(l)) = (&e.op, &e.outcome) {
            reads.entry(*key).or_default().push((e, l));
        }
    }
    let mut out = Vec::new();
    for (key, rs) in reads {
        let reference: Vec<u64> = match final_state {
            Some(s) => s.list(key),
            None => rs
                .iter()
                .map(|(_, l)| *l)
                .max_by_key(|l| l.len())
                .cloned()
                .unwrap_or_default(),
        };
        let bad: Vec<&(&Event, &Vec<u64>)> = rs
            .iter()
            .filter(|(_, l)| !reference.starts_with(l))
            .collect();
        if let Some((e, l)) = bad.first() {
            out.push(Finding::ListNotPrefix {
                key,
                client: ev.history.client_name(e.client).to_string(),
                at: e.sent.saturating_duration_since(t0),
                count: bad.len(),
                served_by: bad
                    .iter()
                    .map(|(e, _)| e.server_id.map_or("?".into(), |id| host_of(ev, id)))
                    .collect(),
                detail: format!("read {} vs final {}", short(l), short(&reference)),
            });
        }
        let mut dup_seen = BTreeSet::new();
        for (e, l) in &rs {
            for elem in duplicates(l.iter().copied()) {
                if dup_seen.insert(elem) {
                    out.push(Finding::ListDuplicate {
                        key,
                        elem,
                        seen_in: format!(
                            "a read by {} at {}",
                            ev.history.client_name(e.client),
                            at(e.sent.saturating_duration_since(t0))
                        ),
                    });
                }
            }
        }
    }
    out
}

/// Reads (sorted by send time) whose counter is below that of a read completed before they were sent.
/// Returns the offending reads with the larger earlier value.
fn regressions<'a>(reads: &[(&'a Event, u64)]) -> Vec<(&'a Event, u64, u64)> {
    let mut by_sent: Vec<&(&Event, u64)> = reads.iter().collect();
    by_sent.sort_by_key(|(e, _)| e.sent);
    let mut by_done: Vec<&(&Event, u64)> = reads.iter().collect();
    by_done.sort_by_key(|(e, _)| e.done);
    let (mut j, mut max) = (0, None::<u64>);
    let mut out = Vec::new();
    for (e, v) in by_sent {
        while j < by_done.len() && by_done[j].0.done < e.sent {
            max = max.max(Some(by_done[j].1));
            j += 1;
        }
        if let Some(m) = max.filter(|m| v < m) {
            out.push((*e, m, *v));
        }
    }
    out
}

/// Non-monotonic counter reads per server (findings) and across servers (a count).
pub fn read_monotonicity(ev: &Evidence) -> (Vec<Finding>, usize) {
    let t0 = ev.history.started;
    let reads: Vec<(&Event, u64)> = ev
        .history
        .events
        .iter()
        .filter_map(|e| match e.outcome {
            Outcome::Counter(v) => Some((e, v)),
            _ => None,
        })
        .collect();
    let cross = regressions(&reads).len();
    let mut per_server: BTreeMap<u32, Vec<(&Event, u64)>> = BTreeMap::new();
    for &(e, v) in &reads {
        if let Some(id) = e.server_id {
            per_server.entry(id).or_default().push((e, v));
        }
    }
    let mut out = Vec::new();
    for (id, rs) in per_server {
        let bad = regressions(&rs);
        if let Some(&(e, before, after)) = bad.first() {
            out.push(Finding::NonMonotonicRead {
                host: host_of(ev, id),
                client: ev.history.client_name(e.client).to_string(),
                at: e.sent.saturating_duration_since(t0),
                before,
                after,
                count: bad.len(),
            });
        }
    }
    (out, cross)
}

/// Per client counters and longest outage.
pub fn client_stats(h: &History) -> Vec<ClientStats> {
    h.clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mine: Vec<&Event> = h.events.iter().filter(|e| e.client == i).collect();
            let count = |f: &dyn Fn(&Event) -> bool| mine.iter().filter(|e| f(e)).count() as u64;
            let counts_for_outage = |e: &Event| match c.role {
                Role::Writer => {
                    e.op.is_write() && matches!(e.outcome, Outcome::Acked | Outcome::CasMiss)
                }
                Role::Reader => e.outcome.is_success(),
            };
            let mut times: Vec<Instant> = mine
                .iter()
                .filter(|e| counts_for_outage(e))
                .map(|e| e.done)
                .collect();
            times.sort();
            let mut prev = h.started;
            let mut longest = Duration::ZERO;
            for t in times.into_iter().chain(std::iter::once(h.stopped)) {
                longest = longest.max(t.saturating_duration_since(prev));
                prev = prev.max(t);
            }
            ClientStats {
                name: c.name.clone(),
                role: c.role,
                acked: count(&|e| e.is_write_ack()),
                cas_misses: count(&|e| e.outcome == Outcome::CasMiss),
                reads: count(&|e| matches!(e.outcome, Outcome::List(_) | Outcome::Counter(_))),
                failed: count(&|e| matches!(e.outcome, Outcome::Failed(_))),
                unknown: count(&|e| matches!(e.outcome, Outcome::Unknown(_))),
                longest_outage: longest,
            }
        })
        .collect()
}
