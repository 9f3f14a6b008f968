//! Settings of a consensus node.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::types::{NodeId, NodeInfo};

/// How a monitor joins the Raft cluster.
#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    /// This monitor's name; its node id is `node_id(name)`.
    pub name: String,
    /// Where sled keeps the log, vote and snapshots.
    pub data_dir: PathBuf,
    /// The initial voters (id -> name, address), the same on every monitor; used on first start only.
    pub members: BTreeMap<NodeId, NodeInfo>,
    /// Leader heartbeat period (ms).
    pub heartbeat_ms: u64,
    /// Lower bound of the election timeout (ms).
    pub election_min_ms: u64,
    /// Upper bound of the election timeout (ms).
    pub election_max_ms: u64,
    /// Build a snapshot (and purge the log before it) every this many entries.
    pub snapshot_every: u64,
}

/// Defaults chosen so a new leader commits within 500 ms of the old one's death. openraft 0.9 starts
/// an election only after `election_max_ms` (the old leader's lease) plus this node's election timeout
/// (drawn once in `[election_min_ms, election_max_ms)`) without a heartbeat, checked every
/// 1.5 x `heartbeat_ms`: 200 + 100..200 + up to 75 ms, then one vote and one commit round trip.
/// A follower thus needs 300 ms of silence (6 heartbeats) before it disturbs a leader.
/// The heartbeat period is also openraft's AppendEntries timeout, so it must exceed a follower's
/// fsync time.
pub const DEFAULT_HEARTBEAT_MS: u64 = 50;
/// See [`DEFAULT_HEARTBEAT_MS`].
pub const DEFAULT_ELECTION_MIN_MS: u64 = 100;
/// See [`DEFAULT_HEARTBEAT_MS`].
pub const DEFAULT_ELECTION_MAX_MS: u64 = 200;
/// Entries between snapshots.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 1000;

impl ConsensusConfig {
    /// A configuration with the default timings.
    pub fn new(
        name: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        members: BTreeMap<NodeId, NodeInfo>,
    ) -> Self {
        ConsensusConfig {
            name: name.into(),
            data_dir: data_dir.into(),
            members,
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            election_min_ms: DEFAULT_ELECTION_MIN_MS,
            election_max_ms: DEFAULT_ELECTION_MAX_MS,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
        }
    }

    /// The members map from (name, address) pairs, with ids derived from names.
    pub fn members_from<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> BTreeMap<NodeId, NodeInfo> {
        pairs
            .into_iter()
            .map(|(name, addr)| (crate::types::node_id(name), NodeInfo::new(name, addr)))
            .collect()
    }
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig::new("", PathBuf::new(), BTreeMap::new())
    }
}
