//! Changes of the monitor cluster's membership (`mmmctl cluster add/remove`), the start of a monitor
//! that joins an existing cluster, and the check that the configuration's `<monitor_node>` list agrees
//! with the committed membership.
//!
//! - Adding: the new monitor is added as a learner and replicated to (log or snapshot) until it has
//!   caught up, then made a voter. The leader refuses the change when a majority of the new voter set
//!   does not answer.
//! - Removing: refused when the remaining voters would have no reachable majority, or none would remain.
//! - Joining: a monitor whose data dir is empty initializes a new cluster only when no configured peer
//!   already belongs to one; otherwise it waits to be added (or, already a member with a wiped data
//!   dir, to be caught up by the leader). Initializing beside a running cluster would make it start
//!   elections that disturb the real one.
//! - The committed membership is what counts; a configuration that lists other monitors is logged as a
//!   warning naming both lists, never merged silently.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mmm_config::Config;
use mmm_consensus::{node_id, ConsensusNode, NodeInfo};
use mmm_proto::monitor_control_client::MonitorControlClient;
use mmm_proto::{ClusterStatusRequest, CommandReply, PROTOCOL_VERSION};
use openraft::ChangeMembers;
use tokio::sync::watch;
use tonic::transport::Endpoint;
use tonic::Status;

use crate::context::MonitorContext;

/// Deadline of one peer probe (connect plus `ClusterStatus`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a new learner may take to catch up before the add is given up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of committing a membership change.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the monitor at `addr` for its view; `Some(member names)` when it belongs to an initialized
/// cluster, `None` when unreachable or not initialized.
pub async fn probe(addr: &str) -> Option<BTreeSet<String>> {
    let call = async {
        let ep = Endpoint::from_shared(format!("http://{addr}"))
            .ok()?
            .connect_timeout(PROBE_TIMEOUT)
            .timeout(PROBE_TIMEOUT);
        let mut c = MonitorControlClient::new(ep.connect().await.ok()?);
        let r = c
            .cluster_status(ClusterStatusRequest {
                protocol_version: PROTOCOL_VERSION,
            })
            .await
            .ok()?
            .into_inner();
        Some(
            r.members
                .into_iter()
                .map(|m| m.name)
                .collect::<BTreeSet<_>>(),
        )
    };
    match tokio::time::timeout(PROBE_TIMEOUT * 2, call).await {
        Ok(Some(m)) if !m.is_empty() => Some(m),
        _ => None,
    }
}

/// The initial members to start the Raft node with: the configured ones, unless this monitor's data
/// dir is empty and a configured peer already belongs to a cluster (then none: wait to be added).
pub async fn initial_members(
    config: &Config,
    me: &str,
    data_dir: &Path,
    members: BTreeMap<u64, NodeInfo>,
) -> BTreeMap<u64, NodeInfo> {
    let fresh = std::fs::read_dir(data_dir).map_or(true, |mut d| d.next().is_none());
    if !fresh {
        return members;
    }
    let peers: Vec<(String, String)> = config
        .monitor_nodes
        .values()
        .filter(|n| n.name != me)
        .map(|n| (n.name.clone(), format!("{}:{}", n.ip, n.port)))
        .collect();
    let answers = futures::future::join_all(peers.iter().map(|(_, a)| probe(a))).await;
    for ((peer, _), answer) in peers.iter().zip(answers) {
        if let Some(existing) = answer {
            if existing.contains(me) {
                tracing::warn!(monitor = me, peer, members = ?existing, "empty data dir but already a member of a running cluster: waiting for the leader to send its state");
            } else {
                tracing::warn!(monitor = me, peer, members = ?existing, "a cluster is already running and does not include this monitor: waiting to be added (`mmmctl cluster add {me} IP:PORT` on any monitor)");
            }
            return BTreeMap::new();
        }
    }
    members
}

