//! A monitor's membership in the Raft cluster: opens the sled store, builds the openraft instance,
//! initializes a new cluster on first start, and offers writes (forwarded to the leader from a
//! follower), linearizable and local reads, status and change notifications.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use mmm_proto::raft_server::RaftServer;
use openraft::error::{InitializeError, RaftError};
use openraft::{Config, ServerState, SnapshotPolicy};
use tokio::sync::watch;

use crate::ack_clock::AckClock;
use crate::config::ConsensusConfig;
use crate::error::{ReadError, WriteError};
use crate::network::{CallError, Network, Rpc, TransportOptions, MAX_MESSAGE_BYTES};
use crate::service::{local_read_index, local_write, RaftService};
use crate::state::{ClusterState, Epoch, Request, Response};
use crate::store::{self, LogStore, SmData};
use crate::types::{epoch_of, node_id, Metrics, NodeId, NodeInfo, Raft};
use crate::view::ClusterView;
use crate::wire::{self, Forward, ForwardReply};

/// Default deadline of [`ConsensusNode::write`] and [`ConsensusNode::read_linearizable`].
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a new leader to be known before retrying a refused forward.
const LEADER_CHANGE_WAIT: Duration = Duration::from_millis(100);

/// One monitor's Raft node.
pub struct ConsensusNode {
    /// This node's id (`node_id(name)`).
    id: NodeId,
    /// This monitor's name.
    name: String,
    /// The openraft instance.
    raft: Raft,
    /// The transport (also used to forward writes to the leader).
    network: Network,
    /// Transport options (fault hook shared with the service).
    opts: TransportOptions,
    /// The applied state, shared with the state machine.
    sm: Arc<RwLock<SmData>>,
    /// Woken with the epoch of every applied entry.
    epoch_rx: watch::Receiver<Epoch>,
    /// The log store, for its size (benchmarks, status).
    log: LogStore,
    /// Deadline of writes and reads.
    client_timeout: Duration,
    /// When a quorum last acknowledged this node as leader, kept current by a task that reads every
    /// metrics update (see [`crate::ack_clock`]: the metrics' own number stops growing when the core
    /// stalls).
    ack_clock: Arc<std::sync::Mutex<AckClock>>,
    /// When this node last accepted a leader's entries or heartbeat (shared with the Raft service and
    /// the leader watch).
    heard: crate::leader_watch::Heard,
}

impl ConsensusNode {
    /// Opens the store in `cfg.data_dir`, starts Raft, and on first start (empty store) initializes
    /// the cluster with `cfg.members` (safe on every member: openraft yields one initialization).
    pub async fn start(cfg: ConsensusConfig) -> anyhow::Result<Arc<ConsensusNode>> {
        Self::start_with(cfg, TransportOptions::default()).await
    }

    /// [`start`](Self::start) with transport options (TLS, test fault hook).
    pub async fn start_with(
        cfg: ConsensusConfig,
        opts: TransportOptions,
    ) -> anyhow::Result<Arc<ConsensusNode>> {
        let id = node_id(&cfg.name);
        let raft_config = Config {
            cluster_name: "mmm".to_string(),
            heartbeat_interval: cfg.heartbeat_ms,
            election_timeout_min: cfg.election_min_ms,
            election_timeout_max: cfg.election_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: cfg.snapshot_every.max(1),
            install_snapshot_timeout: 2000,
            ..Default::default()
        }
        .validate()
        .context("invalid Raft timings")?;

        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
        let (log, sm) = store::open(&cfg.data_dir)?;
        let shared = sm.shared();
        let epoch_rx = sm.subscribe();
        let network = Network::new(id, opts.clone());
        let raft = Raft::new(id, Arc::new(raft_config), network.clone(), log.clone(), sm)
            .await
            .context("cannot start Raft")?;

        let ack_clock = Arc::new(std::sync::Mutex::new(AckClock::default()));
        tokio::spawn(follow_acks(raft.metrics(), Arc::clone(&ack_clock)));
        let heard = crate::leader_watch::Heard::default();
        tokio::spawn(crate::leader_watch::run(
            raft.clone(),
            id,
            Duration::from_millis(cfg.election_max_ms),
            heard.clone(),
        ));
        let node = Arc::new(ConsensusNode {
            id,
            name: cfg.name.clone(),
            raft,
            network,
            opts,
            sm: shared,
            epoch_rx,
            log,
            client_timeout: DEFAULT_CLIENT_TIMEOUT,
            ack_clock,
            heard,
        });

        if node.raft.is_initialized().await? {
            tracing::info!(node = id, name = %cfg.name, "consensus node restarted from its data dir");
        } else if cfg.members.contains_key(&id) {
            match node.raft.initialize(cfg.members.clone()).await {
                Ok(()) => {
                    tracing::info!(node = id, name = %cfg.name, members = cfg.members.len(), "cluster initialized")
                }
                Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                    tracing::info!(node = id, reason = %e, "cluster already initialized")
                }
                Err(e) => return Err(e).context("cannot initialize the cluster"),
            }
        } else {
            tracing::info!(node = id, name = %cfg.name, "not a member of the initial cluster; waiting to be added");
        }
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This monitor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The gRPC service to add to the monitor's tonic server.
    pub fn raft_service(self: &Arc<Self>) -> RaftServer<RaftService> {
        RaftServer::new(RaftService::new(
            self.id,
            self.raft.clone(),
            self.opts.faults.clone(),
            self.client_timeout,
            self.heard.clone(),
        ))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// The openraft instance (membership changes: `add_learner`, `change_membership`).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Raft metrics, updated on every change.
    pub fn metrics(&self) -> watch::Receiver<Metrics> {
        self.raft.metrics()
    }

    /// The locally applied state (may lag the leader; see [`read_linearizable`](Self::read_linearizable)).
    pub fn state(&self) -> Arc<ClusterState> {
        Arc::clone(&self.sm.read().unwrap_or_else(|e| e.into_inner()).state)
    }

    /// The state and the epoch it was read at (the log id of the last applied entry, blank entries of
    /// a new leader included), in one read: a status pushed with this epoch says exactly this state.
    pub fn state_and_epoch(&self) -> (Arc<ClusterState>, Epoch) {
        let d = self.sm.read().unwrap_or_else(|e| e.into_inner());
        let epoch = d.last_applied.as_ref().map(epoch_of).unwrap_or_default();
        (Arc::clone(&d.state), epoch)
    }

    /// Woken with the epoch of every applied entry.
    pub fn subscribe(&self) -> watch::Receiver<Epoch> {
        self.epoch_rx.clone()
    }

    /// Whether this node is the leader (as far as it knows).
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// The leader this node knows, with its name and address.
    pub fn leader(&self) -> Option<(NodeId, NodeInfo)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let info = m.membership_config.membership().get_node(&id).cloned()?;
        Some((id, info))
    }

