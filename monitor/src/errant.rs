//! Errant transaction detection (DESIGN, safety rule 4): the GTIDs a returning host has that the active
//! master does not, from the MariaDB GTID positions its agent reports (`GetSystemStatus`).
//!
//! A MariaDB GTID position is a comma list of `domain-server_id-seq`, one entry per domain (the last GTID of
//! that domain). Positions alone cannot list every transaction, so a host's entry `d-s-n` counts as errant when
//!
//! - the master has no entry at all in domain `d`; or
//! - the master has an entry with the same server id `s` in domain `d` (in its binlog, slave or current
//!   position) with a lower sequence number: the master applied or wrote `s`'s transactions up to there
//!   and no further (the typical old master that committed a transaction nobody received); or
//! - `s` is not the master's server id and `n` is beyond every sequence number the master has in `d`.
//!
//! The host's positions must be read *before* the master's, so that everything the host legitimately received
//! from the master is already in the master's positions when they are read.
//!
//! [`ErrantPoller`] runs the comparison against the active master, often for hosts that are not ONLINE (or just
//! came back), rarely for the others, from spawned tasks, and the leader feeds the cached result to the engine (`AgentFacts::gtid_errant`),
//! which records the host as errant and keeps it out of rotation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mmm_consensus::{ClusterState, HostState};

use crate::context::MonitorContext;

pub use mmm_proto::gtid::{parse_position, Gtid, GtidParseError};

/// What the master's positions say about one domain.
#[derive(Default)]
struct DomainView {
    /// Highest sequence number seen per originating server.
    per_server: BTreeMap<u32, u64>,
    /// Highest sequence number in the domain.
    max_seq: u64,
}

