//! What the checking client saw, and the judgements that need nothing but that: write outages, read outages
//! and split brain.
//!
//! Split-brain rule. A single client writes one statement at a time, and a connection stays with one server,
//! so the acks form *runs*: maximal sequences (in ack order) accepted by one server. Two things are flagged:
//!
//! 1. two acks by different servers whose `[sent, acked]` intervals overlap (two servers accepting writes at
//!    the same moment; impossible for one sequential client, but flagged if histories are merged);
//! 2. a *return*: a run by server A after a run by another server B when A already had an earlier run
//!    (A→B→A), unless no write was acknowledged for at least a failback gap ([`FAILBACK_MIN_GAP`] by default)
//!    between B's last ack and A's first ack of the new run. A failover A→B is a single switch and always
//!    allowed; a deliberate failback moves the writer with a visible pause, while two servers that both take
//!    writes make the client bounce between them with no such pause.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Shortest write outage (no acks at all) that makes a return to an earlier writer a failback rather than
/// split brain.
pub const FAILBACK_MIN_GAP: Duration = Duration::from_millis(500);
/// At most this many split-brain findings are listed one by one.
const MAX_FINDINGS: usize = 20;

/// One acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The row's id (unique per workload).
    pub id: u64,
    /// `@@server_id` of the server that accepted it (asked on the same connection).
    pub server_id: u32,
    /// When the INSERT was sent.
    pub sent: Instant,
    /// When its OK arrived.
    pub acked: Instant,
}

/// What one read got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The read worked.
    Ok {
        /// `@@server_id` of the server that answered.
        server_id: u32,
        /// The newest id it had (`None` on an empty table).
        max_id: Option<u64>,
    },
    /// Connecting or reading failed; the error text.
    Err(String),
}

/// One read through a reader address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The address read through.
    pub target: Ipv4Addr,
    /// When the read (or the connect before it) began.
    pub sent: Instant,
    /// When it ended.
    pub done: Instant,
    /// What it got.
    pub outcome: ReadOutcome,
}

/// Everything a workload saw between start and stop.
#[derive(Debug, Clone)]
pub struct History {
    /// Where the writes went.
    pub target: Ipv4Addr,
    /// Where the reads went (also those that never succeeded).
    pub readers: Vec<Ipv4Addr>,
    /// Acknowledged writes, in the order they were acknowledged.
    pub acks: Vec<Ack>,
    /// Write errors: when, and what (failed connects and statements; ids named here are unknown).
    pub errors: Vec<(Instant, String)>,
    /// Every read, in order per reader.
    pub reads: Vec<Read>,
    /// When the workload started.
    pub started: Instant,
    /// When it was told to stop.
    pub stopped: Instant,
}

/// A maximal sequence of acks (in ack order) by one server.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// The server that accepted them.
    server_id: u32,
    /// First and last ack of the run.
    first: Ack,
    last: Ack,
    /// Number of acks in it.
    count: usize,
}

/// Longest gap in `times` (sorted), counting from `start` and up to `end`.
fn longest_gap(start: Instant, end: Instant, times: impl Iterator<Item = Instant>) -> Duration {
    let mut prev = start;
    let mut longest = Duration::ZERO;
    for t in times.chain(std::iter::once(end)) {
        longest = longest.max(t.saturating_duration_since(prev));
        prev = prev.max(t);
    }
    longest
}

impl History {
    /// The acks sorted by ack time (then id).
    fn sorted_acks(&self) -> Vec<Ack> {
        let mut acks = self.acks.clone();
        acks.sort_by_key(|a| (a.acked, a.id));
        acks
    }

    /// Longest time without an acknowledged write: between consecutive acks, from start to the first ack,
    /// and from the last ack to stop (the whole run if nothing was acknowledged).
    pub fn longest_outage(&self) -> Duration {
        longest_gap(
            self.started,
            self.stopped,
            self.sorted_acks().into_iter().map(|a| a.acked),
        )
    }

    /// The write outage containing `t`: from the last ack at or before `t` (or the start) to the first ack
    /// after `t`. `None` if `t` is outside the run or no write was acknowledged after `t` (the outage had not
    /// ended when the workload stopped).
    pub fn outage_around(&self, t: Instant) -> Option<Duration> {
        if t < self.started || t > self.stopped {
            return None;
        }
        let acks = self.sorted_acks();
        let before = acks
            .iter()
            .rev()
            .find(|a| a.acked <= t)
            .map_or(self.started, |a| a.acked);
        let after = acks.iter().find(|a| a.acked > t)?.acked;
        Some(after.saturating_duration_since(before))
    }

