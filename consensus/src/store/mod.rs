//! Durable storage of the Raft log, vote and state machine on sled, behind openraft's storage-v2
//! traits ([`LogStore`] implements `RaftLogStorage`, [`StateMachineStore`] implements
//! `RaftStateMachine`), so sled can be replaced without touching the rest of the crate.
//!
//! On-disk layout, one sled tree per key space:
//! - `meta`: `format_version` (u32, big-endian). A data dir of another version is refused.
//! - `logs`: log entries (JSON), keyed by their index as a big-endian u64 so key order is log order.
//! - `raft`: `vote` (fsync'd before `save_vote` returns), `committed`, `last_purged` (JSON log ids).
//! - `snapshot`: `meta` (JSON `SnapshotMeta`) and `data` (the snapshot bytes), written in one batch.
//!
//! The state machine itself lives in memory and is persisted through snapshots: on start it is
//! loaded from the last snapshot and openraft re-applies the committed entries after it.

mod log_store;
mod state_machine;

use std::path::{Path, PathBuf};

pub use log_store::LogStore;
pub use state_machine::{SmData, SnapshotBuilder, StateMachineStore};

/// Version of the on-disk format. Bump on any change of the layout or encodings above.
pub const FORMAT_VERSION: u32 = 1;

/// Why a data dir could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// sled refused to open the directory (permissions, another process holds it, corruption).
    #[error("cannot open data dir {path}: {source}")]
    Sled {
        /// The data dir.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// The directory was written by a build with another on-disk format.
    #[error(
        "data dir {path} holds on-disk format version {found}, but this build reads format version {expected}"
    )]
    FormatVersion {
        /// The data dir.
        path: PathBuf,
        /// The version found on disk (0: no header although the dir holds data).
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// A stored record could not be decoded.
    #[error("data dir {path} is corrupt: {reason}")]
    Corrupt {
        /// The data dir.
        path: PathBuf,
        /// What could not be read.
        reason: String,
    },
}

/// How long opening waits for a previous holder of the store's file lock to let go: a node restarted in
/// the same process (sled's flusher thread drops the lock shortly after the store), or a process started
/// again while the old one is still exiting.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the sled database, retrying while its file lock is still held (up to [`LOCK_WAIT`]).
fn open_sled(path: &Path) -> sled::Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        match sled::Config::new().path(path).open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Opens (or creates) the sled database in `path` and returns its log store and state machine.
pub fn open(path: &Path) -> Result<(LogStore, StateMachineStore), OpenError> {
    let sled_err = |source| OpenError::Sled {
        path: path.to_path_buf(),
        source,
    };
    let db = open_sled(path).map_err(sled_err)?;
    let meta = db.open_tree("meta").map_err(sled_err)?;
    let logs = db.open_tree("logs").map_err(sled_err)?;
    let raft = db.open_tree("raft").map_err(sled_err)?;
    let snapshot = db.open_tree("snapshot").map_err(sled_err)?;

    match meta.get("format_version").map_err(sled_err)? {
        Some(v) => {
            let found = <[u8; 4]>::try_from(v.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| OpenError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("format_version has {} bytes, expected 4", v.len()),
                })?;
            if found != FORMAT_VERSION {
                return Err(OpenError::FormatVersion {
                    path: path.to_path_buf(),
                    found,
                    expected: FORMAT_VERSION,
                });
            }
        }
        None => {
            if !logs.is_empty() || !raft.is_empty() || !snapshot.is_empty() {
                return Err(OpenError::FormatVersion {
                    path: path.to_path_buf(),
                    found: 0,
                    expected: FORMAT_VERSION,
                });
            }
            meta.insert("format_version", &FORMAT_VERSION.to_be_bytes())
                .map_err(sled_err)?;
            db.flush().map_err(sled_err)?;
            tracing::info!(path = %path.display(), format_version = FORMAT_VERSION, "created consensus data dir");
        }
    }

    let log_store = LogStore::new(db.clone(), logs, raft);
    let sm = StateMachineStore::load(db, snapshot).map_err(|reason| OpenError::Corrupt {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok((log_store, sm))
}

/// Converts any error into openraft's error payload.
pub(crate) fn any_err<E: std::error::Error + 'static>(e: &E) -> openraft::AnyError {
    openraft::AnyError::new(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_another_format_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(open(dir.path()).expect("fresh dir opens"));
        {
            // sled releases its file lock from a background thread after the drop: retry briefly.
            let mut tries = 0;
            let db = loop {
                match sled::open(dir.path()) {
                    Ok(db) => break db,
                    Err(e) if tries < 100 => {
                        tries += 1;
                        let _ = e;
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(e) => panic!("sled: {e}"),
                }
            };
            let meta = db.open_tree("meta").expect("meta");
            meta.insert("format_version", &7u32.to_be_bytes())
                .expect("insert");
            db.flush().expect("flush");
        }
        let err = open(dir.path()).err().expect("must refuse version 7");
        let msg = err.to_string();
        assert!(msg.contains("version 7"), "{msg}");
        assert!(msg.contains(&format!("version {FORMAT_VERSION}")), "{msg}");
    }

    #[test]
    fn reopens_same_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(open(dir.path()).expect("fresh dir opens"));
        open(dir.path()).expect("same version reopens");
    }
}