/// The GTIDs in `host_positions` (the returning host's binlog/current positions) that the master (its
/// `master_positions`: binlog, slave and current positions, read after the host's; `master_server_id`)
/// does not have, sorted and deduplicated. Empty when there are none.
pub fn errant_gtids(
    host_positions: &[&str],
    master_positions: &[&str],
    master_server_id: u32,
) -> Result<Vec<Gtid>, GtidParseError> {
    let mut master: BTreeMap<u32, DomainView> = BTreeMap::new();
    for pos in master_positions {
        for g in parse_position(pos)? {
            let v = master.entry(g.domain).or_default();
            let s = v.per_server.entry(g.server_id).or_insert(0);
            *s = (*s).max(g.seq);
            v.max_seq = v.max_seq.max(g.seq);
        }
    }
    let mut out = Vec::new();
    for pos in host_positions {
        for g in parse_position(pos)? {
            let errant = match master.get(&g.domain) {
                None => true,
                Some(v) => match v.per_server.get(&g.server_id) {
                    Some(&m) => g.seq > m,
                    None => g.server_id != master_server_id && g.seq > v.max_seq,
                },
            };
            if errant {
                out.push(g);
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// [`errant_gtids`] as the comma list recorded in the cluster state; `None` when there are none.
pub fn errant_list(
    host_positions: &[&str],
    master_positions: &[&str],
    master_server_id: u32,
) -> Result<Option<String>, GtidParseError> {
    let e = errant_gtids(host_positions, master_positions, master_server_id)?;
    Ok((!e.is_empty()).then(|| e.iter().map(Gtid::to_string).collect::<Vec<_>>().join(",")))
}

/// Deadline of one `GetSystemStatus` call of the poll.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between two polls of a returning host (not ONLINE, or back within [`RETURNING_WINDOW`]).
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Pause between two polls of a host that has been ONLINE for a while: a replica can also hold a transaction
/// the new master lacks (semi-sync needs one replica's acknowledgement, not the candidate's).
const POLL_ONLINE_EVERY: Duration = Duration::from_secs(2);
/// A host that came back ONLINE is still checked for this long (the check may not have run yet when the
/// engine put it back).
const RETURNING_WINDOW: Duration = Duration::from_secs(10);
/// A poll result older than this is not used.
const RESULT_TTL: Duration = Duration::from_secs(7);

/// What the poller knows of one host.
#[derive(Default, Debug)]
struct HostPoll {
    /// Last time the host was seen in a state other than ONLINE (it is "returning" for a while after).
    last_not_online: Option<Instant>,
    /// When the last poll started; polls are at least [`POLL_EVERY`] apart.
    last_started: Option<Instant>,
    /// A poll is under way; no second one starts.
    in_flight: bool,
    /// When the last poll finished, and the errant GTIDs it found (`None`: none).
    result: Option<(Instant, Option<String>)>,
    /// The host's state at the last round and since when the poller has seen it in that state.
    state_since: Option<(HostState, Instant)>,
    /// The last poll that found nothing errant: when it started and against which master. A returning
    /// host is cleared for ONLINE only by a poll that started after it entered its current state.
    clean: Option<(Instant, String)>,
    /// The host was ONLINE at the last round (then a finding must repeat before it counts).
    online: bool,
    /// How many polls in a row found exactly these errant GTIDs; reported from the second on, so that one
    /// racy read cannot take a host out of rotation.
    streak: u32,
    /// The cluster state recorded errant GTIDs for the host at the last look.
    recorded: bool,
    /// Bumped when an operator cleared the host's errant mark: results of polls started before are dropped,
    /// so a stale finding cannot mark the repaired host again.
    generation: u64,
}

/// Polls returning hosts and the active master off the leader's hot path (spawned tasks, results cached)
/// and answers, per host, the errant GTIDs found by the last fresh poll.
#[derive(Default, Clone)]
pub struct ErrantPoller {
    /// Per host; shared with the spawned polls.
    hosts: Arc<Mutex<BTreeMap<String, HostPoll>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ErrantPoller {
    /// Starts a poll for every host but the active master: every [`POLL_EVERY`] for a host that is not
    /// ONLINE (or came back within [`RETURNING_WINDOW`]), every [`POLL_ONLINE_EVERY`] for the others. Does
    /// nothing without an active master or during a failover.
    pub fn poll(&self, ctx: &Arc<MonitorContext>, state: &ClusterState) {
        let now = Instant::now();
        let mut hosts = lock(&self.hosts);
        for (host, rec) in &state.hosts {
            let p = hosts.entry(host.clone()).or_default();
            p.online = rec.state == HostState::Online;
            if p.state_since.is_none_or(|(s, _)| s != rec.state) {
                p.state_since = Some((rec.state, now));
            }
            if !p.online {
                p.last_not_online = Some(now);
            }
            let recorded = rec.errant_gtids.is_some();
            if p.recorded && !recorded {
                p.generation += 1;
                p.result = None;
                p.streak = 0;
            }
            p.recorded = recorded;
        }
        let Some(master) = state.active_master.clone() else {
            return;
        };
        if state.failover.is_some() {
            return;
        }
        for (host, p) in hosts.iter_mut() {
            let returning = p
                .last_not_online
                .is_some_and(|t| now.duration_since(t) < RETURNING_WINDOW);
            let every = if returning {
                POLL_EVERY
            } else {
                POLL_ONLINE_EVERY
            };
            let due = p
                .last_started
                .is_none_or(|t| now.duration_since(t) >= every);
            if *host == master || !due || p.in_flight {
                continue;
            }
            p.in_flight = true;
            p.last_started = Some(now);
            let generation = p.generation;
            let (ctx, me, host, master) =
                (Arc::clone(ctx), self.clone(), host.clone(), master.clone());
            tokio::spawn(async move {
                let found = check(&ctx, &host, &master).await;
                let started = now;
                let mut hosts = lock(&me.hosts);
                let p = hosts.entry(host.clone()).or_default();
                p.in_flight = false;
                if p.generation != generation {
                    return;
                }
                match found {
                    Ok(errant) => {
                        let before = p.result.as_ref().and_then(|(_, e)| e.clone());
                        p.streak = if errant == before { p.streak + 1 } else { 1 };
                        if errant != before {
                            match &errant {
                                Some(g) => {
                                    tracing::error!(host, master, errant = %g, "host has errant transactions the active master lacks")
                                }
                                None => {
                                    tracing::info!(host, master, "host has no errant transactions")
                                }
                            }
                        }
                        p.clean = errant.is_none().then(|| (started, master.clone()));
                        p.result = Some((Instant::now(), errant));
                    }
                    Err(e) => {
                        tracing::info!(host, master, error = %e, "errant transaction check not possible now")
                    }
                }
            });
        }
    }

    /// True while `host`, not ONLINE, has not passed an errant-transaction check against `master` that
    /// started after it entered its current state: it may have come back with transactions nobody else
    /// has, and must not be put ONLINE (nor its transactions reach the writer) until a check says it has
    /// none. False for the active master itself and without an active master (nothing to compare with).
    pub fn unchecked(&self, state: &ClusterState, host: &str) -> bool {
        let Some(master) = state.active_master.as_deref() else {
            return false;
        };
        let returning = state
            .hosts
            .get(host)
            .is_some_and(|r| r.state != HostState::Online);
        if host == master || !returning {
            return false;
        }
        let hosts = lock(&self.hosts);
        let Some(p) = hosts.get(host) else {
            return true;
        };
        let entered = p.state_since.map(|(_, t)| t);
        !matches!((&p.clean, entered), (Some((started, m)), Some(entered))
            if m == master && *started >= entered && started.elapsed() <= RESULT_TTL)
    }

    /// The errant GTIDs of `host` found by a fresh poll, confirmed by the one before for an ONLINE host
    /// (`None`: none found, or nothing fresh and confirmed).
    pub fn errant(&self, host: &str) -> Option<String> {
        let hosts = lock(&self.hosts);
        let p = hosts.get(host)?;
        let (at, errant) = p.result.as_ref()?;
        if at.elapsed() > RESULT_TTL || (p.online && p.streak < 2) {
            return None;
        }
        errant.clone()
    }
}

/// Reads the host's positions, then the master's, and compares them: the errant GTIDs of `host`
/// against `master`, `None` when it has none.
pub async fn check(
    ctx: &MonitorContext,
    host: &str,
    master: &str,
) -> anyhow::Result<Option<String>> {
    let h = ctx.agents.system_status(host, POLL_TIMEOUT).await?;
    if !h.mysql_reachable {
        anyhow::bail!("mysqld of {host} not reachable: {}", h.mysql_error);
    }
    let m = ctx.agents.system_status(master, POLL_TIMEOUT).await?;
    if !m.mysql_reachable {
        anyhow::bail!(
            "mysqld of the active master {master} not reachable: {}",
            m.mysql_error
        );
    }
    let broken = h
        .replication
        .as_ref()
        .filter(|r| !r.last_sql_error.is_empty() || !r.last_io_error.is_empty());
    if let Some(r) = broken {
        tracing::warn!(host, master, io_error = %r.last_io_error, sql_error = %r.last_sql_error,
            host_binlog = %h.gtid_binlog_pos, host_current = %h.gtid_current_pos, master_binlog = %m.gtid_binlog_pos,
            master_slave = %m.gtid_slave_pos, master_current = %m.gtid_current_pos, "replication of the host is broken");
    }
    Ok(errant_list(
        &[&h.gtid_binlog_pos, &h.gtid_current_pos],
        &[&m.gtid_binlog_pos, &m.gtid_slave_pos, &m.gtid_current_pos],
        m.server_id,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        /// (host positions, master positions, master server id, expected errant list)
        type Case<'a> = (&'a [&'a str], &'a [&'a str], u32, Option<&'a str>);
        let cases: &[Case] = &[
            // Identical: nothing errant.
            (&["0-1-100"], &["0-1-100"], 1, None),
            // A replica behind the master.
            (&["0-2-90"], &["0-2-100"], 2, None),
            // The old master (1) returns; the new master (2) received everything up to 0-1-100, then wrote.
            (&["0-1-100"], &["0-2-150", "0-1-100", "0-2-150"], 2, None),
            // ... but the old master had committed 0-1-101 that nobody received: errant although 101 < 150.
            (
                &["0-1-101"],
                &["0-2-150", "0-1-100", "0-2-150"],
                2,
                Some("0-1-101"),
            ),
            // Master knows nothing of server 3 in the domain: beyond its last seq is errant, below is not.
            (&["0-3-160"], &["0-2-150"], 2, Some("0-3-160")),
            (&["0-3-140"], &["0-2-150"], 2, None),
            // A domain the master lacks.
            (&["0-2-10,7-1-3"], &["0-2-10"], 2, Some("7-1-3")),
            // The master's own server id ahead of what was read: the host read first, so not errant by rule 3.
            (&["0-2-151"], &["0-1-100"], 2, None),
            // Several positions of the host, deduplicated.
            (&["0-1-101", "0-1-101"], &["0-1-100"], 2, Some("0-1-101")),
            // Per-master domain ids (db1 writes domain 1, db2 domain 2): the old master returns with
            // everything the new master received from it and less of the new master's own domain.
            (
                &["1-1-100,2-2-140"],
                &["1-1-100,2-2-150", "1-1-100", "1-1-100,2-2-150"],
                2,
                None,
            ),
            // ... or with a transaction of its own domain nobody received.
            (
                &["1-1-101,2-2-140"],
                &["1-1-100,2-2-150", "1-1-100", "1-1-100,2-2-150"],
                2,
                Some("1-1-101"),
            ),
            // A replica that wrote in a domain of its own (3) is errant whatever the others' sequences.
            (
                &["1-1-100,2-2-150,3-3-1"],
                &["1-1-100,2-2-150"],
                2,
                Some("3-3-1"),
            ),
            // Empty host: nothing errant; empty master with a host that has something: errant.
            (&[""], &["0-1-5"], 1, None),
            (&["0-1-5"], &[""], 2, Some("0-1-5")),
        ];
        for (host, master, id, want) in cases {
            let got = errant_list(host, master, *id).unwrap();
            assert_eq!(got.as_deref(), *want, "host {host:?} master {master:?}");
        }
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(errant_list(&["0-1-x"], &["0-1-1"], 1).is_err());
        assert!(errant_list(&["0-1-1"], &["garbage"], 1).is_err());
    }
}
