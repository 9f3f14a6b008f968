//! Errors of loading TLS material.

use std::path::PathBuf;

/// Why TLS material could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file did not hold what it should (no PEM certificate, no key, bad key).
    #[error("{}: {msg}", path.display())]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// `<socket> type ssl` lacks one of its files.
    #[error("<socket> type ssl needs {0}")]
    Missing(&'static str),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(String),
}
