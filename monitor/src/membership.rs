//! Changes of the monitor cluster's membership (`mmmctl cluster add/remove`), the start of a monitor
//! that joins an existing cluster, and the check that the configuration's `<monitor_node>` list agrees
//! with the committed membership.
//!
//! - Adding: the new monitor is added as a learner and replicated to (log or snapshot) until it has
//!   caught up, then made a voter. The leader refuses the change when a majority of the new voter set
//!   does not answer.
//! - Removing: refused when the remaining voters would have no reachable majority, or none would remain.
//! - Joining with an empty data dir ([`fresh_start`]): before the Raft node starts, every configured
//!   peer is asked for its own view (`ClusterStatus` with `local`: not forwarded, since a peer may
//!   still take this very monitor for the leader) of the membership (voters and learners) and, the
//!   leader, of what it replicated to whom. The leader's answer decides; without one, the most
//!   cautious answer counts:
//!   - a peer lists this monitor as a **voter** that may have taken part: the monitor refuses to
//!     start ([`RejoinRefused`], a non-zero exit). Raft's safety rests on a voter remembering its
//!     vote and its log; one whose store was wiped has forgotten both, so it and a stale voter could
//!     form a majority that elects a leader missing committed entries (a committed failover decision
//!     rolled back). The way back is to leave and join again: `mmmctl cluster remove NAME` on a
//!     running monitor, start this one with its empty data dir, then `mmmctl cluster add NAME
//!     IP:PORT` (learner, caught up, then voter);
//!   - a peer lists it as a learner, or as a voter that cannot have taken part yet
//!     ([`PeerMembership::never_reached`]: the monitors of a brand-new cluster start one after the
//!     other, and the first ones initialize it with every configured monitor as a voter): it starts
//!     without members and waits for the leader to send it the state (a learner's log and vote count
//!     in no majority, and a voter that never voted nor acknowledged an entry lost nothing);
//!   - a peer belongs to a cluster without it: it waits to be added (`mmmctl cluster add`);
//!   - no peer answers with a cluster: it initializes a new cluster with the configured members (the
//!     start of a brand-new cluster). Initializing beside a running cluster would make it start
//!     elections that disturb the real one, hence the probe.
//!
//!   Assumed: a reachable peer's membership is at least as new as the entry that made this monitor a
//!   voter (a peer partitioned since before that may not list it); a voter took part only if a leader
//!   replicated to it, unless it did so in the moment between the first leader's election and its
//!   registering the cluster id (openraft's leader ids order votes of one term, so a forgotten vote
//!   alone elects no second leader that lacks committed entries). Guaranteed otherwise: a monitor
//!   with an empty data dir never starts as a voter that a reachable peer's cluster has replicated to.
//!   A cluster whose registration decision has dropped out of the history (older than its last
//!   `HISTORY_LIMIT` decisions) counts as one the voter took part in: the refusal is the default.
//!
//!   Not covered: a wiped voter whose peers are *all* down initializes a cluster of its own. That
//!   cluster never gets a leader while the old voters, whose logs are longer, refuse it their votes,
//!   so it never registers a cluster id, and agents refuse statuses of any cluster but the one whose
//!   id they adopted (README, "Replacing the whole monitor cluster"). But when an old voter comes
//!   back, the wiped monitor may still grant it its vote, as above; the data dir carries no mark that
//!   tells a wiped monitor from a brand-new one. Replace a monitor only while the rest of the cluster
//!   runs, by the procedure above.
//! - The committed membership is what counts; a configuration that lists other monitors is logged as a
//!   warning naming both lists, never merged silently.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mmm_config::Config;
use mmm_consensus::{node_id, ConsensusNode, NodeInfo};
use mmm_proto::monitor_control_client::MonitorControlClient;
use mmm_proto::{ClusterStatusRequest, CommandReply, HistoryRequest, PROTOCOL_VERSION};
use mmm_tls::ClientTls;
use openraft::ChangeMembers;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use crate::context::MonitorContext;

