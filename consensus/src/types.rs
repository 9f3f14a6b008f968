//! The openraft type configuration of the monitors' cluster: node ids, node descriptions and
//! the aliases of openraft's generic types used across this crate.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::state::{Epoch, Request, Response};

openraft::declare_raft_types!(
    /// The Raft type configuration of the monitors: `Request`s in, `Response`s out, `u64` node ids.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A monitor's Raft node id (see [`node_id`]).
pub type NodeId = u64;
/// A Raft log id of this cluster.
pub type LogId = openraft::LogId<NodeId>;
/// A log entry of this cluster.
pub type Entry = openraft::Entry<TypeConfig>;
/// The Raft instance of this cluster.
pub type Raft = openraft::Raft<TypeConfig>;
/// Raft metrics of this cluster.
pub type Metrics = openraft::RaftMetrics<NodeId, NodeInfo>;
/// A stored membership of this cluster.
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
/// Snapshot metadata of this cluster.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
/// A storage error of this cluster.
pub type StorageError = openraft::StorageError<NodeId>;

/// A monitor as a member of the Raft cluster (openraft's `Node`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// The monitor's name (`this` in mmm_mon.conf); its node id is derived from it.
    pub name: String,
    /// `ip:port` of the monitor's gRPC port, where its `Raft` service listens.
    pub addr: String,
}

impl NodeInfo {
    /// A node description from its name and gRPC address.
    pub fn new(name: impl Into<String>, addr: impl Into<String>) -> Self {
        NodeInfo {
            name: name.into(),
            addr: addr.into(),
        }
    }
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.addr)
    }
}

/// A stable node id derived from a monitor's name (FNV-1a, 64 bit), so that ids survive restarts
/// and membership changes without a registry of ids.
pub fn node_id(name: &str) -> NodeId {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    name.bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The epoch (term, index) of a log id.
pub fn epoch_of(log_id: &LogId) -> Epoch {
    Epoch {
        term: log_id.leader_id.term,
        index: log_id.index,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_fnv1a() {
        // Reference values of FNV-1a 64.
        assert_eq!(node_id(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(node_id("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(node_id("mon1"), node_id("mon2"));
    }
}
