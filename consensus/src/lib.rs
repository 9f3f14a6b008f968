//! mmm-consensus: the monitors' replicated cluster state — openraft on sled, over gRPC.
//!
//! - [`state`]: the replicated [`ClusterState`] and the [`Request`]s that change it.
//! - [`types`]: the openraft type configuration, [`NodeInfo`] and [`node_id`].
//! - [`store`]: sled storage behind openraft's storage-v2 traits.
//! - [`network`] / [`service`] / [`wire`]: the Raft transport over the tonic `Raft` service.
//! - [`node`]: [`ConsensusNode`], what the monitor embeds.
//! - [`config`], [`error`], [`view`]: its settings, the errors callers branch on, its status view.
//! - [`faults`]: [`NetworkFaults`], a network fault hook for tests.
//! - [`local_cluster`]: [`LocalCluster`], several nodes in one process on loopback (tests, benchmarks).
#![allow(clippy::result_large_err)]

mod ack_clock;
pub mod config;
pub mod error;
pub mod faults;
mod leader_watch;
pub mod local_cluster;
pub mod network;
pub mod node;
pub mod service;
pub mod state;
pub mod store;
pub mod types;
pub mod view;
pub mod wire;

pub use config::ConsensusConfig;
pub use error::{ReadError, WriteError};
pub use faults::NetworkFaults;
pub use local_cluster::LocalCluster;
pub use network::TransportOptions;
pub use node::ConsensusNode;
pub use service::RaftService;
pub use state::*;
pub use types::{epoch_of, node_id, NodeInfo, TypeConfig};
pub use view::{ClusterView, MemberView};
