//! Fencing: the epoch (Raft log id) of a decision, and the store that persists the highest one accepted.
//!
//! The store writes `<state_dir>/epoch` as `term index\n` via a temp file, fsync, rename and fsync of the
//! directory, so an accepted epoch survives a crash or power loss, and an agent never goes back to obeying
//! an older decision after a restart.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The log id of a committed decision, ordered by (term, index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch {
    /// Raft term of the decision (compared first).
    pub term: u64,
    /// Raft log index of the decision (compared within a term).
    pub index: u64,
}

impl Epoch {
    /// An epoch from its parts.
    pub fn new(term: u64, index: u64) -> Self {
        Epoch { term, index }
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.term, self.index)
    }
}

impl From<&mmm_proto::Epoch> for Epoch {
    fn from(e: &mmm_proto::Epoch) -> Self {
        Epoch {
            term: e.term,
            index: e.index,
        }
    }
}

impl From<Epoch> for mmm_proto::Epoch {
    fn from(e: Epoch) -> Self {
        mmm_proto::Epoch {
            term: e.term,
            index: e.index,
        }
    }
}

/// Why the epoch store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    /// The request's epoch is older than one already accepted (a deposed leader speaking).
    #[error("epoch {got} is older than accepted {accepted}")]
    Stale {
        /// The epoch of the refused request.
        got: Epoch,
        /// The highest epoch accepted so far.
        accepted: Epoch,
    },
    /// The epoch file exists but does not hold `term index`.
    #[error("epoch file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing the state directory failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The persisted highest accepted epoch.
#[derive(Debug)]
pub struct EpochStore {
    /// Directory holding the epoch file (created if missing).
    dir: PathBuf,
    /// The highest accepted epoch; `None` when nothing was ever accepted.
    current: Option<Epoch>,
}

/// Name of the epoch file inside the state directory.
pub const EPOCH_FILE: &str = "epoch";

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> EpochError + 'a {
    move |source| EpochError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Parses the text of an epoch file.
pub fn parse_epoch_file(text: &str) -> Result<Epoch, String> {
    let mut parts = text.split_whitespace();
    let (Some(term), Some(index), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "expected `term index`, found {:?}",
            text.chars().take(60).collect::<String>()
        ));
    };
    let term = term
        .parse::<u64>()
        .map_err(|e| format!("term {term:?}: {e}"))?;
    let index = index
        .parse::<u64>()
        .map_err(|e| format!("index {index:?}: {e}"))?;
    Ok(Epoch { term, index })
}

impl EpochStore {
    /// Opens (creating the directory if needed) and reads the stored epoch.
    pub fn open(dir: &Path) -> Result<Self, EpochError> {
        fs::create_dir_all(dir).map_err(io_err("cannot create state directory", dir))?;
        let path = dir.join(EPOCH_FILE);
        let current = match fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| EpochError::Corrupt {
                    path: path.clone(),
                    reason: "not UTF-8 text".into(),
                })?;
                Some(
                    parse_epoch_file(&text).map_err(|reason| EpochError::Corrupt {
                        path: path.clone(),
                        reason,
                    })?,
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(EpochError::Io {
                    action: "cannot read",
                    path,
                    source: e,
                })
            }
        };
        Ok(EpochStore {
            dir: dir.to_path_buf(),
            current,
        })
    }

    /// Path of the epoch file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(EPOCH_FILE)
    }

    /// The highest accepted epoch.
    pub fn current(&self) -> Option<Epoch> {
        self.current
    }

    /// Refuses an epoch older than the accepted one (the same epoch is fine: it renews the lease).
    pub fn check(&self, epoch: Epoch) -> Result<(), EpochError> {
        match self.current {
            Some(accepted) if epoch < accepted => Err(EpochError::Stale {
                got: epoch,
                accepted,
            }),
            _ => Ok(()),
        }
    }

    /// Accepts `epoch`: checks it and, when it is newer, persists it durably before returning.
    /// Returns true when the epoch is new.
    pub fn accept(&mut self, epoch: Epoch) -> Result<bool, EpochError> {
        self.check(epoch)?;
        if self.current == Some(epoch) {
            return Ok(false);
        }
        self.persist(epoch)?;
        self.current = Some(epoch);
        Ok(true)
    }

    fn persist(&self, epoch: Epoch) -> Result<(), EpochError> {
        let path = self.path();
        let tmp = self.dir.join(format!("{EPOCH_FILE}.tmp"));
        {
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&tmp)
                .map_err(io_err("cannot create", &tmp))?;
            f.write_all(format!("{} {}\n", epoch.term, epoch.index).as_bytes())
                .map_err(io_err("cannot write", &tmp))?;
            f.sync_all().map_err(io_err("cannot fsync", &tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err("cannot rename into", &path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("cannot fsync directory", &self.dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_order_by_term_then_index() {
        assert!(Epoch::new(3, 17) < Epoch::new(4, 2));
        assert!(Epoch::new(4, 2) < Epoch::new(4, 3));
        assert_eq!(Epoch::new(4, 2).to_string(), "4-2");
    }

    #[test]
    fn store_rejects_older_accepts_same_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = EpochStore::open(dir.path()).unwrap();
        assert_eq!(s.current(), None);
        assert!(s.accept(Epoch::new(4, 2)).unwrap());
        assert!(
            !s.accept(Epoch::new(4, 2)).unwrap(),
            "the same epoch again is accepted, not new"
        );
        let err = s.accept(Epoch::new(3, 17)).unwrap_err();
        assert_eq!(err.to_string(), "epoch 3-17 is older than accepted 4-2");
        drop(s);
        let mut s = EpochStore::open(dir.path()).unwrap();
        assert_eq!(s.current(), Some(Epoch::new(4, 2)));
        assert!(matches!(
            s.accept(Epoch::new(4, 1)),
            Err(EpochError::Stale { .. })
        ));
        assert!(s.accept(Epoch::new(5, 1)).unwrap());
        assert_eq!(
            fs::read_to_string(dir.path().join(EPOCH_FILE)).unwrap(),
            "5 1\n"
        );
        assert!(!dir.path().join("epoch.tmp").exists());
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "4", "4 x", "1 2 3", "-1 2"] {
            fs::write(dir.path().join(EPOCH_FILE), bad).unwrap();
            let err = EpochStore::open(dir.path()).unwrap_err();
            assert!(matches!(err, EpochError::Corrupt { .. }), "{bad:?}: {err}");
            assert!(
                err.to_string()
                    .contains(&dir.path().join(EPOCH_FILE).display().to_string()),
                "{err}"
            );
        }
        fs::write(dir.path().join(EPOCH_FILE), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            EpochStore::open(dir.path()),
            Err(EpochError::Corrupt { .. })
        ));
    }
}
