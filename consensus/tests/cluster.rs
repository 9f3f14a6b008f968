//! Cluster tests: several nodes in one process, each with its own sled directory and tonic server
//! on loopback, talking real gRPC. They wait on conditions (Raft metrics) with timeouts.
#![allow(clippy::result_large_err)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mmm_consensus::{Command, ConsensusConfig, LocalCluster, ReadError, Request, WriteError};
use tempfile::TempDir;

const T: Duration = Duration::from_secs(10);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn register(host: &str) -> Request {
    Request {
        time_ms: now_ms(),
        reason: format!("test registers {host}"),
        command: Command::Register {
            hosts: vec![host.to_string()],
            role_ips: vec![],
            cluster_id: None,
        },
    }
}

fn defaults(_: &mut ConsensusConfig) {}

async fn cluster(n: usize, tune: impl Fn(&mut ConsensusConfig)) -> (TempDir, LocalCluster) {
    init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let c = LocalCluster::start(n, dir.path(), tune)
        .await
        .expect("cluster starts");
    (dir, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn elects_one_leader() {
    let (_dir, c) = cluster(3, defaults).await;
    let leader = c.wait_leader(T).await.expect("leader");
    let leader_id = c.nodes[leader].id;
    for i in 0..3 {
        let n = c.node(i).expect("running");
        assert_eq!(
            n.leader().map(|(id, _)| id),
            Some(leader_id),
            "node {i} agrees"
        );
        assert_eq!(n.is_leader(), i == leader, "node {i} is_leader");
    }
    let lead = c.node(leader).expect("leader");
    let view = lead.status();
    assert_eq!(view.members.len(), 3);
    assert!(view.members.iter().all(|m| m.voter));
    assert_eq!(view.leader, Some(leader_id));
    // The leader hears from a quorum every heartbeat.
    lead.raft()
        .wait(Some(T))
        .metrics(|m| m.millis_since_quorum_ack.is_some(), "quorum ack")
        .await
        .expect("quorum ack");
    // The node learns it from the metrics on a task of its own, a moment later.
    let deadline = Instant::now() + T;
    let within = loop {
        if let Some(w) = lead.leadership_confirmed_within() {
            break w;
        }
        assert!(Instant::now() < deadline, "leader has a quorum ack time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(within < Duration::from_secs(2), "{within:?}");
    let follower = (leader + 1) % 3;
    assert_eq!(
        c.node(follower)
            .expect("follower")
            .leadership_confirmed_within(),
        None
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commits_on_three_nodes() {
    let (_dir, c) = cluster(3, defaults).await;
    let leader = c.wait_leader(T).await.expect("leader");
    let lead = c.node(leader).expect("leader");
    let mut sub = c.node((leader + 1) % 3).expect("follower").subscribe();
    let mut last = None;
    for i in 0..5 {
        let resp = lead
            .write(register(&format!("db{i}")))
            .await
            .expect("write");
        assert!(resp.error.is_none());
        last = Some(resp.epoch);
    }
    let last = last.expect("wrote");
    c.wait_applied(last.index, T)
        .await
        .expect("applied everywhere");
    let expected = lead.state();
    assert_eq!(expected.hosts.len(), 5);
    assert_eq!(expected.last_epoch, last);
    for i in 0..3 {
        assert_eq!(c.node(i).expect("running").state(), expected, "node {i}");
    }
    // The follower's subscription saw the last epoch.
    tokio::time::timeout(T, sub.wait_for(|e| *e >= last))
        .await
        .expect("in time")
        .expect("watch open");
    // A request refused on apply is reported as such and changes nothing.
    let bad = Request {
        time_ms: now_ms(),
        reason: "bad".into(),
        command: Command::SetHostState {
            host: "nosuch".into(),
            state: mmm_consensus::HostState::Online,
        },
    };
    match lead.write(bad).await {
        Err(WriteError::Rejected(msg)) => assert!(msg.contains("nosuch"), "{msg}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(lead.state().hosts, expected.hosts);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_forwards_writes_and_reads_linearizably() {
    let (_dir, c) = cluster(3, defaults).await;
    let leader = c.wait_leader(T).await.expect("leader");
    let follower = c.node((leader + 1) % 3).expect("follower");
    assert!(!follower.is_leader());
    let resp = follower
        .write(register("dbf"))
        .await
        .expect("forwarded write");
    assert!(resp.epoch.index > 0);
    let lead = c.node(leader).expect("leader");
    lead.raft()
        .wait(Some(T))
        .applied_index_at_least(Some(resp.epoch.index), "leader applied")
        .await
        .expect("leader applied");
    assert!(lead.state().hosts.contains_key("dbf"));
    // A linearizable read on another follower sees the write.
    let other = c.node((leader + 2) % 3).expect("other follower");
    let st = other.read_linearizable().await.expect("read");
    assert!(st.hosts.contains_key("dbf"));
    assert!(st.last_epoch >= resp.epoch);
    let st = lead.read_linearizable().await.expect("read on leader");
    assert!(st.hosts.contains_key("dbf"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_leader_commits_after_leader_dies() {
    let (_dir, mut c) = cluster(3, defaults).await;
    let old = c.wait_leader(T).await.expect("leader");
    let before = c
        .node(old)
        .expect("leader")
        .write(register("db-before"))
        .await
        .expect("write");
    c.wait_applied(before.epoch.index, T)
        .await
        .expect("applied");
    let survivor = (old + 1) % 3;

    let killed_at = Instant::now();
    c.kill(old).await;
    // A client retries a write refused while the survivors still elect (as mmmctl and the leader loop
    // do); the new leader must commit within the bound below.
    let resp = loop {
        match c
            .node(survivor)
            .expect("survivor")
            .write(register("db-after"))
            .await
        {
            Ok(r) => break r,
            Err(e) if killed_at.elapsed() < Duration::from_secs(3) => {
                eprintln!("write refused while electing ({e:?}); retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("write after leader death: {e:?}"),
        }
    };
    let took = killed_at.elapsed();
    eprintln!("leader killed -> next commit: {took:?}");
    assert!(resp.epoch.term > before.epoch.term, "new term");
    assert!(
        took < Duration::from_secs(3),
        "new leader committed after {took:?}"
    );
    let new = c.wait_leader(T).await.expect("new leader");
    assert_ne!(new, old);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_node_keeps_its_state() {
    // Snapshots every 5 entries so the restart loads a snapshot and re-applies the rest.
    let (_dir, mut c) = cluster(3, |cfg| cfg.snapshot_every = 5).await;
    let leader = c.wait_leader(T).await.expect("leader");
    let mut last = None;
    for i in 0..12 {
        last = Some(
            c.node(leader)
                .expect("leader")
                .write(register(&format!("db{i}")))
                .await
                .expect("write")
                .epoch,
        );
    }
    let last = last.expect("wrote");
    c.wait_applied(last.index, T).await.expect("applied");
    let victim = (leader + 1) % 3;
    let before = c.node(victim).expect("victim").state();
    assert_eq!(before.hosts.len(), 12);

    // Isolated while down and after restart: whatever it has must come from its own disk.
    let victim_id = c.nodes[victim].id;
    c.faults.isolate(victim_id);
    c.kill(victim).await;
    c.restart(victim).await.expect("restart");
    let n = c.node(victim).expect("restarted");
    n.raft()
        .wait(Some(T))
        .applied_index_at_least(Some(last.index), "re-applied from disk")
        .await
        .expect("state restored from disk");
    assert_eq!(n.state(), before);

    // Back on the network, it follows new commits.
    c.faults.heal(victim_id);
    let leader = c.wait_leader(T).await.expect("leader");
    let resp = c
        .node(leader)
        .expect("leader")
        .write(register("db-new"))
        .await
        .expect("write");
    c.wait_applied(resp.epoch.index, T).await.expect("applied");
    assert!(c
        .node(victim)
        .expect("restarted")
        .state()
        .hosts
        .contains_key("db-new"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_cluster_restarts_from_disk() {
    let (_dir, mut c) = cluster(3, defaults).await;
    let leader = c.wait_leader(T).await.expect("leader");
    let resp = c
        .node(leader)
        .expect("leader")
        .write(register("db1"))
        .await
        .expect("write");
    c.wait_applied(resp.epoch.index, T).await.expect("applied");
    let before = c.node(leader).expect("leader").state();
    for i in 0..3 {
        c.kill(i).await;
    }
    for i in 0..3 {
        c.restart(i).await.expect("restart");
    }
    let leader = c.wait_leader(T).await.expect("leader after restart");
    let resp2 = c
        .node(leader)
        .expect("leader")
        .write(register("db2"))
        .await
        .expect("write");
    assert!(resp2.epoch.index > resp.epoch.index, "log continues");
    c.wait_applied(resp2.epoch.index, T).await.expect("applied");
    let after = c.node(leader).expect("leader").state();
    assert_eq!(after.hosts.get("db1"), before.hosts.get("db1"));
    assert!(after.hosts.contains_key("db2"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isolated_node_cannot_commit_and_catches_up_by_snapshot() {
    let (_dir, c) = cluster(3, |cfg| cfg.snapshot_every = 10).await;
    let old = c.wait_leader(T).await.expect("leader");
    let first = c
        .node(old)
        .expect("leader")
        .write(register("db0"))
        .await
        .expect("write");
    c.wait_applied(first.epoch.index, T).await.expect("applied");

    // Cut the leader off: it cannot commit, the majority elects another leader and goes on.
    let old_id = c.nodes[old].id;
    c.faults.isolate(old_id);
    let isolated = c.node(old).expect("isolated");
    match isolated
        .write_with_timeout(register("lost"), Duration::from_secs(1))
        .await
    {
        Err(WriteError::NoQuorum(_) | WriteError::NoLeader(_) | WriteError::Transport(_)) => {}
        other => panic!("isolated node must not commit, got {other:?}"),
    }
    let majority: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let mut last = first.epoch;
    for k in 0..35 {
        let resp = c
            .node(majority[k % 2])
            .expect("majority")
            .write(register(&format!("m{k}")))
            .await
            .expect("majority commits");
        last = resp.epoch;
    }
    assert!(last.term > first.epoch.term);
    assert!(matches!(
        isolated.read_linearizable().await,
        Err(ReadError::NoQuorum(_) | ReadError::NoLeader(_) | ReadError::Transport(_))
    ));
    assert!(!isolated.state().hosts.contains_key("m0"));

    // The majority snapshotted and purged the entries the isolated node lacks.
    let new_leader = c
        .node(majority[0])
        .expect("majority")
        .leader()
        .expect("leader")
        .0;
    let nl = c
        .node(c.index_of(new_leader).expect("index"))
        .expect("new leader");
    let m = nl
        .raft()
        .wait(Some(T))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index > first.epoch.index + 1),
            "purged",
        )
        .await
        .expect("leader purged its log");
    let purged = m.purged.expect("purged").index;

    // Rejoin: it catches up, necessarily through a snapshot.
    c.faults.heal(old_id);
    isolated
        .raft()
        .wait(Some(T))
        .applied_index_at_least(Some(last.index), "caught up")
        .await
        .expect("rejoined node caught up");
    let m = isolated.metrics().borrow().clone();
    assert!(
        m.snapshot.is_some_and(|s| s.index >= purged),
        "installed a snapshot: {:?}",
        m.snapshot
    );
    assert_eq!(isolated.state().hosts, nl.state().hosts);
    assert!(!isolated.state().hosts.contains_key("lost"));
    assert!(!isolated.is_leader());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_nodes_survive_two_failures() {
    let (_dir, mut c) = cluster(5, defaults).await;
    let leader = c.wait_leader(T).await.expect("leader");
    let other = (leader + 1) % 5;
    c.kill(leader).await;
    c.kill(other).await;
    let alive = c.running();
    assert_eq!(alive.len(), 3);
    let resp = c
        .node(alive[0])
        .expect("alive")
        .write(register("db5"))
        .await
        .expect("3 of 5 commit");
    c.wait_applied(resp.epoch.index, T)
        .await
        .expect("applied on survivors");
    for i in alive {
        assert!(c.node(i).expect("alive").state().hosts.contains_key("db5"));
    }
    c.shutdown().await;
}