/// Deadline of each step of a peer probe (connect, `ClusterStatus`, `History`): peers answer from
/// memory, so a second means the peer is not serving (yet).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline of a whole peer probe: its three steps.
const PROBE_DEADLINE: Duration = Duration::from_secs(3);
/// How long a new learner may take to catch up before the add is given up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of committing a membership change.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A peer's view of the cluster membership, from its own `ClusterStatus` (`local`, not forwarded)
/// and, when the peer is the leader, its history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerMembership {
    /// The voters' names: a wiped monitor among them must not start as one (module docs).
    pub voters: BTreeSet<String>,
    /// The learners' names: a wiped learner may simply be caught up again.
    pub learners: BTreeSet<String>,
    /// The cluster id ("" before one is registered): named in the refusal so the operator sees
    /// which cluster it is, and "" tells a cluster whose first leader has not yet run.
    pub cluster_id: String,
    /// The answer is the leader's own view: only then are `matched` and `term` the leader's.
    pub from_leader: bool,
    /// Some monitor is known as the leader (a cluster with no leader has appended nothing since).
    pub leader_known: bool,
    /// The answering monitor's term.
    pub term: u64,
    /// The answering monitor's commit index (its applied index when it is not the leader).
    pub commit_index: u64,
    /// Per member, the highest log index the leader knows replicated to it (0 when none): a voter the
    /// current leader ever replicated to has taken part.
    pub matched: BTreeMap<String, u64>,
    /// The term of the entry that registered the cluster id, from the leader's history (`None` when
    /// not found there): equal to `term`, the leader is the one that created the cluster.
    pub id_registered_term: Option<u64>,
}

impl PeerMembership {
    /// Every member, voters and learners.
    pub fn names(&self) -> BTreeSet<String> {
        self.voters.union(&self.learners).cloned().collect()
    }

    /// Whether this answer shows that voter `me` cannot have taken part in the cluster yet, so that
    /// its empty store lost nothing: a brand-new cluster whose first monitors started before it.
    /// Either the leader that created the cluster (the cluster id registered in its term, or none yet)
    /// has never replicated anything to `me`, or no leader is known, no cluster id is registered and
    /// nothing is committed (no leader was ever elected). Anything else counts as taken part.
    pub fn never_reached(&self, me: &str) -> bool {
        if self.from_leader {
            self.matched.get(me).copied().unwrap_or(0) == 0
                && (self.cluster_id.is_empty() || self.id_registered_term == Some(self.term))
        } else {
            !self.leader_known && self.cluster_id.is_empty() && self.commit_index == 0
        }
    }
}

/// A control client of monitor `name` at `addr` (with TLS when the cluster uses it), connected
/// within [`PROBE_TIMEOUT`]; `None` when it cannot be reached.
async fn connect(
    addr: &str,
    name: &str,
    tls: Option<&ClientTls>,
) -> Option<MonitorControlClient<Channel>> {
    let ep = Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(PROBE_TIMEOUT)
        .timeout(PROBE_TIMEOUT);
    let ch = match tls {
        Some(tls) => ep.connect_with_connector(tls.connector(Some(name))).await,
        None => ep.connect().await,
    };
    Some(MonitorControlClient::new(ch.ok()?))
}

/// Asks monitor `name` at `addr` for its own view (not forwarded to the leader, see
/// `ClusterStatusRequest.local`) and, when it is the leader, for the term the cluster id was
/// registered in; `Some(membership)` when it belongs to an initialized cluster, `None` when
/// unreachable or not initialized.
pub async fn probe_membership(
    addr: &str,
    name: &str,
    tls: Option<&ClientTls>,
) -> Option<PeerMembership> {
    let call = async {
        let mut c = connect(addr, name, tls).await?;
        let r = c
            .cluster_status(ClusterStatusRequest {
                protocol_version: PROTOCOL_VERSION,
                local: true,
            })
            .await
            .ok()?
            .into_inner();
        let from_leader = r.leader_id != 0 && r.node_id == r.leader_id;
        let mut m = PeerMembership {
            cluster_id: r.cluster_id,
            from_leader,
            leader_known: r.leader_id != 0,
            term: r.term,
            commit_index: r.commit_index,
            ..PeerMembership::default()
        };
        for member in r.members {
            m.matched.insert(member.name.clone(), member.matched_index);
            if member.voter {
                m.voters.insert(member.name);
            } else {
                m.learners.insert(member.name);
            }
        }
        if from_leader && !m.cluster_id.is_empty() {
            m.id_registered_term = registration_term(c).await;
        }
        Some(m)
    };
    match tokio::time::timeout(PROBE_DEADLINE, call).await {
        Ok(Some(m)) if !m.voters.is_empty() || !m.learners.is_empty() => Some(m),
        _ => None,
    }
}

