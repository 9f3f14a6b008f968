//! A snapshot of the cluster as one node sees it, for `mmmctl` and `/metrics`.

use serde::{Deserialize, Serialize};

use crate::types::{Metrics, NodeId};

/// One member of the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// Node id.
    pub id: NodeId,
    /// Monitor name.
    pub name: String,
    /// gRPC address.
    pub addr: String,
    /// Voter (true) or learner.
    pub voter: bool,
    /// Leader only: last log index known replicated to this member.
    pub matched: Option<u64>,
    /// Leader only: entries this member is behind the leader's last log index.
    pub lag: Option<u64>,
}

/// The cluster as this node sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    /// This node's id.
    pub id: NodeId,
    /// This node's role (Leader, Follower, Candidate, Learner).
    pub role: String,
    /// Current term.
    pub term: u64,
    /// The leader this node knows, if any.
    pub leader: Option<NodeId>,
    /// Members, voters and learners.
    pub members: Vec<MemberView>,
    /// Last log index of this node.
    pub last_log_index: Option<u64>,
    /// Leader: the index a majority of voters holds (committed). Others: the applied index (a lower bound).
    pub commit_index: Option<u64>,
    /// Last applied index of this node.
    pub applied_index: Option<u64>,
    /// Leader only: ms since a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
}

impl ClusterView {
    /// Builds the view from Raft metrics.
    pub fn from_metrics(m: &Metrics) -> Self {
        let membership = m.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let last = m.last_log_index;
        let repl = m.replication.as_ref();
        let matched_of = |id: NodeId| -> Option<u64> {
            if id == m.id {
                return last;
            }
            repl.and_then(|r| r.get(&id).cloned().flatten())
                .map(|l| l.index)
        };
        let members = membership
            .nodes()
            .map(|(id, n)| {
                let matched = repl.and(matched_of(*id));
                MemberView {
                    id: *id,
                    name: n.name.clone(),
                    addr: n.addr.clone(),
                    voter: voters.contains(id),
                    matched,
                    lag: repl.map(|_| last.unwrap_or(0).saturating_sub(matched.unwrap_or(0))),
                }
            })
            .collect();
        let applied_index = m.last_applied.map(|l| l.index);
        let commit_index = if repl.is_some() && !voters.is_empty() {
            // The highest index held by a majority: the (n/2)th largest matched index.
            let mut idx: Vec<u64> = voters.iter().map(|v| matched_of(*v).unwrap_or(0)).collect();
            idx.sort_unstable_by(|a, b| b.cmp(a));
            idx.get(voters.len() / 2).copied()
        } else {
            applied_index
        };
        ClusterView {
            id: m.id,
            role: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader,
            members,
            last_log_index: last,
            commit_index,
            applied_index,
            millis_since_quorum_ack: m.millis_since_quorum_ack,
        }
    }
}