    /// Members, leader, term, indexes and (on the leader) each follower's replication lag.
    pub fn status(&self) -> ClusterView {
        ClusterView::from_metrics(&self.raft.metrics().borrow())
    }

    /// On the leader: time since a quorum last acknowledged it, growing while the Raft core reports
    /// nothing. `None` when not the leader.
    pub fn leadership_confirmed_within(&self) -> Option<Duration> {
        if !self.is_leader() {
            return None;
        }
        self.ack_clock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .age(Instant::now())
    }

    /// Entries currently kept in the local log (bounded by snapshots and purges).
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// Bytes the local store uses on disk.
    pub fn store_size_on_disk(&self) -> u64 {
        self.log.size_on_disk()
    }

    /// Waits until a leader is known, at most until `deadline`.
    async fn wait_leader(&self, deadline: Instant) -> Option<(NodeId, NodeInfo)> {
        let mut rx = self.raft.metrics();
        loop {
            if let Some(l) = self.leader() {
                return Some(l);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match tokio::time::timeout(left, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }

    /// After a refused or failed attempt: waits (bounded) for the metrics to change, e.g. a new leader.
    async fn wait_change(&self, deadline: Instant) {
        let mut rx = self.raft.metrics();
        rx.borrow_and_update();
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(LEADER_CHANGE_WAIT);
        let _ = tokio::time::timeout(left, rx.changed()).await;
    }

    /// Sends `fwd` to the leader (or runs it here when this node leads).
    async fn to_leader(&self, fwd: Forward, deadline: Instant) -> Result<ForwardReply, Attempt> {
        let Some((leader, info)) = self.wait_leader(deadline).await else {
            return Err(Attempt::NoLeader);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if leader == self.id {
            return Ok(match fwd {
                Forward::Write(req) => local_write(&self.raft, req, left).await,
                Forward::ReadIndex => local_read_index(&self.raft, left).await,
            });
        }
        let req = wire::request(self.id, &fwd).map_err(|e| Attempt::Failed(e.to_string()))?;
        let reply = match self
            .network
            .call(leader, &info.addr, Rpc::ForwardWrite, req, left)
            .await
        {
            Ok(r) => r,
            Err(CallError::Timeout { .. }) => {
                return Ok(ForwardReply::Timeout("leader did not answer".into()))
            }
            Err(e) => return Err(Attempt::Transport(e.to_string())),
        };
        match wire::decode_reply::<ForwardReply, ()>(&reply) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(())) => Err(Attempt::Failed("leader sent an empty error".into())),
            Err(e) => Err(Attempt::Failed(e.to_string())),
        }
    }

    /// Commits `req` (through the leader) and returns what applying it returned. On a timeout the
    /// request may still be committed later.
    pub async fn write(&self, req: Request) -> Result<Response, WriteError> {
        self.write_with_timeout(req, self.client_timeout).await
    }

    /// [`write`](Self::write) with an explicit deadline.
    pub async fn write_with_timeout(
        &self,
        req: Request,
        timeout: Duration,
    ) -> Result<Response, WriteError> {
        let deadline = Instant::now() + timeout;
        let mut last_transport = None;
        loop {
            match self.to_leader(Forward::Write(req.clone()), deadline).await {
                Ok(ForwardReply::Written(resp)) => {
                    return match resp.error {
                        Some(e) => Err(WriteError::Rejected(e)),
                        None => Ok(resp),
                    };
                }
                Ok(ForwardReply::Timeout(_)) => return Err(WriteError::NoQuorum(timeout)),
                Ok(ForwardReply::Failed(e)) => {
                    if self.raft.metrics().borrow().running_state.is_err() {
                        return Err(WriteError::Stopped(e));
                    }
                    last_transport = Some(e);
                }
                Ok(ForwardReply::NotLeader(_)) | Ok(ForwardReply::ReadIndex(_)) => {}
                Err(Attempt::NoLeader) => {}
                Err(Attempt::Transport(e) | Attempt::Failed(e)) => last_transport = Some(e),
            }
            if Instant::now() >= deadline {
                return Err(match last_transport {
                    Some(e) => WriteError::Transport(e),
                    None => WriteError::NoLeader(timeout),
                });
            }
            self.wait_change(deadline).await;
        }
    }

    /// The state after everything committed before the call: leadership is confirmed with a quorum
    /// (on the leader, or by asking it), then this node waits to have applied up to that point.
    pub async fn read_linearizable(&self) -> Result<Arc<ClusterState>, ReadError> {
        self.read_linearizable_within(self.client_timeout).await
    }

    /// [`read_linearizable`](Self::read_linearizable) with its own deadline (a reader that would
    /// rather answer from the local state, with its staleness, than wait out a lost quorum).
    pub async fn read_linearizable_within(
        &self,
        timeout: Duration,
    ) -> Result<Arc<ClusterState>, ReadError> {
        let deadline = Instant::now() + timeout;
        let mut last_transport = None;
        loop {
            match self.to_leader(Forward::ReadIndex, deadline).await {
                Ok(ForwardReply::ReadIndex(log_id)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if let Some(l) = log_id {
                        self.raft
                            .wait(Some(left))
                            .applied_index_at_least(Some(l.index), "linearizable read")
                            .await
                            .map_err(|_| ReadError::NoQuorum(timeout))?;
                    }
                    return Ok(self.state());
                }
                // The leader could not confirm its leadership this time (a quorum's heartbeat
                // answers not in yet, e.g. right after an election or under many concurrent reads):
                // asked again until the deadline, as a client would.
                Ok(ForwardReply::Timeout(e)) => {
                    if Instant::now() >= deadline {
                        return Err(ReadError::NoQuorum(timeout));
                    }
                    tracing::debug!(error = %e, "leadership not confirmed yet; asking again");
                    tokio::time::sleep(
                        LEADER_CHANGE_WAIT.min(deadline.saturating_duration_since(Instant::now())),
                    )
                    .await;
                    continue;
                }
                Ok(ForwardReply::Failed(e)) => {
                    if self.raft.metrics().borrow().running_state.is_err() {
                        return Err(ReadError::Stopped(e));
                    }
                    last_transport = Some(e);
                }
                Ok(ForwardReply::NotLeader(_)) | Ok(ForwardReply::Written(_)) => {}
                Err(Attempt::NoLeader) => {}
                Err(Attempt::Transport(e) | Attempt::Failed(e)) => last_transport = Some(e),
            }
            if Instant::now() >= deadline {
                return Err(match last_transport {
                    Some(e) => ReadError::Transport(e),
                    None => ReadError::NoLeader(timeout),
                });
            }
            self.wait_change(deadline).await;
        }
    }

    /// Stops Raft. The embedding server should stop serving `raft_service` too.
    pub async fn shutdown(&self) {
        tracing::info!(node = self.id, name = %self.name, "consensus node shutting down");
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(node = self.id, error = %e, "raft shutdown error");
        }
    }

    /// The initial members map of a cluster from (name, address) pairs.
    pub fn members(pairs: &[(&str, &str)]) -> BTreeMap<NodeId, NodeInfo> {
        ConsensusConfig::members_from(pairs.iter().copied())
    }
}

/// One failed attempt to reach the leader.
enum Attempt {
    /// No leader known before the deadline.
    NoLeader,
    /// The leader was not reachable.
    Transport(String),
    /// The leader's answer was unreadable.
    Failed(String),
}

/// Turns every metrics update into the instant of the quorum acknowledgement it describes, until Raft
/// shuts down.
async fn follow_acks(
    mut metrics: watch::Receiver<Metrics>,
    clock: Arc<std::sync::Mutex<AckClock>>,
) {
    loop {
        // Copied out first: the metrics' lock is never held while the clock's is taken.
        let (leading, since_ack_ms) = {
            let m = metrics.borrow_and_update();
            (m.state == ServerState::Leader, m.millis_since_quorum_ack)
        };
        clock.lock().unwrap_or_else(|p| p.into_inner()).observe(
            leading,
            since_ack_ms,
            Instant::now(),
        );
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
