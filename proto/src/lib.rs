//! The wire interface of mmm-rs: gRPC services and messages, generated from `proto/mmm/v1/*.proto`.
//!
//! `PROTOCOL_VERSION` is sent in every request; a receiver refuses a version it cannot read.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

/// Version of the messages in this crate. Bump on any change a peer must know about.
pub const PROTOCOL_VERSION: u32 = 1;

/// Generated types and services of package `mmm.v1`.
pub mod v1 {
    tonic::include_proto!("mmm.v1");
}

pub use v1::*;
