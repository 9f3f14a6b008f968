//! The Raft transport, server side: the tonic `Raft` service that hands peers' messages to the local
//! openraft instance, and answers followers' forwarded writes and read-index requests.

use std::time::Duration;

use mmm_proto::raft_server::Raft as RaftRpc;
use mmm_proto::{RaftReply, RaftRequest};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::faults::NetworkFaults;
use crate::types::{NodeId, Raft, TypeConfig};
use crate::wire::{self, Forward, ForwardReply, WireError};

/// The `Raft` gRPC service of one node.
pub struct RaftService {
    /// This node's id, for the fault hook and logs.
    id: NodeId,
    /// The local Raft.
    raft: Raft,
    /// Test-only fault injection.
    faults: NetworkFaults,
    /// Deadline of a forwarded write or read-index request handled here.
    forward_timeout: Duration,
    /// When this node last accepted entries or a heartbeat from a leader (the start of its lease on
    /// that leader, for [`crate::leader_watch`]).
    heard: crate::leader_watch::Heard,
}

impl RaftService {
    /// The service of node `id`.
    pub fn new(
        id: NodeId,
        raft: Raft,
        faults: NetworkFaults,
        forward_timeout: Duration,
        heard: crate::leader_watch::Heard,
    ) -> Self {
        RaftService {
            id,
            raft,
            faults,
            forward_timeout,
            heard,
        }
    }

    fn decode<T: DeserializeOwned>(&self, req: &RaftRequest) -> Result<T, Status> {
        if self.faults.is_cut(req.from, self.id) {
            return Err(Status::unavailable("network cut (test fault)"));
        }
        wire::decode_request(req).map_err(|e| match e {
            WireError::Version { .. } => Status::failed_precondition(e.to_string()),
            WireError::Decode(_) => Status::invalid_argument(e.to_string()),
        })
    }
}

fn encode<T: Serialize, E: Serialize>(
    result: &Result<T, E>,
) -> Result<Response<RaftReply>, Status> {
    wire::reply(result)
        .map(Response::new)
        .map_err(|e| Status::internal(format!("cannot encode reply: {e}")))
}

/// Proposes `req` on the local Raft (which must be the leader) and waits for it to be applied.
pub(crate) async fn local_write(
    raft: &Raft,
    req: crate::state::Request,
    timeout: Duration,
) -> ForwardReply {
    match tokio::time::timeout(timeout, raft.client_write(req)).await {
        Err(_) => ForwardReply::Timeout(format!("not committed within {timeout:?}")),
        Ok(Ok(resp)) => ForwardReply::Written(resp.data),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            ForwardReply::NotLeader(f.leader_id)
        }
        Ok(Err(e)) => ForwardReply::Failed(e.to_string()),
    }
}

/// Confirms leadership with a quorum; answers the log id a linearizable read must wait for.
pub(crate) async fn local_read_index(raft: &Raft, timeout: Duration) -> ForwardReply {
    match tokio::time::timeout(timeout, raft.ensure_linearizable()).await {
        Err(_) => ForwardReply::Timeout(format!("leadership not confirmed within {timeout:?}")),
        Ok(Ok(log_id)) => ForwardReply::ReadIndex(log_id),
        Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
            ForwardReply::NotLeader(f.leader_id)
        }
        Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => {
            ForwardReply::Timeout(e.to_string())
        }
        Ok(Err(e)) => ForwardReply::Failed(e.to_string()),
    }
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req: AppendEntriesRequest<TypeConfig> = self.decode(request.get_ref())?;
        let reply = self.raft.append_entries(req).await;
        // Every answer but a higher vote means this node accepted the sender as its leader (openraft
        // renews the voter's lease on those too).
        if matches!(&reply, Ok(r) if !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_)))
        {
            self.heard.now();
        }
        encode(&reply)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req: VoteRequest<NodeId> = self.decode(request.get_ref())?;
        encode(&self.raft.vote(req).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req: InstallSnapshotRequest<TypeConfig> = self.decode(request.get_ref())?;
        encode(&self.raft.install_snapshot(req).await)
    }

    async fn forward_write(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let from = request.get_ref().from;
        let fwd: Forward = self.decode(request.get_ref())?;
        let reply = match fwd {
            Forward::Write(req) => {
                tracing::debug!(from, reason = %req.reason, "forwarded write");
                local_write(&self.raft, req, self.forward_timeout).await
            }
            Forward::ReadIndex => local_read_index(&self.raft, self.forward_timeout).await,
        };
        encode(&Ok::<_, ()>(reply))
    }
}