/// The configured monitor names and the committed membership, when they differ: a message naming both.
pub fn mismatch(config: &Config, committed: &BTreeSet<String>) -> Option<String> {
    let configured: BTreeSet<String> = config.monitor_nodes.keys().cloned().collect();
    if committed.is_empty() || configured == *committed {
        return None;
    }
    let only_conf: Vec<&String> = configured.difference(committed).collect();
    let only_raft: Vec<&String> = committed.difference(&configured).collect();
    Some(format!(
        "the <monitor_node> sections of {} list {:?} but the committed cluster membership is {:?} \
         (configured only: {:?}; members only: {:?}); the committed membership is used: change it with \
         `mmmctl cluster add/remove` and update the configuration to match",
        config.source.display(),
        configured,
        committed,
        only_conf,
        only_raft
    ))
}

/// Names of the committed members (voters and learners).
pub fn committed_names(consensus: &ConsensusNode) -> BTreeSet<String> {
    consensus
        .status()
        .members
        .into_iter()
        .map(|m| m.name)
        .collect()
}

/// Logs (once per change) when the configuration and the committed membership disagree.
pub async fn watch_mismatch(ctx: Arc<MonitorContext>, mut stop: watch::Receiver<bool>) {
    let mut metrics = ctx.consensus.metrics();
    let mut last: Option<String> = None;
    loop {
        let now = mismatch(&ctx.config, &committed_names(&ctx.consensus));
        if now != last {
            match &now {
                Some(m) => tracing::warn!(monitor = %ctx.name, "{m}"),
                None if last.is_some() => {
                    tracing::info!(monitor = %ctx.name, "configuration and committed membership agree again")
                }
                None => {}
            }
            last = now;
        }
        tokio::select! {
            r = metrics.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

fn ok(message: String) -> CommandReply {
    tracing::info!("{message}");
    CommandReply {
        ok: true,
        message: format!("OK: {message}"),
    }
}

fn refused(message: String) -> CommandReply {
    tracing::warn!("{message}");
    CommandReply {
        ok: false,
        message: format!("ERROR: {message}"),
    }
}

/// The current voters and all nodes (id -> info).
fn membership(consensus: &ConsensusNode) -> (BTreeSet<u64>, BTreeMap<u64, NodeInfo>) {
    let m = consensus.metrics();
    let m = m.borrow();
    let mem = m.membership_config.membership();
    let voters = mem.voter_ids().collect();
    let nodes = mem.nodes().map(|(id, n)| (*id, n.clone())).collect();
    (voters, nodes)
}

/// Whether a majority of `voters` answers (this node counts as answering).
async fn majority_answers(
    consensus: &ConsensusNode,
    voters: &BTreeSet<u64>,
    nodes: &BTreeMap<u64, NodeInfo>,
) -> (usize, usize) {
    let checks = voters.iter().map(|id| {
        let addr = nodes.get(id).map(|n| n.addr.clone());
        let me = *id == consensus.id();
        async move {
            if me {
                return true;
            }
            match addr {
                Some(a) => probe(&a).await.is_some(),
                None => false,
            }
        }
    });
    let up = futures::future::join_all(checks)
        .await
        .into_iter()
        .filter(|u| *u)
        .count();
    (up, voters.len() / 2 + 1)
}

/// On the leader: adds monitor `name` at `addr` as a learner, waits for it to catch up, then makes it a
/// voter.
pub async fn add(ctx: &MonitorContext, name: &str, addr: &str) -> Result<CommandReply, Status> {
    if name.is_empty() || addr.parse::<std::net::SocketAddr>().is_err() {
        return Err(Status::invalid_argument(
            "usage: cluster add <name> <ip:port>",
        ));
    }
    let raft = ctx.consensus.raft();
    let id = node_id(name);
    let (voters, nodes) = membership(&ctx.consensus);
    if voters.contains(&id) {
        return Ok(refused(format!("{name} is already a voting member")));
    }
    if let Some(n) = nodes.get(&id) {
        if n.addr != addr {
            return Ok(refused(format!(
                "{name} is already a member at {}; remove it first to change its address",
                n.addr
            )));
        }
    }
    if probe(addr).await.is_some_and(|m| !m.contains(name)) {
        return Ok(refused(format!(
            "the monitor at {addr} already belongs to another cluster: empty its data_dir first"
        )));
    }
    tracing::info!(name, addr, "adding monitor as a learner");
    let info = NodeInfo::new(name, addr);
    match tokio::time::timeout(CATCH_UP_TIMEOUT, raft.add_learner(id, info, true)).await {
        Err(_) => {
            return Ok(refused(format!(
                "{name} at {addr} did not catch up within {CATCH_UP_TIMEOUT:?}; it stays a learner \
                 (run the command again, or `cluster remove {name}`)"
            )))
        }
        Ok(Err(e)) => return Ok(refused(format!("cannot add {name} as a learner: {e}"))),
        Ok(Ok(_)) => {}
    }
    let mut new_voters = voters.clone();
    new_voters.insert(id);
    let (_, nodes) = membership(&ctx.consensus);
    let (up, need) = majority_answers(&ctx.consensus, &new_voters, &nodes).await;
    if up < need {
        return Ok(refused(format!(
            "making {name} a voter would leave {up} of {} voters answering, fewer than the {need} a quorum needs; it stays a learner",
            new_voters.len()
        )));
    }
    let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
    match tokio::time::timeout(CHANGE_TIMEOUT, raft.change_membership(change, false)).await {
        Err(_) => Ok(refused(format!(
            "making {name} a voter was not committed within {CHANGE_TIMEOUT:?}"
        ))),
        Ok(Err(e)) => Ok(refused(format!("cannot make {name} a voter: {e}"))),
        Ok(Ok(_)) => Ok(ok(format!(
            "monitor {name} ({addr}) added; the cluster now has {} voters",
            new_voters.len()
        ))),
    }
}

/// On the leader: removes monitor `name` from the cluster.
pub async fn remove(ctx: &MonitorContext, name: &str) -> Result<CommandReply, Status> {
    let raft = ctx.consensus.raft();
    let (voters, nodes) = membership(&ctx.consensus);
    let Some((&id, _)) = nodes.iter().find(|(_, n)| n.name == name) else {
        return Ok(refused(format!(
            "{name} is not a member of the monitor cluster"
        )));
    };
    let mut rest = voters.clone();
    rest.remove(&id);
    if voters.contains(&id) {
        if rest.is_empty() {
            return Ok(refused(format!(
                "{name} is the last voter; it cannot be removed"
            )));
        }
        let (up, need) = majority_answers(&ctx.consensus, &rest, &nodes).await;
        if up < need {
            return Ok(refused(format!(
                "removing {name} would lose quorum: {up} of the {} remaining voters answer, {need} needed",
                rest.len()
            )));
        }
    }
    tracing::info!(name, "removing monitor");
    let change = if voters.contains(&id) {
        ChangeMembers::RemoveVoters(BTreeSet::from([id]))
    } else {
        ChangeMembers::RemoveNodes(BTreeSet::from([id]))
    };
    match tokio::time::timeout(CHANGE_TIMEOUT, raft.change_membership(change, false)).await {
        Err(_) => Ok(refused(format!(
            "removing {name} was not committed within {CHANGE_TIMEOUT:?}"
        ))),
        Ok(Err(e)) => Ok(refused(format!("cannot remove {name}: {e}"))),
        Ok(Ok(_)) => Ok(ok(format!(
            "monitor {name} removed; the cluster now has {} voters (stop it and remove its <monitor_node> section)",
            rest.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_membership_that_differs_from_the_configuration_is_described() {
        let config = crate::test_support::seed_monitor_config();
        let configured: BTreeSet<String> = config.monitor_nodes.keys().cloned().collect();
        assert_eq!(mismatch(&config, &configured), None);
        assert_eq!(mismatch(&config, &BTreeSet::new()), None);
        let mut more = configured.clone();
        more.insert("mon9".into());
        let m = mismatch(&config, &more).expect("a mismatch");
        assert!(m.contains("members only: [\"mon9\"]"), "{m}");
    }
}
