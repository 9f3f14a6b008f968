//! The wire interface of mmm-rs: gRPC services and messages, generated from `proto/mmm/v1/*.proto`.
//!
//! `PROTOCOL_VERSION` is sent in every request; a receiver refuses a version it cannot read.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

/// Version of the messages in this crate. Bump on any change a peer must know about.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest time from the end of a writer lease to writes denied by the fence an agent keeps inside
/// mysqld, whether or not the agent is alive (see `mmm_agent::fence`). The monitors add it to every
/// lease before they trust the lease to be over, so both sides read it from here.
pub const FENCE_BOUND_MILLIS: u64 = 400;

/// Generated types and services of package `mmm.v1`.
pub mod v1 {
    tonic::include_proto!("mmm.v1");
}

pub use v1::*;
