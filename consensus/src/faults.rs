//! Network fault injection, **for tests only**: a shared set of blocked node ids. Every Raft RPC
//! (and forwarded write) to or from a blocked node is dropped as if the network were cut, in both
//! the client and the server of the transport. Production code never blocks anyone; the set is
//! simply empty.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use crate::types::NodeId;

/// A cheaply clonable set of isolated node ids; clones share the set. For tests.
#[derive(Clone, Debug, Default)]
pub struct NetworkFaults {
    /// The isolated nodes.
    blocked: Arc<RwLock<BTreeSet<NodeId>>>,
}

impl NetworkFaults {
    /// An empty set: nothing is dropped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cuts `id` off: RPCs to and from it are dropped.
    pub fn isolate(&self, id: NodeId) {
        tracing::warn!(node = id, "test fault: isolating node");
        self.blocked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
    }

    /// Reconnects `id`.
    pub fn heal(&self, id: NodeId) {
        tracing::warn!(node = id, "test fault: healing node");
        self.blocked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Reconnects everyone.
    pub fn heal_all(&self) {
        self.blocked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Whether an RPC between `a` and `b` must be dropped.
    pub fn is_cut(&self, a: NodeId, b: NodeId) -> bool {
        let blocked = self.blocked.read().unwrap_or_else(|e| e.into_inner());
        blocked.contains(&a) || blocked.contains(&b)
    }
}
