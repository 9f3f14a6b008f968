//! Authorization by certificate name: which peers may call what.
//!
//! TLS already proved that the peer holds a certificate signed by the cluster CA; this decides
//! whether that certificate belongs to a node allowed to make the call (e.g. only a monitor may
//! send SetStatus or Raft messages, so an agent's or operator's certificate cannot act as one).

use std::collections::BTreeSet;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use tonic::{Request, Status};

/// The names allowed to make a kind of call.
#[derive(Clone, Debug)]
pub struct PeerPolicy {
    /// Allowed certificate names (DNS SAN).
    allowed: Arc<BTreeSet<String>>,
    /// What the allowed peers are, for the refusal message (e.g. "monitor node").
    role: &'static str,
}

impl PeerPolicy {
    /// A policy admitting certificates that name one of `names`.
    pub fn new(role: &'static str, names: impl IntoIterator<Item = String>) -> PeerPolicy {
        PeerPolicy {
            allowed: Arc::new(names.into_iter().collect()),
            role,
        }
    }

    /// The allowed name the end-entity certificate is valid for, if any.
    pub fn name_of(&self, cert: &CertificateDer<'_>) -> Option<String> {
        let ee = webpki::EndEntityCert::try_from(cert).ok()?;
        self.allowed
            .iter()
            .find(|n| {
                ServerName::try_from(n.as_str())
                    .is_ok_and(|sn| ee.verify_is_valid_for_subject_name(&sn).is_ok())
            })
            .cloned()
    }

    /// Admits `req` when its peer certificate names an allowed node (returns that name); refuses
    /// with `PermissionDenied` otherwise (also when there is no client certificate at all).
    pub fn check<T>(&self, req: &Request<T>) -> Result<String, Status> {
        let certs = req.peer_certs().ok_or_else(|| {
            Status::permission_denied(format!(
                "no client certificate: only a {} may call this",
                self.role
            ))
        })?;
        let leaf = certs.first().ok_or_else(|| {
            Status::permission_denied(format!(
                "empty client certificate chain: only a {} may call this",
                self.role
            ))
        })?;
        self.name_of(leaf).ok_or_else(|| {
            let addr = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::warn!(peer = %addr, role = self.role, "call refused: certificate names no allowed node");
            Status::permission_denied(format!(
                "certificate does not belong to a {}: refused",
                self.role
            ))
        })
    }
}

/// A tonic interceptor applying a [`PeerPolicy`] to a whole service; with `None` (plain text,
/// no certificates to check) it admits everything.
#[derive(Clone, Debug)]
pub struct PeerGate(pub Option<PeerPolicy>);

impl tonic::service::Interceptor for PeerGate {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(p) = &self.0 {
            p.check(&req)?;
        }
        Ok(req)
    }
}