    /// Write errors recorded after `t`.
    pub fn errors_after(&self, t: Instant) -> usize {
        self.errors.iter().filter(|(at, _)| *at > t).count()
    }

    /// The servers that acknowledged writes, in order of their first ack.
    pub fn writers(&self) -> Vec<u32> {
        let mut seen = Vec::new();
        for a in self.sorted_acks() {
            if !seen.contains(&a.server_id) {
                seen.push(a.server_id);
            }
        }
        seen
    }

    /// Split-brain findings under the module's rule with [`FAILBACK_MIN_GAP`]; empty when there is none.
    pub fn split_brain(&self) -> Vec<String> {
        self.split_brain_with(FAILBACK_MIN_GAP)
    }

    /// Split-brain findings under the module's rule with a given failback gap.
    pub fn split_brain_with(&self, min_failback_gap: Duration) -> Vec<String> {
        let mut findings = self.overlaps();
        let acks = self.sorted_acks();
        let mut runs: Vec<Run> = Vec::new();
        for a in acks {
            match runs.last_mut() {
                Some(r) if r.server_id == a.server_id => {
                    r.last = a;
                    r.count += 1;
                }
                _ => runs.push(Run {
                    server_id: a.server_id,
                    first: a,
                    last: a,
                    count: 1,
                }),
            }
        }
        let mut seen = BTreeSet::new();
        for (k, run) in runs.iter().enumerate() {
            if let Some(prev) = k.checked_sub(1).map(|p| runs[p]) {
                let gap = run.first.acked.saturating_duration_since(prev.last.acked);
                if seen.contains(&run.server_id) && gap < min_failback_gap {
                    findings.push(format!(
                        "server {} acknowledged ids {}..={} ({} writes) only {gap:?} after server {} had \
                         acknowledged ids {}..={} ({} writes), and server {} had been the writer before: \
                         writes interleaved between two servers without a failback pause of {min_failback_gap:?}",
                        run.server_id,
                        run.first.id,
                        run.last.id,
                        run.count,
                        prev.server_id,
                        prev.first.id,
                        prev.last.id,
                        prev.count,
                        run.server_id,
                    ));
                }
            }
            seen.insert(run.server_id);
        }
        if findings.len() > MAX_FINDINGS {
            let more = findings.len() - MAX_FINDINGS;
            findings.truncate(MAX_FINDINGS);
            findings.push(format!("... and {more} more"));
        }
        findings
    }

    /// Acks by different servers whose `[sent, acked]` intervals overlap.
    fn overlaps(&self) -> Vec<String> {
        let mut by_sent = self.acks.clone();
        by_sent.sort_by_key(|a| (a.sent, a.id));
        // Per server, the ack with the latest `acked` among those sent so far.
        let mut latest: BTreeMap<u32, Ack> = BTreeMap::new();
        let mut findings = Vec::new();
        for a in by_sent {
            for (server, other) in &latest {
                if *server != a.server_id && other.acked > a.sent {
                    findings.push(format!(
                        "server {} acknowledged id {} while server {} was acknowledging id {}: two servers \
                         accepted writes at the same time",
                        a.server_id, a.id, server, other.id
                    ));
                }
            }
            let entry = latest.entry(a.server_id).or_insert(a);
            if a.acked > entry.acked {
                *entry = a;
            }
        }
        findings
    }

    /// Per reader address, the longest time without a successful read (from start, between successes, to
    /// stop); a reader that never succeeded has the whole run.
    pub fn read_outages(&self) -> BTreeMap<Ipv4Addr, Duration> {
        let mut targets: BTreeSet<Ipv4Addr> = self.readers.iter().copied().collect();
        targets.extend(self.reads.iter().map(|r| r.target));
        targets
            .into_iter()
            .map(|target| {
                let mut ok: Vec<Instant> = self
                    .reads
                    .iter()
                    .filter(|r| r.target == target && matches!(r.outcome, ReadOutcome::Ok { .. }))
                    .map(|r| r.done)
                    .collect();
                ok.sort();
                (
                    target,
                    longest_gap(self.started, self.stopped, ok.into_iter()),
                )
            })
            .collect()
    }

    /// Per reader address, the servers that answered its successful reads.
    pub fn read_servers(&self) -> BTreeMap<Ipv4Addr, BTreeSet<u32>> {
        let mut out: BTreeMap<Ipv4Addr, BTreeSet<u32>> = BTreeMap::new();
        for r in &self.reads {
            if let ReadOutcome::Ok { server_id, .. } = r.outcome {
                out.entry(r.target).or_default().insert(server_id);
            }
        }
        out
    }
}
