//! mmm-tls: mutual TLS for every mmm-rs gRPC connection (monitor to monitor, monitor to agent,
//! mmmctl to monitor), turned on by MMM's `<socket> type ssl, cert_file, key_file, ca_file`.
//!
//! - [`TlsMaterial`] holds this node's certificate, key and the cluster CA, and re-reads the files
//!   when they change (checked at most once a second, on use), so certificates are replaced without
//!   a restart. A broken new file is refused and the old material kept.
//! - [`ServerTls`] accepts TLS connections (rustls through tokio-rustls, so the certificate resolver
//!   and the client verifier see reloaded files) and requires a client certificate signed by the CA.
//! - [`ClientTls`] builds tonic channels whose connector speaks TLS with the same reloading material.
//! - [`PeerPolicy`] authorizes a request by the name in its peer certificate (monitor nodes only, for
//!   Raft, follower reports and SetStatus).
//! - [`generate`] writes a new cluster's CA and per-node certificates (`mmmctl certs init`).
//!
//! Names: a node's certificate carries its name (monitor name, host name, or `operator`) as common
//! name and DNS subject alternative name, plus its IP as IP address SAN, so a client verifies a
//! server either by name or by address.

mod authz;
mod client;
mod error;
pub mod generate;
mod material;
mod server;
mod verify;

pub use authz::{PeerGate, PeerPolicy};
pub use client::{channel_for, ClientTls, TlsConnector};
pub use error::TlsError;
pub use material::{TlsFiles, TlsMaterial};
pub use server::{incoming, plain_incoming, ServerTls};

/// What every start of `mmm-monitor` and `mmm-agent` logs (WARN) when `<socket> type` is not `ssl`.
/// Plain text stays possible for MMM compatibility, but it must not go unnoticed.
pub const PLAIN_TEXT_WARNING: &str = "gRPC in plain text (<socket> type plain): the gRPC ports accept \
     unauthenticated commands from anyone who can reach them (moving VIPs, naming a writer, fencing \
     the monitors out); turn mutual TLS on: `mmmctl certs init`, then `<socket> type ssl` with \
     cert_file, key_file and ca_file on every node";

/// [`PLAIN_TEXT_WARNING`] when `socket` is plain text, `None` with mutual TLS.
pub fn plain_text_warning(socket: &mmm_config::SocketConfig) -> Option<&'static str> {
    (socket.kind != mmm_config::SocketKind::Ssl).then_some(PLAIN_TEXT_WARNING)
}

/// The crypto provider used everywhere (ring; no system libraries).
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests;
