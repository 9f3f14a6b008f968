//! The wire interface of mmm-rs: gRPC services and messages, generated from `proto/mmm/v1/*.proto`.
//!
//! `PROTOCOL_VERSION` is sent in every request; a receiver refuses a version it cannot read.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

/// Version of the messages in this crate. Bump on any change a peer must know about.
pub const PROTOCOL_VERSION: u32 = 1;

/// How often a writer's agent sends a health message (each carries a stamp) when nothing else is sent:
/// the monitors renew a writer's lease only while they heard a stamp this recently, and name it.
pub const WRITER_HEARTBEAT_MILLIS: u64 = 50;
/// Longest time from the end of a writer lease to writes denied by the fence event an agent keeps
/// inside mysqld, whether or not the agent is alive (see `mmm_agent::fence`).
pub const FENCE_EVENT_BOUND_MILLIS: u64 = 400;
/// How often an agent's watchdog looks at a local mysqld that may still accept writes after its lease
/// ended (a stalled server runs neither the agent's statements nor the fence event; see
/// `mmm_agent::last_resort`).
pub const STALLED_KILL_WATCH_MILLIS: u64 = 50;
/// How long one look may take: no answer within it, and the agent kills mysqld.
pub const STALLED_KILL_PROBE_MILLIS: u64 = 250;
/// Allowance from the kill signal to writes stopped.
pub const STALLED_KILL_EFFECT_MILLIS: u64 = 50;
/// Longest time from the end of a writer lease to a server that accepts no writes: a running server
/// closes itself within the fence event's bound; one that stalls before that is seen by the agent's next
/// look and killed. The monitors add it to every lease before they trust the lease to be over, so both
/// sides read it from here.
pub const FENCE_BOUND_MILLIS: u64 = FENCE_EVENT_BOUND_MILLIS
    + STALLED_KILL_WATCH_MILLIS
    + STALLED_KILL_PROBE_MILLIS
    + STALLED_KILL_EFFECT_MILLIS;

/// Length of a monitor cluster id's text form: 128 random bits as lower-case hex digits, so two
/// clusters never draw the same one.
pub const CLUSTER_ID_LEN: usize = 32;

/// True when `id` has the form of a monitor cluster id ([`CLUSTER_ID_LEN`] lower-case hex digits).
pub fn is_cluster_id(id: &str) -> bool {
    id.len() == CLUSTER_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub mod gtid;
pub mod settings;

/// Generated types and services of package `mmm.v1`.
pub mod v1 {
    tonic::include_proto!("mmm.v1");
}

pub use v1::*;

/// The encoded `FileDescriptorSet` of every `.proto` file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("mmm_descriptor");
