//! The server side: a stream of accepted, handshaken TLS connections for tonic's
//! `serve_with_incoming`, with client certificates required and verified against the CA.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::TlsError;
use crate::material::TlsMaterial;
use crate::verify::Reloading;

/// Longest a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections handshaken but not yet taken by the server.
const BACKLOG: usize = 64;

/// A rustls server configuration over reloading material: mutual TLS, HTTP/2 (ALPN `h2`).
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// The configuration handed to every accepted connection.
    config: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    /// Builds the server side from this node's material.
    pub fn new(material: &Arc<TlsMaterial>) -> Result<ServerTls, TlsError> {
        let hooks = Arc::new(Reloading(Arc::clone(material)));
        let mut config = rustls::ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(hooks.clone())
            .with_cert_resolver(hooks);
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
        })
    }
}

/// Accepts plain-text connections on `listener` for tonic's `serve_with_incoming`, each with
/// TCP_NODELAY like [`incoming`]'s: a gRPC reply is several frames written one after another, and
/// without it each of them after the first waits for the caller's delayed ACK (up to 40 ms on Linux).
/// `serve_with_incoming` applies none of tonic's socket options itself.
pub fn plain_incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Accepts connections on `listener`, completes each TLS handshake on its own task (within
/// [`HANDSHAKE_TIMEOUT`], so a slow or silent client never holds up others) and yields the
/// connections that passed. Refused handshakes (plain text, unknown CA, no client certificate) are
/// logged and dropped. Ends when the receiving server goes away.
pub fn incoming(
    listener: TcpListener,
    tls: &ServerTls,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(BACKLOG);
    let acceptor = TlsAcceptor::from(Arc::clone(&tls.config));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tx.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // As in `plain_incoming`.
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::info!(%peer, error = %e, "TLS connection refused");
                    }
                    Err(_) => {
                        // Debug only: every follower's leader watch holds an idle connection to the
                        // leader's port, which ends here each time (`mmm_consensus::leader_watch`).
                        tracing::debug!(%peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
