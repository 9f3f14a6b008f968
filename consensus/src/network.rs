//! The Raft transport, client side: openraft's `RaftNetworkFactory`/`RaftNetwork` over the tonic
//! `Raft` service. One lazily connected `tonic::transport::Channel` per peer is cached and reused
//! (tonic reconnects it after a failure). Every call has a deadline (openraft's `hard_ttl`, capped
//! by [`MAX_RPC_TIMEOUT`]). Errors are mapped so openraft can tell an unreachable peer
//! (`Unreachable`, backed off) from a timeout and from a peer whose Raft refused (`RemoteError`).

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mmm_proto::raft_client::RaftClient;
use mmm_proto::{RaftReply, RaftRequest};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, RPCTypes};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::faults::NetworkFaults;
use crate::types::{NodeId, NodeInfo, TypeConfig};
use crate::wire;

/// Upper bound of any single Raft RPC, whatever openraft asks.
pub const MAX_RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// How long establishing a TCP (and TLS) connection to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Largest message accepted or sent (snapshot chunks and entry batches stay far below).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Which RPC of the `Raft` service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rpc {
    /// Log replication and heartbeats.
    AppendEntries,
    /// Elections.
    Vote,
    /// One snapshot chunk.
    InstallSnapshot,
    /// A follower's write or read-index request to the leader.
    ForwardWrite,
}

/// Why a call failed, before openraft's error mapping.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Dropped by the test fault hook.
    #[error("network cut between {from} and {to} (test fault)")]
    Cut {
        /// Sender.
        from: NodeId,
        /// Target.
        to: NodeId,
    },
    /// No answer within the deadline.
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout {
        /// Peer address.
        addr: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The peer cannot be reached (connection refused, reset, DNS...).
    #[error("peer {addr} unreachable: {msg}")]
    Unreachable {
        /// Peer address.
        addr: String,
        /// Details.
        msg: String,
    },
    /// The peer answered with a gRPC error or an unreadable message.
    #[error("call to {addr} failed: {msg}")]
    Failed {
        /// Peer address.
        addr: String,
        /// Details.
        msg: String,
    },
}

/// Options of the transport.
#[derive(Clone, Debug, Default)]
pub struct TransportOptions {
    /// Test-only fault injection (see [`NetworkFaults`]); empty in production.
    pub faults: NetworkFaults,
    /// Mutual TLS for connections to peers (the peer's certificate must carry its address as an IP
    /// SAN); `None` connects in plain text.
    pub tls: Option<mmm_tls::ClientTls>,
}

/// The shared part of the transport.
struct Inner {
    /// This node's id (sent as `from`, checked against faults).
    self_id: NodeId,
    /// Transport options (faults, TLS).
    opts: TransportOptions,
    /// One channel per peer with the address it was built for.
    channels: Mutex<HashMap<NodeId, (String, Channel)>>,
}

/// The transport; a cheap handle (clones share the channel cache). Implements `RaftNetworkFactory`.
#[derive(Clone)]
pub struct Network {
    /// Shared state.
    inner: Arc<Inner>,
}

impl Network {
    /// A transport for node `self_id`.
    pub fn new(self_id: NodeId, opts: TransportOptions) -> Self {
        Network {
            inner: Arc::new(Inner {
                self_id,
                opts,
                channels: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The cached channel to `target` at `addr`, created (lazily connected) if missing or moved.
    fn channel(&self, target: NodeId, addr: &str) -> Result<Channel, CallError> {
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((a, ch)) = channels.get(&target) {
            if a == addr {
                return Ok(ch.clone());
            }
        }
        let failed = |e: &dyn Error| CallError::Unreachable {
            addr: addr.to_string(),
            msg: e.to_string(),
        };
        // TLS (when on) is done by the connector, not by the URI scheme.
        let ep = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| failed(&e))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let ch = mmm_tls::channel_for(&ep, self.inner.opts.tls.as_ref(), None);
        tracing::debug!(peer = target, %addr, "new channel to peer");
        channels.insert(target, (addr.to_string(), ch.clone()));
        Ok(ch)
    }

    /// Sends one request to `target` at `addr` with a deadline.
    pub async fn call(
        &self,
        target: NodeId,
        addr: &str,
        rpc: Rpc,
        req: RaftRequest,
        timeout: Duration,
    ) -> Result<RaftReply, CallError> {
        let from = self.inner.self_id;
        if self.inner.opts.faults.is_cut(from, target) {
            return Err(CallError::Cut { from, to: target });
        }
        let timeout = timeout.min(MAX_RPC_TIMEOUT);
        let channel = self.channel(target, addr)?;
        let mut client = RaftClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut request = tonic::Request::new(req);
        request.set_timeout(timeout);
        let fut = async move {
            match rpc {
                Rpc::AppendEntries => client.append_entries(request).await,
                Rpc::Vote => client.vote(request).await,
                Rpc::InstallSnapshot => client.install_snapshot(request).await,
                Rpc::ForwardWrite => client.forward_write(request).await,
            }
        };
        let addr_s = || addr.to_string();
        match tokio::time::timeout(timeout, fut).await {
            Err(_) => Err(CallError::Timeout {
                addr: addr_s(),
                timeout,
            }),
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(match status.code() {
                tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => CallError::Timeout {
                    addr: addr_s(),
                    timeout,
                },
                tonic::Code::Unavailable => CallError::Unreachable {
                    addr: addr_s(),
                    msg: status.message().to_string(),
                },
                _ => CallError::Failed {
                    addr: addr_s(),
                    msg: format!("{:?}: {}", status.code(), status.message()),
                },
            }),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        PeerClient {
            net: self.clone(),
            target,
            node: node.clone(),
        }
    }
}

/// The transport to one peer, as openraft's `RaftNetwork`.
pub struct PeerClient {
    /// The shared transport.
    net: Network,
    /// The peer's id.
    target: NodeId,
    /// The peer's name and address.
    node: NodeInfo,
}

impl PeerClient {
    async fn rpc<Req, Resp, E>(
        &self,
        rpc: Rpc,
        kind: RPCTypes,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, NodeInfo, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        let self_id = self.net.inner.self_id;
        let timeout = option.hard_ttl().min(MAX_RPC_TIMEOUT);
        let request =
            wire::request(self_id, req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let reply = match self
            .net
            .call(self.target, &self.node.addr, rpc, request, timeout)
            .await
        {
            Ok(r) => r,
            Err(e @ (CallError::Cut { .. } | CallError::Unreachable { .. })) => {
                tracing::debug!(peer = self.target, error = %e, "peer unreachable");
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
            Err(CallError::Timeout { timeout, .. }) => {
                return Err(RPCError::Timeout(Timeout {
                    action: kind,
                    id: self_id,
                    target: self.target,
                    timeout,
                }));
            }
            Err(e @ CallError::Failed { .. }) => {
                return Err(RPCError::Network(NetworkError::new(&e)))
            }
        };
        match wire::decode_reply::<Resp, E>(&reply) {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                remote,
            ))),
            Err(e) => Err(RPCError::Network(NetworkError::from(AnyError::new(&e)))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.rpc(Rpc::AppendEntries, RPCTypes::AppendEntries, &rpc, &option)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc(
            Rpc::InstallSnapshot,
            RPCTypes::InstallSnapshot,
            &rpc,
            &option,
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.rpc(Rpc::Vote, RPCTypes::Vote, &rpc, &option).await
    }

    fn backoff(&self) -> Backoff {
        // Retry an unreachable peer soon: a restarted monitor should rejoin quickly.
        Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