/// The term of the decision that registered the cluster id, in the history the monitor behind `c`
/// keeps (`None` when it has dropped out of the history or the call fails).
async fn registration_term(mut c: MonitorControlClient<tonic::transport::Channel>) -> Option<u64> {
    let h = c
        .history(HistoryRequest {
            protocol_version: PROTOCOL_VERSION,
            // All of it: the registration is the first decision kept.
            limit: u32::MAX,
        })
        .await
        .ok()?
        .into_inner();
    h.decisions
        .iter()
        .find(|d| d.role == "cluster_id")
        .and_then(|d| d.epoch.as_ref())
        .map(|e| e.term)
}

/// Asks monitor `name` at `addr` for its view; `Some(member names)` when it belongs to an initialized
/// cluster, `None` when unreachable or not initialized.
pub async fn probe(addr: &str, name: &str, tls: Option<&ClientTls>) -> Option<BTreeSet<String>> {
    probe_membership(addr, name, tls).await.map(|m| m.names())
}

/// What a monitor whose data dir is empty does, from what the reachable peers report (module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FreshStart {
    /// No peer belongs to a cluster: initialize a new one with the configured members.
    Initialize,
    /// A peer lists this monitor as a learner, or as a voter that cannot have taken part yet: start
    /// without members, the leader sends the state.
    AwaitCatchUp,
    /// A peer belongs to a cluster without this monitor: start without members, wait to be added.
    AwaitAdd,
    /// Peer `peer` lists this monitor as a voter: do not start (it forgot its vote and log).
    Refuse {
        /// The peer that lists this monitor as a voter.
        peer: String,
        /// That peer's membership, for the message.
        membership: PeerMembership,
    },
}

/// The decision for monitor `me` with an empty data dir, given the answers of the reachable peers
/// (`(peer name, membership)`; unreachable and uninitialized peers are left out). The leader's answer
/// (the highest term's, should two claim it) decides whether `me` is a voter that may have taken part
/// ([`PeerMembership::never_reached`]): only it knows what it replicated, and its membership is the
/// newest. Without one, any answer listing `me` as a voter that cannot vouch for it refuses. Then
/// member (voter or learner), then any cluster.
pub fn fresh_start(me: &str, answers: &[(String, PeerMembership)]) -> FreshStart {
    let may_have_taken_part = |m: &PeerMembership| m.voters.contains(me) && !m.never_reached(me);
    let leader = answers
        .iter()
        .filter(|(_, m)| m.from_leader)
        .max_by_key(|(_, m)| m.term);
    let refusing = match leader {
        Some(l) => Some(l).filter(|(_, m)| may_have_taken_part(m)),
        None => answers.iter().find(|(_, m)| may_have_taken_part(m)),
    };
    if let Some((peer, m)) = refusing {
        return FreshStart::Refuse {
            peer: peer.clone(),
            membership: m.clone(),
        };
    }
    let member = |m: &PeerMembership| m.names().contains(me);
    let is_member = match leader {
        Some((_, m)) => member(m),
        None => answers.iter().any(|(_, m)| member(m)),
    };
    if is_member {
        return FreshStart::AwaitCatchUp;
    }
    if answers.is_empty() {
        FreshStart::Initialize
    } else {
        FreshStart::AwaitAdd
    }
}

/// A monitor with an empty data dir that a running cluster lists as a voter: it must not start as
/// that voter (module docs). The message names the data dir, the voters and the commands to use.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to start: the data_dir {data_dir} is empty but monitor {monitor} is a voter of the running \
     monitor cluster{cluster} (voters {voters_list}, as {peer} reports). A voter that lost its Raft log and \
     vote could help elect a leader that misses committed decisions. Rejoin instead: run \
     `mmmctl cluster remove {monitor}` against a running monitor, start this monitor again with its \
     empty data_dir (it then waits to be added), and run `mmmctl cluster add {monitor} {addr}` against \
     a running monitor: it joins as a learner, is caught up, then becomes a voter",
    voters_list = join(.voters)
)]
pub struct RejoinRefused {
    /// This monitor's name.
    pub monitor: String,
    /// Its empty data dir (so the operator sees which directory was found empty).
    pub data_dir: std::path::PathBuf,
    /// This monitor's `ip:port`, for the `cluster add` command.
    pub addr: String,
    /// The peer that lists it as a voter.
    pub peer: String,
    /// The voters that peer reports.
    pub voters: BTreeSet<String>,
    /// " ID" (a space and the peer's cluster id) when it has one, "" otherwise: which cluster it is.
    pub cluster: String,
}

