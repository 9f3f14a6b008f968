//! Handshakes over real sockets: mutual TLS works, another CA's client is refused, and replaced
//! certificate and CA files take effect without a restart.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use futures_free::next;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tower::Service;

use crate::generate::{Authority, Pem};
use crate::{incoming, ClientTls, PeerPolicy, ServerTls, TlsFiles, TlsMaterial};

mod futures_free {
    //! `StreamExt::next` without another dependency.
    use tokio_stream::Stream;
    pub async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
    }
}

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn write(dir: &Path, name: &str, pem: &Pem, ca: &Authority) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
        ca: dir.join(format!("{name}-ca.pem")),
    };
    std::fs::write(&files.cert, &pem.cert).unwrap();
    std::fs::write(&files.key, &pem.key).unwrap();
    std::fs::write(&files.ca, &ca.pem.cert).unwrap();
    files
}

/// One handshake from `client` to a server on `listener`; the server-side peer certificate.
async fn handshake(
    server: &mut (impl tokio_stream::Stream<
        Item = std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
    > + Unpin),
    addr: std::net::SocketAddr,
    client: &ClientTls,
    name: &str,
) -> Result<(Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>), String> {
    let uri: tonic::transport::Uri = format!("http://{addr}").parse().unwrap();
    let mut conn = client.connector(Some(name));
    let c = conn.call(uri).await.map_err(|e| e.to_string())?;
    let accepted = tokio::time::timeout(std::time::Duration::from_secs(2), next(server))
        .await
        .map_err(|_| "server accepted nothing".to_string())?
        .ok_or("server gone")?
        .map_err(|e| e.to_string())?;
    let server_saw = accepted.get_ref().1.peer_certificates().unwrap().to_vec();
    let client_saw = c.inner().get_ref().1.peer_certificates().unwrap().to_vec();
    Ok((server_saw, client_saw))
}

#[tokio::test]
async fn mutual_tls_refuses_other_ca_and_reloads_changed_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA").unwrap();
    let server_files = write(
        dir.path(),
        "mon1",
        &ca.issue("mon1", &[LOCAL]).unwrap(),
        &ca,
    );
    let client_files = write(dir.path(), "mon2", &ca.issue("mon2", &[]).unwrap(), &ca);
    let server_material = TlsMaterial::load(server_files.clone()).unwrap();
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut server = incoming(listener, &ServerTls::new(&server_material).unwrap());
    let client = ClientTls::new(&TlsMaterial::load(client_files).unwrap()).unwrap();

    // Mutual TLS: each side sees the other's certificate, names check out.
    let (seen_by_server, seen_by_client) =
        handshake(&mut server, addr, &client, "mon1").await.unwrap();
    let monitors = PeerPolicy::new("monitor node", ["mon1".into(), "mon2".into()]);
    assert_eq!(
        monitors.name_of(&seen_by_server[0]).as_deref(),
        Some("mon2")
    );
    assert_eq!(
        monitors.name_of(&seen_by_client[0]).as_deref(),
        Some("mon1")
    );
    let agents = PeerPolicy::new("agent", ["db1".into()]);
    assert_eq!(agents.name_of(&seen_by_server[0]), None);
    // The wrong expected name is refused by the client.
    assert!(handshake(&mut server, addr, &client, "db1").await.is_err());

    // A client certificate of another CA is refused by the server.
    let rogue_ca = Authority::new("rogue CA").unwrap();
    let mut rogue_files = write(
        dir.path(),
        "rogue",
        &rogue_ca.issue("mon2", &[]).unwrap(),
        &rogue_ca,
    );
    rogue_files.ca = server_files.ca.clone();
    let rogue = ClientTls::new(&TlsMaterial::load(rogue_files).unwrap()).unwrap();
    let r = handshake(&mut server, addr, &rogue, "mon1").await;
    assert!(r.is_err(), "another CA's certificate was accepted");

    // The server's certificate is replaced on disk: the next handshake presents the new one.
    let renewed = ca
        .issue("mon1", &[LOCAL, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))])
        .unwrap();
    std::fs::write(&server_files.cert, &renewed.cert).unwrap();
    std::fs::write(&server_files.key, &renewed.key).unwrap();
    server_material.check_now();
    let (_, seen_by_client) = handshake(&mut server, addr, &client, "mon1").await.unwrap();
    let new_der = CertificateDer::from_pem_slice_helper(&renewed.cert);
    assert_eq!(
        seen_by_client[0], new_der,
        "the renewed certificate is not served"
    );

    // A broken replacement is refused and the previous certificate kept.
    std::fs::write(&server_files.key, "not a key").unwrap();
    server_material.check_now();
    assert!(!server_material.reload_if_changed());
    std::fs::write(&server_files.key, &renewed.key).unwrap();

    // The CA is rotated on the server: clients of the old CA are refused from now on.
    let new_ca = Authority::new("new CA").unwrap();
    std::fs::write(&server_files.ca, &new_ca.pem.cert).unwrap();
    server_material.check_now();
    assert!(server_material.reload_if_changed());
    let r = handshake(&mut server, addr, &client, "mon1").await;
    assert!(r.is_err(), "a client of the replaced CA was still accepted");
}

#[tokio::test]
async fn a_certificate_issued_later_by_the_reloaded_ca_is_accepted() {
    // `certs issue`: the CA is read back from its PEM files and signs one more node, whose
    // certificate the existing nodes (holding the old ca.pem) accept; another CA's is refused.
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("mmm-rs cluster CA").unwrap();
    let server_files = write(
        dir.path(),
        "mon1",
        &ca.issue("mon1", &[LOCAL]).unwrap(),
        &ca,
    );
    let reloaded = Authority::load(&ca.pem.cert, &ca.pem.key).unwrap();
    assert!(Authority::load(&ca.pem.cert, "not a key").is_err());
    let later = reloaded.issue("mon4", &[LOCAL]).unwrap();
    let client_files = write(dir.path(), "mon4", &later, &ca);
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut server = incoming(
        listener,
        &ServerTls::new(&TlsMaterial::load(server_files).unwrap()).unwrap(),
    );
    let client = ClientTls::new(&TlsMaterial::load(client_files).unwrap()).unwrap();
    let (seen_by_server, _) = handshake(&mut server, addr, &client, "mon1").await.unwrap();
    let monitors = PeerPolicy::new("monitor node", ["mon4".into()]);
    assert_eq!(
        monitors.name_of(&seen_by_server[0]).as_deref(),
        Some("mon4")
    );
    // Negative control: the same issuance from another CA is refused by the same server.
    let other = Authority::new("mmm-rs cluster CA").unwrap();
    let mut rogue = write(
        dir.path(),
        "rogue",
        &other.issue("mon4", &[LOCAL]).unwrap(),
        &other,
    );
    rogue.ca = dir.path().join("mon1-ca.pem");
    let rogue = ClientTls::new(&TlsMaterial::load(rogue).unwrap()).unwrap();
    assert!(handshake(&mut server, addr, &rogue, "mon1").await.is_err());
}

trait FromPem {
    fn from_pem_slice_helper(pem: &str) -> CertificateDer<'static>;
}

impl FromPem for CertificateDer<'static> {
    fn from_pem_slice_helper(pem: &str) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }
}
