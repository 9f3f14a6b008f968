//! Catch-up from the most advanced peer: a failover candidate that lacks transactions another verified
//! host has fetches them from that host before it reports caught up (and so before it opens).
//!
//! When the old writer's mysqld died or cannot be reached, nobody can tell the candidate the old writer's
//! last position: it applies what it received itself. Another replica may have received more. With
//! semi-sync the acknowledgement that let the old writer answer a client may have come from that replica,
//! not from the candidate; opening without those transactions loses acknowledged writes, and the replica
//! that has them cannot follow the new writer (its position is ahead in the domain).
//!
//! Rule, while a status asks this host to catch up (it is the failover's candidate) and the old writer
//! could not report its last position (or a catch-up to the position it reported missed once: it may
//! have become unreachable since; a reported position otherwise arrives from the candidate's own
//! source within milliseconds, and a planned switchover is not slowed down):
//! 1. Read `@@gtid_binlog_pos` of every other host the status does not isolate (the leader lists there
//!    the old writer, hosts with errant transactions and hosts neither ONLINE nor UNKNOWN), but the
//!    candidate's own replication source, through the replication account, each within
//!    [`PEER_READ_TIMEOUT`]; a host that does not answer is skipped.
//! 2. If this server's `@@gtid_current_pos` reaches every position read, nothing is done. Otherwise the
//!    replication channel is pointed at the peer [`choose`] names (the one whose position reaches all the
//!    others', else the furthest ahead), after fetching is stopped and what was received is applied
//!    (a change of source drops the relay log); the candidate waits until it applied that peer's
//!    position, then points the channel back at its source, with the IO thread as it was.
//! 3. Repeated while a peer shows more (a peer still applying its relay log writes more to its binary
//!    log), within the catch-up timeout the status carries. What was fetched, and from whom, is reported
//!    (`AgentStatus.caught_up_from`) and named in the failover's history entry.
//!
//! Assumed: peers write what they replicate to their binary log with the original GTIDs
//! (`log_slave_updates`, a required setting) and have not purged it; the replication account can log in
//! to every host (MMM's `replication_user` is one account on all of them). MariaDB only: on MySQL the
//! step is skipped and the candidate waits for what it received, as before.
//! Guaranteed: a candidate that reports caught up had applied every transaction a reachable,
//! non-isolated peer had in its binary log at the last read, or the catch-up failed (not reported).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::db::{Db, DbTarget};
use crate::sql::{gtid_merge, gtid_reached, Flavor};

/// Longest one peer's position read may take (connect and query). A peer slower than this is
/// treated as unreachable: the catch-up must finish well inside the failover's catch-up timeout.
pub const PEER_READ_TIMEOUT: Duration = Duration::from_millis(500);

/// Most rounds of fetching in one catch-up: each round reaches one peer's position, so a round beyond
/// the number of peers only happens while peers still apply; bounded so a peer whose binary log keeps
/// growing (it should not: nothing writes during a failover) cannot hold the candidate forever.
const MAX_ROUNDS: usize = 8;

/// One peer: its name and how to reach its mysqld with the replication account.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The host's name.
    pub name: String,
    /// Its server, with the replication account.
    pub target: DbTarget,
}

/// The peer to fetch from: among peers whose position `own` does not reach, the one whose position
/// reaches all of theirs, else the one furthest ahead (highest sum of sequence numbers not reached);
/// `None` when `own` reaches every position. Ties go to the first by name.
pub fn choose<'a>(own: &str, positions: &'a [(String, String)]) -> Option<&'a (String, String)> {
    let ahead: Vec<&(String, String)> = positions
        .iter()
        .filter(|(_, pos)| !pos.trim().is_empty() && !gtid_reached(own, pos))
        .collect();
    let all = ahead
        .iter()
        .fold(String::new(), |acc, (_, p)| gtid_merge(&acc, p));
    if let Some(p) = ahead.iter().find(|(_, pos)| gtid_reached(pos, &all)) {
        return Some(p);
    }
    ahead.into_iter().max_by(|a, b| {
        seq_sum(&a.1)
            .cmp(&seq_sum(&b.1))
            // max_by keeps the last of equals: reverse the name order so the first name wins.
            .then_with(|| b.0.cmp(&a.0))
    })
}