/// `a, b, c`.
fn join(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// The initial members to start the Raft node with: the configured ones, unless this monitor's data
/// dir is empty and a configured peer already belongs to a cluster (then none: wait to be added or
/// caught up), or refused when that cluster lists this monitor as a voter ([`fresh_start`]).
pub async fn initial_members(
    config: &Config,
    me: &str,
    data_dir: &Path,
    members: BTreeMap<u64, NodeInfo>,
    tls: Option<&ClientTls>,
) -> Result<BTreeMap<u64, NodeInfo>, RejoinRefused> {
    let fresh = std::fs::read_dir(data_dir).map_or(true, |mut d| d.next().is_none());
    if !fresh {
        return Ok(members);
    }
    let peers: Vec<(String, String)> = config
        .monitor_nodes
        .values()
        .filter(|n| n.name != me)
        .map(|n| (n.name.clone(), format!("{}:{}", n.ip, n.port)))
        .collect();
    let answers =
        futures::future::join_all(peers.iter().map(|(n, a)| probe_membership(a, n, tls))).await;
    let answers: Vec<(String, PeerMembership)> = peers
        .into_iter()
        .zip(answers)
        .filter_map(|((peer, _), a)| a.map(|m| (peer, m)))
        .collect();
    match fresh_start(me, &answers) {
        FreshStart::Initialize => Ok(members),
        FreshStart::AwaitCatchUp => {
            tracing::warn!(monitor = me, answers = ?answers, "empty data dir; a member of a running cluster that cannot have taken part yet (a learner, or a voter of a cluster still forming): waiting for the leader to send its state");
            Ok(BTreeMap::new())
        }
        FreshStart::AwaitAdd => {
            tracing::warn!(monitor = me, answers = ?answers, "a cluster is already running and does not include this monitor: waiting to be added (`mmmctl cluster add {me} IP:PORT` on any monitor)");
            Ok(BTreeMap::new())
        }
        FreshStart::Refuse { peer, membership } => Err(RejoinRefused {
            monitor: me.to_string(),
            data_dir: data_dir.to_path_buf(),
            addr: config
                .monitor_nodes
                .get(me)
                .map_or_else(|| "IP:PORT".into(), |n| format!("{}:{}", n.ip, n.port)),
            peer,
            voters: membership.voters,
            cluster: if membership.cluster_id.is_empty() {
                String::new()
            } else {
                format!(" {}", membership.cluster_id)
            },
        }),
    }
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
    tls: Option<&ClientTls>,
) -> (usize, usize) {
    let checks = voters.iter().map(|id| {
        let node = nodes.get(id).cloned();
        let me = *id == consensus.id();
        async move {
            if me {
                return true;
            }
            match node {
                Some(n) => probe(&n.addr, &n.name, tls).await.is_some(),
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
    if probe(addr, name, ctx.tls.as_ref())
        .await
        .is_some_and(|m| !m.contains(name))
    {
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
    let (up, need) = majority_answers(&ctx.consensus, &new_voters, &nodes, ctx.tls.as_ref()).await;
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
        let (up, need) = majority_answers(&ctx.consensus, &rest, &nodes, ctx.tls.as_ref()).await;
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

    /// The view of a cluster that has run a while: its leader (term 3) replicated to every member,
    /// and registered the cluster id in term 1.
    fn view(voters: &[&str], learners: &[&str]) -> PeerMembership {
        PeerMembership {
            voters: voters.iter().map(|s| s.to_string()).collect(),
            learners: learners.iter().map(|s| s.to_string()).collect(),
            cluster_id: "00112233445566778899aabbccddeeff".into(),
            from_leader: true,
            leader_known: true,
            term: 3,
            commit_index: 40,
            matched: voters
                .iter()
                .chain(learners)
                .map(|s| (s.to_string(), 40))
                .collect(),
            id_registered_term: Some(1),
        }
    }

    #[test]
    fn a_wiped_voter_refuses_a_wiped_learner_waits_and_no_cluster_initializes() {
        let refuse = |peer: &str, m: &PeerMembership| FreshStart::Refuse {
            peer: peer.into(),
            membership: m.clone(),
        };
        let three = view(&["mon1", "mon2", "mon3"], &[]);
        let learner = view(&["mon1", "mon2"], &["mon3"]);
        let without = view(&["mon1", "mon2"], &[]);
        // A brand-new cluster whose first leader (term 1) has not yet replicated to mon3.
        let mut forming = view(&["mon1", "mon2", "mon3"], &[]);
        forming.term = 1;
        forming.matched.insert("mon3".into(), 0);
        // The same before any leader was elected (a follower answers, nothing committed).
        let leaderless = PeerMembership {
            from_leader: false,
            leader_known: false,
            cluster_id: String::new(),
            commit_index: 0,
            matched: BTreeMap::new(),
            id_registered_term: None,
            ..forming.clone()
        };
        // Not reached by the current leader, but the cluster had leaders before it: mon3 may have
        // taken part under them.
        let mut later_leader = forming.clone();
        later_leader.term = 3;
        // A cluster whose registration left the history: it counts as one mon3 took part in.
        let mut unknown_age = forming.clone();
        unknown_age.id_registered_term = None;
        // No leader now, but a cluster id: a leader ran, mon3 may have taken part.
        let mut leaderless_old = leaderless.clone();
        leaderless_old.cluster_id = three.cluster_id.clone();
        // Followers' own views: a leader is known, but they cannot tell what it replicated.
        let follower = PeerMembership {
            from_leader: false,
            matched: BTreeMap::new(),
            ..forming.clone()
        };
        let follower_without = PeerMembership {
            from_leader: false,
            matched: BTreeMap::new(),
            ..without.clone()
        };
        type Answers = Vec<(String, PeerMembership)>;
        let one = |peer: &str, m: &PeerMembership| vec![(peer.to_string(), m.clone())];
        let cases: Vec<(&str, Answers, FreshStart)> = vec![
            ("no peer answers", vec![], FreshStart::Initialize),
            ("a voter", one("mon1", &three), refuse("mon1", &three)),
            ("a learner", one("mon1", &learner), FreshStart::AwaitCatchUp),
            ("not a member", one("mon2", &without), FreshStart::AwaitAdd),
            (
                "a voter of a cluster forming",
                one("mon1", &forming),
                FreshStart::AwaitCatchUp,
            ),
            (
                "a voter, no leader yet",
                one("mon1", &leaderless),
                FreshStart::AwaitCatchUp,
            ),
            (
                "a voter, later leader",
                one("mon1", &later_leader),
                refuse("mon1", &later_leader),
            ),
            (
                "a voter, age unknown",
                one("mon1", &unknown_age),
                refuse("mon1", &unknown_age),
            ),
            (
                "a voter, no leader now",
                one("mon1", &leaderless_old),
                refuse("mon1", &leaderless_old),
            ),
            // The leader's answer decides, whatever the order.
            (
                "a stale follower without it, the leader with it as voter",
                vec![
                    ("mon1".into(), follower_without.clone()),
                    ("mon2".into(), three.clone()),
                ],
                refuse("mon2", &three),
            ),
            (
                "a follower without it, the leader with it as learner",
                vec![
                    ("mon1".into(), follower_without.clone()),
                    ("mon2".into(), learner.clone()),
                ],
                FreshStart::AwaitCatchUp,
            ),
            (
                "a follower of a forming cluster, its leader never replicated to it",
                vec![
                    ("mon1".into(), follower.clone()),
                    ("mon2".into(), forming.clone()),
                ],
                FreshStart::AwaitCatchUp,
            ),
            (
                "only a follower, which knows a leader",
                vec![("mon1".into(), follower.clone())],
                refuse("mon1", &follower),
            ),
            (
                "the leader without it (just removed), a lagging follower with it",
                vec![
                    ("mon1".into(), follower.clone()),
                    ("mon2".into(), without.clone()),
                ],
                FreshStart::AwaitAdd,
            ),
        ];
        for (what, answers, expected) in cases {
            assert_eq!(fresh_start("mon3", &answers), expected, "{what}");
        }
        // Negative control: the same answers for another monitor name are no refusal, so the table
        // above tells a voter from a non-member.
        assert_eq!(
            fresh_start("mon4", &[("mon1".into(), three.clone())]),
            FreshStart::AwaitAdd
        );
    }

    #[test]
    fn the_refusal_names_the_data_dir_the_voters_and_the_commands() {
        let e = RejoinRefused {
            monitor: "mon3".into(),
            data_dir: "/var/lib/mmm/mon3".into(),
            addr: "10.0.0.23:9988".into(),
            peer: "mon1".into(),
            voters: view(&["mon1", "mon2", "mon3"], &[]).voters,
            cluster: " 00112233445566778899aabbccddeeff".into(),
        }
        .to_string();
        for part in [
            "/var/lib/mmm/mon3",
            "(voters mon1, mon2, mon3, as mon1 reports)",
            "`mmmctl cluster remove mon3`",
            "`mmmctl cluster add mon3 10.0.0.23:9988`",
            "cluster 00112233445566778899aabbccddeeff (voters",
        ] {
            assert!(e.contains(part), "{part:?} missing from: {e}");
        }
    }
}
