//! This node's certificate, key and the cluster CA, re-read when the files change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use crate::error::TlsError;

/// How often, at most, the files are checked for changes (on use).
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// Where the PEM files are (`<socket>` cert_file, key_file, ca_file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// This node's certificate (chain), PEM.
    pub cert: PathBuf,
    /// This node's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The cluster CA every peer's certificate must be signed by, PEM.
    pub ca: PathBuf,
}

impl TlsFiles {
    /// The files of `<socket>`, or `None` when it is `type plain`.
    pub fn from_socket(socket: &mmm_config::SocketConfig) -> Result<Option<TlsFiles>, TlsError> {
        if socket.kind != mmm_config::SocketKind::Ssl {
            return Ok(None);
        }
        let get = |p: &Option<PathBuf>, what| p.clone().ok_or(TlsError::Missing(what));
        Ok(Some(TlsFiles {
            cert: get(&socket.cert_file, "cert_file")?,
            key: get(&socket.key_file, "key_file")?,
            ca: get(&socket.ca_file, "ca_file")?,
        }))
    }

    fn paths(&self) -> [&Path; 3] {
        [&self.cert, &self.key, &self.ca]
    }
}

/// Everything a handshake needs, built from one reading of the files.
pub(crate) struct Loaded {
    /// This node's certificate chain and signing key.
    pub key: Arc<CertifiedKey>,
    /// Verifies clients against the CA (servers).
    pub client_verifier: Arc<dyn ClientCertVerifier>,
    /// Verifies servers against the CA (clients).
    pub server_verifier: Arc<dyn ServerCertVerifier>,
}

/// What the files looked like when last read (modification time and length of each).
type Stamps = [Option<(SystemTime, u64)>; 3];

/// When the files were last checked and what they looked like.
struct Watch {
    /// Last check.
    checked: Instant,
    /// File stamps at the last (attempted) load.
    stamps: Stamps,
}

/// This node's TLS material; cheap to share (`Arc`), reloads itself when the files change.
pub struct TlsMaterial {
    /// The files.
    files: TlsFiles,
    /// The material in use.
    current: RwLock<Arc<Loaded>>,
    /// Change detection.
    watch: Mutex<Watch>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Reads the files (an error names the file and what is wrong).
    pub fn load(files: TlsFiles) -> Result<Arc<TlsMaterial>, TlsError> {
        let stamps = stamps(&files);
        let loaded = read(&files)?;
        Ok(Arc::new(TlsMaterial {
            files,
            current: RwLock::new(Arc::new(loaded)),
            watch: Mutex::new(Watch {
                checked: Instant::now(),
                stamps,
            }),
        }))
    }

    /// The material of `<socket>`, or `None` when it is `type plain`.
    pub fn from_socket(
        socket: &mmm_config::SocketConfig,
    ) -> Result<Option<Arc<TlsMaterial>>, TlsError> {
        TlsFiles::from_socket(socket)?
            .map(TlsMaterial::load)
            .transpose()
    }

    /// The files this material comes from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The current material, re-read first if the files changed since the last check
    /// (at most every [`RELOAD_CHECK`]). A new set that does not load is refused, logged, and the
    /// old one kept: a half-written file must not cut the cluster off.
    pub(crate) fn current(&self) -> Arc<Loaded> {
        self.reload_if_changed();
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Checks the files now (ignoring [`RELOAD_CHECK`]); true when new material was loaded.
    pub fn reload_if_changed(&self) -> bool {
        let new_stamps = {
            let mut w = self.watch.lock().unwrap_or_else(|e| e.into_inner());
            if w.checked.elapsed() < RELOAD_CHECK {
                return false;
            }
            w.checked = Instant::now();
            let s = stamps(&self.files);
            if s == w.stamps {
                return false;
            }
            w.stamps = s;
            s
        };
        match read(&self.files) {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
                tracing::info!(
                    cert = %self.files.cert.display(),
                    ca = %self.files.ca.display(),
                    "TLS certificates changed on disk: reloaded"
                );
                true
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    stamps = ?new_stamps.iter().map(|s| s.map(|(_, l)| l)).collect::<Vec<_>>(),
                    "TLS files changed but do not load: keeping the previous certificates"
                );
                false
            }
        }
    }

    /// Forces the next [`TlsMaterial::reload_if_changed`] to look at the files (tests).
    pub fn check_now(&self) {
        let mut w = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        w.checked = Instant::now() - RELOAD_CHECK;
    }
}

fn stamps(files: &TlsFiles) -> Stamps {
    files.paths().map(|p| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn content(path: &Path, msg: impl Into<String>) -> TlsError {
    TlsError::Content {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// The PEM certificates in `path` (at least one).
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(path, format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(content(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn read(files: &TlsFiles) -> Result<Loaded, TlsError> {
    let provider = crate::provider();
    let chain = read_certs(&files.cert)?;
    let key_pem = read_file(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| content(&files.key, format!("no usable PEM private key: {e}")))?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| content(&files.key, format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(content(
                &files.key,
                format!("does not match {}: {e}", files.cert.display()),
            ))
        }
    }
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&files.ca)? {
        roots
            .add(ca)
            .map_err(|e| content(&files.ca, format!("bad CA certificate: {e}")))?;
    }
    let roots = Arc::new(roots);
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
            .build()
            .map_err(|e| content(&files.ca, format!("cannot verify clients with it: {e}")))?;
    let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| content(&files.ca, format!("cannot verify servers with it: {e}")))?;
    Ok(Loaded {
        key: Arc::new(certified),
        client_verifier,
        server_verifier,
    })
}