/// The sum of a position's sequence numbers (a rough "how far ahead" for peers no one of which
/// reaches the others).
fn seq_sum(pos: &str) -> u64 {
    pos.split(',')
        .filter_map(|g| g.trim().rsplit('-').next()?.parse::<u64>().ok())
        .sum()
}

/// What a catch-up from peers did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// `db3 up to 0-1-3155` per peer fetched from, in order; empty when nothing was lacking.
    pub from: Vec<String>,
}

impl Fetched {
    /// For the status reply and the history: "" when nothing was fetched.
    pub fn summary(&self) -> String {
        self.from.join(", ")
    }
}

/// Reads one peer's binary log position.
async fn read_position(peer: &Peer) -> anyhow::Result<String> {
    let read = async {
        let mut db = peer.target.connect().await?;
        let pos: Option<String> = db.query_first("SELECT @@gtid_binlog_pos").await?;
        anyhow::Ok(pos.unwrap_or_default())
    };
    tokio::time::timeout(PEER_READ_TIMEOUT, read)
        .await
        .with_context(|| format!("no answer within {PEER_READ_TIMEOUT:?}"))?
}

/// Every peer's position that could be read, by name (unreadable peers logged and skipped).
async fn read_positions(peers: &[Peer]) -> Vec<(String, String)> {
    let reads = peers
        .iter()
        .map(|p| async move { (p, read_position(p).await) });
    let mut out = Vec::new();
    for (peer, res) in futures::future::join_all(reads).await {
        match res {
            Ok(pos) => out.push((peer.name.clone(), pos)),
            Err(e) => {
                tracing::info!(peer = %peer.name, error = %format!("{e:#}"), "peer position not read (skipped by the catch-up)")
            }
        }
    }
    out
}

/// Catches this candidate up with its peers (the module rule), within `timeout`. `source` resolves
/// the channel's current source host (as `SHOW SLAVE STATUS` names it) to an address, to point it back.
pub async fn catch_up_from_peers(
    db: &mut Db,
    peers: &[Peer],
    user: &str,
    password: &str,
    source: impl Fn(&str) -> Option<IpAddr>,
    timeout: Duration,
) -> anyhow::Result<Fetched> {
    let mut fetched = Fetched::default();
    if db.flavor != Flavor::MariaDb || peers.is_empty() {
        return Ok(fetched);
    }
    let deadline = Instant::now() + timeout;
    for _ in 0..MAX_ROUNDS {
        let positions = read_positions(peers).await;
        let own = db.gtid_current_pos().await?;
        let Some((name, pos)) = choose(&own, &positions).cloned() else {
            return Ok(fetched);
        };
        let peer = peers
            .iter()
            .find(|p| p.name == name)
            .context("chosen peer not among the peers")?;
        let left = deadline.saturating_duration_since(Instant::now());
        tracing::warn!(peer = %name, peer_position = %pos, own = %own, "the failover candidate lacks transactions a peer has: fetching them from it");
        fetch_from(db, peer, &pos, user, password, &source, left)
            .await
            .with_context(|| format!("fetching up to {pos} from {name}"))?;
        tracing::info!(peer = %name, position = %pos, "fetched from the peer");
        fetched.from.push(format!("{name} up to {pos}"));
    }
    anyhow::bail!("peers kept showing more transactions after {MAX_ROUNDS} rounds")
}

