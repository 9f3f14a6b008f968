//! Noticing at once that the leader's *process* is gone, so the election does not wait for the
//! follower's full election timeout.
//!
//! openraft starts an election only after a follower heard nothing for the old leader's lease plus its
//! own election timeout, checked on a timer (200 + 100..200 + up to 75 ms with the defaults). When the
//! leader's process dies (a crash, an OOM kill, a restart) its host's kernel tells at once: a follower
//! holds an idle TCP connection to the leader's gRPC port, which ends the moment the process does, and
//! a new connection to that port is refused. Then one follower, the voter with the smallest id other
//! than the old leader (so two followers never split the vote), calls the election itself as soon as
//! every voter's lease on the old leader is over: `leader_lease` after the last heartbeat this node
//! accepted (the other voters accepted theirs at about the same time; [`LEASE_SLACK`] covers the
//! difference), and not before the death was seen. A process's sockets close only once the kernel has
//! torn down its memory, which takes tens of milliseconds on a loaded machine: counting from the last
//! heartbeat rather than from the death seen does not add that time.
//!
//! Before it asks, the follower looks again: no heartbeat accepted since the death was seen and the
//! port still refusing (a leader restarted within the wait is back and is left alone).
//!
//! What it relies on: a refused connection means no process listens on the leader's port. A leader
//! cut off by the network, or a host that died with its kernel, refuses nothing (connections time out),
//! and the election then comes from openraft's timers as before. An election is only ever asked for,
//! never forced: voters still refuse while their lease on a leader holds and still compare logs, so
//! Raft's safety does not depend on any of this; a wrong guess costs one election. (If the successor's
//! log is behind the other voter's, that voter refuses it and its own timer elects it a little later.)

use std::time::Duration;

use openraft::ServerState;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use tokio::sync::watch;

use crate::types::{Metrics, NodeId, Raft};

/// Longest wait for a connection to the leader's port (it answers at once when the process is
/// alive; a longer wait is a network problem, which this watch leaves to the timers).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// Pause before trying again after a connection could not be made or was closed by a live leader
/// (so a server that closes idle connections costs one connection per pause, not a loop).
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Added to the voters' lease before the election is called: the other voters accepted the last
/// heartbeat a little after this node did (and timer granularity). Too little and a voter refuses (its
/// lease still holds); the election then comes from openraft's timers.
const LEASE_SLACK: Duration = Duration::from_millis(25);

/// When this node last accepted entries or a heartbeat from a leader, shared by the Raft service
/// (which sets it) and the watch (which counts the voters' lease from it).
#[derive(Clone, Debug, Default)]
pub struct Heard(std::sync::Arc<std::sync::Mutex<Option<Instant>>>);

