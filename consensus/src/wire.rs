//! The envelope of the `Raft` gRPC service: openraft's messages as JSON in `payload`, tagged with
//! `format_version` so a node refuses what it cannot read instead of misreading it; plus the
//! messages of the `ForwardWrite` RPC (a follower's write or read-index request to the leader).

use mmm_proto::{RaftReply, RaftRequest, PROTOCOL_VERSION};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::state::{Request, Response};
use crate::types::{LogId, NodeId};

/// What a follower asks the leader over `ForwardWrite`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub enum Forward {
    /// Propose this request and answer once it is applied.
    Write(Request),
    /// Confirm leadership with a quorum and answer the log id a linearizable read must wait for.
    ReadIndex,
}

/// The leader's answer to a [`Forward`].
#[derive(Serialize, Deserialize, Debug, Clone)]
pub enum ForwardReply {
    /// The request was committed and applied with this response.
    Written(Response),
    /// Leadership confirmed; reads are linearizable once this log id is applied.
    ReadIndex(Option<LogId>),
    /// The receiver is not the leader; it knows this one (if any).
    NotLeader(Option<NodeId>),
    /// The receiver could not complete the request in time, or a quorum did not confirm it (no quorum).
    Timeout(String),
    /// Any other failure.
    Failed(String),
}

/// Why an envelope could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The peer speaks another version.
    #[error("peer sent format version {found}, this node reads format version {expected}")]
    Version {
        /// The peer's version.
        found: u32,
        /// Ours.
        expected: u32,
    },
    /// The JSON did not decode.
    #[error("cannot decode payload: {0}")]
    Decode(#[from] serde_json::Error),
}

fn check_version(found: u32) -> Result<(), WireError> {
    if found != PROTOCOL_VERSION {
        return Err(WireError::Version {
            found,
            expected: PROTOCOL_VERSION,
        });
    }
    Ok(())
}

/// Wraps a message for sending.
pub fn request<T: Serialize>(from: NodeId, msg: &T) -> Result<RaftRequest, serde_json::Error> {
    Ok(RaftRequest {
        format_version: PROTOCOL_VERSION,
        from,
        payload: serde_json::to_vec(msg)?,
    })
}

/// Unwraps a received request.
pub fn decode_request<T: DeserializeOwned>(req: &RaftRequest) -> Result<T, WireError> {
    check_version(req.format_version)?;
    Ok(serde_json::from_slice(&req.payload)?)
}

/// Wraps the result of a Raft call as a reply: `Ok` in `payload`, `Err` in `error`.
pub fn reply<T: Serialize, E: Serialize>(
    result: &Result<T, E>,
) -> Result<RaftReply, serde_json::Error> {
    let mut r = RaftReply {
        format_version: PROTOCOL_VERSION,
        payload: Vec::new(),
        error: Vec::new(),
    };
    match result {
        Ok(t) => r.payload = serde_json::to_vec(t)?,
        Err(e) => r.error = serde_json::to_vec(e)?,
    }
    Ok(r)
}

/// Unwraps a reply: `Ok(Ok(_))` on success, `Ok(Err(_))` when the remote Raft refused.
pub fn decode_reply<T: DeserializeOwned, E: DeserializeOwned>(
    r: &RaftReply,
) -> Result<Result<T, E>, WireError> {
    check_version(r.format_version)?;
    if !r.error.is_empty() {
        return Ok(Err(serde_json::from_slice(&r.error)?));
    }
    Ok(Ok(serde_json::from_slice(&r.payload)?))
}
