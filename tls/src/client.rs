//! The client side: tonic channels whose connector speaks TLS with this node's reloading
//! certificate and verifies the server against the current CA and the expected name.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::TlsError;
use crate::material::TlsMaterial;
use crate::verify::Reloading;

/// Longest the TCP connect plus TLS handshake may take (the endpoint's own connect timeout,
/// usually shorter, applies too).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A rustls client configuration over reloading material.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// Shared by every connection.
    config: Arc<rustls::ClientConfig>,
}

impl ClientTls {
    /// Builds the client side from this node's material.
    pub fn new(material: &Arc<TlsMaterial>) -> Result<ClientTls, TlsError> {
        let hooks = Arc::new(Reloading(Arc::clone(material)));
        let mut config = rustls::ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(hooks.clone())
            .with_client_cert_resolver(hooks);
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// A connector that expects the server's certificate to name `server_name` (a node name or an
    /// IP address); `None` expects the host of the URI (an IP address SAN).
    pub fn connector(&self, server_name: Option<&str>) -> TlsConnector {
        TlsConnector {
            config: Arc::clone(&self.config),
            server_name: server_name.map(str::to_string),
        }
    }

    /// A lazily connected channel for `endpoint` (whose URI must be `http://HOST:PORT`: TLS is
    /// done by the connector).
    pub fn channel(&self, endpoint: &Endpoint, server_name: Option<&str>) -> Channel {
        endpoint.connect_with_connector_lazy(self.connector(server_name))
    }
}

/// A channel for `endpoint`: over TLS when `tls` is set, plain otherwise.
pub fn channel_for(
    endpoint: &Endpoint,
    tls: Option<&ClientTls>,
    server_name: Option<&str>,
) -> Channel {
    match tls {
        Some(t) => t.channel(endpoint, server_name),
        None => endpoint.connect_lazy(),
    }
}

/// A tower connector: TCP connect, then a TLS handshake (both within [`CONNECT_TIMEOUT`]).
#[derive(Clone, Debug)]
pub struct TlsConnector {
    /// Shared client configuration.
    config: Arc<rustls::ClientConfig>,
    /// The name the server's certificate must carry (`None`: the URI's host).
    server_name: Option<String>,
}

type Connecting =
    Pin<Box<dyn Future<Output = std::io::Result<TokioIo<TlsStream<TcpStream>>>> + Send>>;

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = Arc::clone(&self.config);
        let name = self.server_name.clone();
        Box::pin(async move {
            let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
            let host = uri
                .host()
                .ok_or_else(|| bad(format!("no host in {uri}")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri
                .port_u16()
                .ok_or_else(|| bad(format!("no port in {uri}")))?;
            let name = name.unwrap_or_else(|| host.clone());
            let server_name = ServerName::try_from(name.clone())
                .map_err(|e| bad(format!("'{name}' is not a valid server name: {e}")))?;
            let work = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                let _ = tcp.set_nodelay(true);
                tokio_rustls::TlsConnector::from(config)
                    .connect(server_name, tcp)
                    .await
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, work).await {
                Ok(Ok(s)) => Ok(TokioIo::new(s)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("TLS connect to {host}:{port} timed out"),
                )),
            }
        })
    }
}