impl Heard {
    /// Notes an accepted append or heartbeat now.
    pub fn now(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// The last one noted.
    fn last(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Watches the leader from a follower until Raft shuts down. `leader_lease` is openraft's (its
/// `election_timeout_max`).
pub(crate) async fn run(raft: Raft, me: NodeId, leader_lease: Duration, heard: Heard) {
    let mut metrics = raft.metrics();
    loop {
        let watched = {
            let m = metrics.borrow_and_update();
            match m.current_leader {
                Some(l) if l != me && m.state != ServerState::Leader => {
                    let membership = m.membership_config.membership();
                    let addr = membership.get_node(&l).map(|n| n.addr.clone());
                    let voters: Vec<NodeId> = membership.voter_ids().collect();
                    let successor = voters.iter().copied().filter(|v| *v != l).min();
                    addr.map(|a| (l, a, successor == Some(me), m.current_term))
                }
                _ => None,
            }
        };
        let Some((leader, addr, successor, term)) = watched else {
            if metrics.changed().await.is_err() {
                return;
            }
            continue;
        };
        let gone = tokio::select! {
            gone = watch_one(&addr) => gone,
            live = wait_for_change(&mut metrics, leader, term) => {
                if !live {
                    return;
                }
                continue;
            }
        };
        if !gone {
            tokio::select! {
                _ = tokio::time::sleep(RETRY_PAUSE) => {}
                live = wait_for_change(&mut metrics, leader, term) => if !live { return; },
            }
            continue;
        }
        let seen = Instant::now();
        tracing::info!(leader, addr = %addr, term, successor,
            "the leader's process is gone (its connection closed, its port refuses)");
        if !successor {
            // Another follower calls the election; this one's timers remain.
            if !wait_for_change(&mut metrics, leader, term).await {
                return;
            }
            continue;
        }
        let lease_over = heard.last().map_or(seen, |h| h.min(seen)) + leader_lease + LEASE_SLACK;
        let at = lease_over.max(seen);
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            live = wait_for_change(&mut metrics, leader, term) => {
                if !live {
                    return;
                }
                continue;
            }
        }
        let still = {
            let m = metrics.borrow();
            m.current_leader == Some(leader) && m.current_term == term
        };
        // Looked at again before asking: a leader that came back at once (a quick restart) sends
        // heartbeats again, or at least listens again; either means it is not gone.
        let heard_since = heard.last().is_some_and(|h| h > seen);
        if still && !heard_since && refuses(&addr).await {
            tracing::info!(
                leader,
                term,
                after_death_seen_ms = seen.elapsed().as_millis() as u64,
                after_last_heartbeat_ms = heard.last().map(|h| h.elapsed().as_millis() as u64),
                "calling an election: the old leader's lease is over on every voter"
            );
            if let Err(e) = raft.trigger().elect().await {
                tracing::warn!(error = %e, "cannot call an election");
                return;
            }
            if !wait_for_change(&mut metrics, leader, term).await {
                return;
            }
        }
        // Not called (the leader is back, or another took over): watch again.
    }
}

/// Holds a connection to `addr` until it ends. True when the port refused a connection (the process
/// is gone): at once, or after the held connection ended; false when no connection could be made for
/// another reason, or a new one could (the process lives).
async fn watch_one(addr: &str) -> bool {
    let mut stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return true,
        other => {
            tracing::debug!(addr, outcome = ?other.map(|r| r.map(|_| ())), "leader watch: cannot connect");
            return false;
        }
    };
    tracing::debug!(addr, "leader watch: connected");
    // Nothing is ever sent. The server may speak first (HTTP/2 sends its settings), which is read and
    // dropped; the connection's end is a read of nothing, or an error (reset).
    let mut buf = [0u8; 256];
    let ended = loop {
        match stream.read(&mut buf).await {
            Ok(0) => break "closed",
            Ok(_) => continue,
            Err(_) => break "reset",
        }
    };
    drop(stream);
    let gone = refuses(addr).await;
    tracing::debug!(addr, ended, gone, "leader watch: connection ended");
    gone
}

/// True when a new connection to `addr` is refused (nothing listens there).
async fn refuses(addr: &str) -> bool {
    matches!(
        timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Returns once the leader or term differs from (`leader`, `term`): true, or false when Raft shut
/// down.
async fn wait_for_change(
    metrics: &mut watch::Receiver<Metrics>,
    leader: NodeId,
    term: u64,
) -> bool {
    loop {
        {
            let m = metrics.borrow_and_update();
            if m.current_leader != Some(leader) || m.current_term != term {
                return true;
            }
        }
        if metrics.changed().await.is_err() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    /// A leader stand-in: accepts one connection, speaks first as HTTP/2 does, then on `end` closes the
    /// connection, and also stops listening unless `keep_listening`.
    async fn stand_in(keep_listening: bool) -> (String, oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (end, ended) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.write_all(&[0u8; 27]).await.unwrap();
            let _ = ended.await;
            drop(conn);
            if keep_listening {
                // Further connections are accepted (the process lives).
                loop {
                    let Ok((c, _)) = listener.accept().await else {
                        return;
                    };
                    drop(c);
                }
            }
        });
        (addr, end)
    }

    #[tokio::test]
    async fn a_connection_that_ends_with_its_listener_means_the_process_is_gone() {
        let (addr, end) = stand_in(false).await;
        let watch = tokio::spawn(async move { watch_one(&addr).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !watch.is_finished(),
            "bytes the server sends first are no end"
        );
        end.send(()).unwrap();
        assert!(watch.await.unwrap());
    }

    #[tokio::test]
    async fn a_connection_closed_by_a_live_server_is_not_a_death() {
        let (addr, end) = stand_in(true).await;
        let watch = tokio::spawn(async move { watch_one(&addr).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        end.send(()).unwrap();
        assert!(!watch.await.unwrap(), "the port still answers");
    }

    #[tokio::test]
    async fn a_refused_first_connection_means_the_process_is_gone() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        assert!(watch_one(&addr).await);
    }
}
