//! Errors callers of the node branch on.

use std::time::Duration;

/// Why a write was not committed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// No leader was known (or reachable) within the deadline.
    #[error("no leader within {0:?}")]
    NoLeader(Duration),
    /// The leader took the request but it was not committed within the deadline (no quorum).
    /// It may still be committed later.
    #[error("not committed within {0:?} (no quorum)")]
    NoQuorum(Duration),
    /// Committed, but refused when applied; the state is unchanged.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The leader could not be reached or answered with an error.
    #[error("transport: {0}")]
    Transport(String),
    /// This node's Raft has stopped.
    #[error("raft stopped: {0}")]
    Stopped(String),
}

/// Why a linearizable read failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// No leader was known (or reachable) within the deadline.
    #[error("no leader within {0:?}")]
    NoLeader(Duration),
    /// The leader could not confirm its leadership with a quorum within the deadline.
    #[error("leadership not confirmed within {0:?} (no quorum)")]
    NoQuorum(Duration),
    /// The leader could not be reached or answered with an error.
    #[error("transport: {0}")]
    Transport(String),
    /// This node's Raft has stopped.
    #[error("raft stopped: {0}")]
    Stopped(String),
}