/// Points the channel at `peer`, applies up to `pos`, and points it back (always, also after a
/// failure), with the IO thread as it was.
async fn fetch_from(
    db: &mut Db,
    peer: &Peer,
    pos: &str,
    user: &str,
    password: &str,
    source: &impl Fn(&str) -> Option<IpAddr>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let Some(rep) = db.replica_status().await? else {
        anyhow::bail!("not a replica: no channel to point at the peer");
    };
    let back = source(&rep.source_host).with_context(|| {
        format!(
            "the replication source '{}' is not a configured host",
            rep.source_host
        )
    })?;
    let back_port = u16::try_from(rep.source_port)
        .with_context(|| format!("the source port {} is not a port", rep.source_port))?;
    let io_was_running = !rep.io_stopped;
    // Nothing more arrives from the source, and what arrived is applied before the relay log goes.
    db.stop_replica_io().await?;
    if let Err(e) = db.wait_received_applied(timeout).await {
        // Left as it was: the channel still points at its source.
        if io_was_running {
            db.start_replica_io().await?;
        }
        return Err(e.context("applying what was received before changing the source"));
    }
    let result = async {
        db.point_source(peer.target.ip, peer.target.port, user, password, true)
            .await?;
        db.wait_current_pos(pos, timeout.saturating_sub(started.elapsed()))
            .await
    }
    .await;
    let restored = db
        .point_source(back, back_port, user, password, io_was_running)
        .await;
    tracing::info!(source = %rep.source_host, io_thread = io_was_running, ok = restored.is_ok(), "replication pointed back at its source after fetching from a peer");
    result?;
    restored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, p)| (n.to_string(), p.to_string()))
            .collect()
    }

    /// Own position, peers' positions by name, the expected choice.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);

    #[test]
    fn the_peer_to_fetch_from() {
        let cases: &[Case] = &[
            // Nothing lacking: nobody.
            ("0-1-10", &[("db3", "0-1-10"), ("db4", "0-1-9")], None),
            ("0-1-10", &[], None),
            // An empty or unreadable position is never a reason to fetch.
            ("0-1-10", &[("db3", "")], None),
            // One peer ahead.
            (
                "0-1-10",
                &[("db3", "0-1-12"), ("db4", "0-1-10")],
                Some("db3"),
            ),
            // The peer that reaches all the others, not the first.
            (
                "0-1-10",
                &[("db3", "0-1-11"), ("db4", "0-1-12")],
                Some("db4"),
            ),
            // Several domains: the one reaching both.
            (
                "0-1-10,1-2-5",
                &[("db3", "0-1-12,1-2-5"), ("db4", "0-1-12,1-2-7")],
                Some("db4"),
            ),
            // No peer reaches the others: the furthest ahead.
            (
                "0-1-10,1-2-5",
                &[("db3", "0-1-20,1-2-5"), ("db4", "0-1-10,1-2-7")],
                Some("db3"),
            ),
            // Equal positions: the first (peers come in name order).
            (
                "0-1-10",
                &[("db3", "0-1-12"), ("db4", "0-1-12")],
                Some("db3"),
            ),
            // A domain this host has never seen.
            ("0-1-10", &[("db3", "0-1-10,2-3-1")], Some("db3")),
        ];
        for (own, peers, want) in cases {
            let peers = pos(peers);
            let got = choose(own, &peers).map(|(n, _)| n.as_str());
            assert_eq!(got, *want, "own {own}, peers {peers:?}");
        }
    }

    #[test]
    fn equal_peers_that_do_not_reach_each_other_go_by_name() {
        let peers = pos(&[("db4", "0-1-12,1-2-5"), ("db3", "0-1-10,1-2-7")]);
        assert_eq!(
            choose("0-1-10,1-2-5", &peers).map(|(n, _)| n.as_str()),
            Some("db3")
        );
    }

    #[test]
    fn the_summary_names_each_peer() {
        let f = Fetched {
            from: vec!["db3 up to 0-1-12".into(), "db4 up to 0-1-13".into()],
        };
        assert_eq!(f.summary(), "db3 up to 0-1-12, db4 up to 0-1-13");
        assert_eq!(Fetched::default().summary(), "");
    }
}
