//! Fencing: the epoch (Raft log id) of a decision, the identity of the monitor cluster that made it,
//! and the store that persists both.
//!
//! Rules:
//! - The store writes `<state_dir>/epoch` as `term index cluster_id\n` via a temp file, fsync, rename
//!   and fsync of the directory, so an accepted epoch survives a crash or power loss, and an agent
//!   never goes back to obeying an older decision after a restart. A file of the older form
//!   `term index\n` reads as "no cluster id yet".
//! - The first accepted status that carries a cluster id adopts it. From then on a status of any
//!   other cluster, or without one (a monitor from before cluster ids), is refused whatever its
//!   epoch: epochs are compared only between statuses of the same cluster, so neither a rebuilt
//!   monitor cluster (new log, low epochs) nor someone sending epoch `u64::MAX` to the agent port can
//!   fence the real cluster out.
//! - An epoch accepted before any id was adopted still fences the first cluster that brings one
//!   (it is that cluster's, upgraded, as far as the agent can tell).
//! - [`EpochStore::forget`] (`mmm-agent --forget-cluster`, agent stopped) removes the file, so the
//!   agent adopts the next cluster that talks to it: the way back after the whole monitor cluster was
//!   replaced.

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
    /// The request comes from another monitor cluster than the one this agent adopted.
    #[error(
        "status from monitor cluster {got} refused: this agent follows monitor cluster {adopted} \
         (file {path}); if the monitor cluster was rebuilt, stop the agent and run \
         `mmm-agent --forget-cluster`, then start it again"
    )]
    OtherCluster {
        /// The cluster id of the refused request.
        got: String,
        /// The cluster id adopted.
        adopted: String,
        /// The epoch file holding it (where to look).
        path: PathBuf,
    },
    /// The request carries no cluster id (a monitor from before cluster ids, or not one at all) but
    /// this agent adopted one.
    #[error(
        "status without a monitor cluster id refused: this agent follows monitor cluster {adopted} \
         (file {path}); upgrade the monitors, or if the monitor cluster was replaced, stop the agent \
         and run `mmm-agent --forget-cluster`, then start it again"
    )]
    NoClusterId {
        /// The cluster id adopted.
        adopted: String,
        /// The epoch file holding it.
        path: PathBuf,
    },
    /// The cluster id is not of the form monitors make (32 lower-case hex digits).
    #[error("cluster id {0:?} is not {len} lower-case hex digits", len = mmm_proto::CLUSTER_ID_LEN)]
    BadClusterId(String),
    /// The epoch file exists but does not hold `term index [cluster_id]`.
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

/// What the epoch file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The highest accepted epoch.
    pub epoch: Epoch,
    /// The adopted monitor cluster's id; `None` when no status with an id was accepted yet.
    pub cluster_id: Option<String>,
}

impl fmt::Display for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cluster_id {
            Some(id) => write!(f, "epoch {} of monitor cluster {id}", self.epoch),
            None => write!(f, "epoch {} (no monitor cluster id)", self.epoch),
        }
    }
}

/// The persisted highest accepted epoch and adopted cluster id.
#[derive(Debug)]
pub struct EpochStore {
    /// Directory holding the epoch file (created if missing).
    dir: PathBuf,
    /// The highest accepted epoch; `None` when nothing was ever accepted.
    current: Option<Epoch>,
    /// The adopted monitor cluster id; `None` until a status carrying one is accepted. Kept with the
    /// epoch because an epoch means something only within its cluster.
    cluster_id: Option<String>,
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

/// Parses the text of an epoch file: `term index cluster_id`, or the older `term index`.
pub fn parse_epoch_file(text: &str) -> Result<Stored, String> {
    let mut parts = text.split_whitespace();
    let (Some(term), Some(index), id, None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "expected `term index cluster_id`, found {:?}",
            text.chars().take(80).collect::<String>()
        ));
    };
    let term = term
        .parse::<u64>()
        .map_err(|e| format!("term {term:?}: {e}"))?;
    let index = index
        .parse::<u64>()
        .map_err(|e| format!("index {index:?}: {e}"))?;
    if let Some(id) = id.filter(|id| !mmm_proto::is_cluster_id(id)) {
        return Err(format!(
            "cluster id {id:?} is not {} lower-case hex digits",
            mmm_proto::CLUSTER_ID_LEN
        ));
    }
    Ok(Stored {
        epoch: Epoch { term, index },
        cluster_id: id.map(str::to_string),
    })
}

/// Reads the epoch file in `dir`; `None` when there is none.
fn read_file(dir: &Path) -> Result<Option<Stored>, EpochError> {
    let path = dir.join(EPOCH_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| EpochError::Corrupt {
                path: path.clone(),
                reason: "not UTF-8 text".into(),
            })?;
            parse_epoch_file(&text)
                .map(Some)
                .map_err(|reason| EpochError::Corrupt { path, reason })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EpochError::Io {
            action: "cannot read",
            path,
            source: e,
        }),
    }
}

/// What [`EpochStore::forget`] removed.
#[derive(Debug)]
pub struct Forgotten {
    /// The removed file.
    pub path: PathBuf,
    /// What it held, or why it could not be read (a corrupt file is removed all the same).
    pub held: Result<Stored, String>,
}

impl EpochStore {
    /// Opens (creating the directory if needed) and reads the stored epoch and cluster id.
    pub fn open(dir: &Path) -> Result<Self, EpochError> {
        fs::create_dir_all(dir).map_err(io_err("cannot create state directory", dir))?;
        let stored = read_file(dir)?;
        Ok(EpochStore {
            dir: dir.to_path_buf(),
            current: stored.as_ref().map(|s| s.epoch),
            cluster_id: stored.and_then(|s| s.cluster_id),
        })
    }

    /// Removes the epoch file of `dir` (the accepted epoch and the adopted cluster id), so that the
    /// agent adopts the next monitor cluster that sends it a status. `announce` is told what is about
    /// to be removed first. Returns what was removed, `None` when there was nothing. Only for a
    /// stopped agent: a running one keeps both in memory and writes them back.
    pub fn forget(
        dir: &Path,
        announce: impl FnOnce(&Forgotten),
    ) -> Result<Option<Forgotten>, EpochError> {
        let path = dir.join(EPOCH_FILE);
        let held = match read_file(dir) {
            Ok(None) => return Ok(None),
            Ok(Some(stored)) => Ok(stored),
            Err(e @ EpochError::Corrupt { .. }) => Err(e.to_string()),
            Err(e) => return Err(e),
        };
        let forgotten = Forgotten { path, held };
        announce(&forgotten);
        let path = &forgotten.path;
        fs::remove_file(path).map_err(io_err("cannot remove", path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("cannot fsync directory", dir))?;
        Ok(Some(forgotten))
    }

    /// Path of the epoch file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(EPOCH_FILE)
    }

    /// The highest accepted epoch.
    pub fn current(&self) -> Option<Epoch> {
        self.current
    }

    /// The adopted monitor cluster id, if any.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// Refuses a status of another monitor cluster, or without a cluster id once one is adopted, then
    /// an epoch older than the accepted one (the same epoch is fine: it renews the lease).
    pub fn check(&self, epoch: Epoch, cluster_id: &str) -> Result<(), EpochError> {
        match (&self.cluster_id, cluster_id) {
            (Some(adopted), "") => {
                return Err(EpochError::NoClusterId {
                    adopted: adopted.clone(),
                    path: self.path(),
                })
            }
            (Some(adopted), got) if adopted != got => {
                return Err(EpochError::OtherCluster {
                    got: got.to_string(),
                    adopted: adopted.clone(),
                    path: self.path(),
                })
            }
            _ => {}
        }
        match self.current {
            Some(accepted) if epoch < accepted => Err(EpochError::Stale {
                got: epoch,
                accepted,
            }),
            _ => Ok(()),
        }
    }

    /// Accepts `epoch` of the monitor cluster `cluster_id` ("" for none): checks it and, when the
    /// epoch is newer or the id is adopted now, persists both durably before returning. Returns true
    /// when something new was persisted.
    pub fn accept(&mut self, epoch: Epoch, cluster_id: &str) -> Result<bool, EpochError> {
        self.check(epoch, cluster_id)?;
        if !cluster_id.is_empty() && !mmm_proto::is_cluster_id(cluster_id) {
            return Err(EpochError::BadClusterId(cluster_id.to_string()));
        }
        let adopt = self.cluster_id.is_none() && !cluster_id.is_empty();
        if self.current == Some(epoch) && !adopt {
            return Ok(false);
        }
        let id = if adopt {
            Some(cluster_id.to_string())
        } else {
            self.cluster_id.clone()
        };
        self.persist(epoch, id.as_deref())?;
        if adopt {
            tracing::info!(cluster_id, file = %self.path().display(), "monitor cluster adopted: statuses of any other cluster are refused from now on");
        }
        self.current = Some(epoch);
        self.cluster_id = id;
        Ok(true)
    }

    fn persist(&self, epoch: Epoch, cluster_id: Option<&str>) -> Result<(), EpochError> {
        let path = self.path();
        let tmp = self.dir.join(format!("{EPOCH_FILE}.tmp"));
        {
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&tmp)
                .map_err(io_err("cannot create", &tmp))?;
            let text = match cluster_id {
                Some(id) => format!("{} {} {id}\n", epoch.term, epoch.index),
                None => format!("{} {}\n", epoch.term, epoch.index),
            };
            f.write_all(text.as_bytes())
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
        assert!(s.accept(Epoch::new(4, 2), "").unwrap());
        assert!(
            !s.accept(Epoch::new(4, 2), "").unwrap(),
            "the same epoch again is accepted, not new"
        );
        let err = s.accept(Epoch::new(3, 17), "").unwrap_err();
        assert_eq!(err.to_string(), "epoch 3-17 is older than accepted 4-2");
        drop(s);
        let mut s = EpochStore::open(dir.path()).unwrap();
        assert_eq!(s.current(), Some(Epoch::new(4, 2)));
        assert!(matches!(
            s.accept(Epoch::new(4, 1), ""),
            Err(EpochError::Stale { .. })
        ));
        assert!(s.accept(Epoch::new(5, 1), "").unwrap());
        assert_eq!(
            fs::read_to_string(dir.path().join(EPOCH_FILE)).unwrap(),
            "5 1\n"
        );
        assert!(!dir.path().join("epoch.tmp").exists());
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "4", "4 x", "1 2 3", "-1 2", "1 2 {ID_A} x"] {
            let bad = bad.replace("{ID_A}", ID_A);
            fs::write(dir.path().join(EPOCH_FILE), &bad).unwrap();
            let err = EpochStore::open(dir.path()).unwrap_err();
            assert!(matches!(err, EpochError::Corrupt { .. }), "{bad:?}: {err}");
            assert!(
                err.to_string()
                    .contains(&dir.path().join(EPOCH_FILE).display().to_string()),
                "{err}"
            );
        }
        fs::write(dir.path().join(EPOCH_FILE), "1 2 ABC").unwrap();
        let err = EpochStore::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("cluster id"), "{err}");
        fs::write(dir.path().join(EPOCH_FILE), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            EpochStore::open(dir.path()),
            Err(EpochError::Corrupt { .. })
        ));
    }

    const ID_A: &str = "0123456789abcdef0123456789abcdef";
    const ID_B: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn the_first_cluster_id_is_adopted_and_persisted_with_the_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = EpochStore::open(dir.path()).unwrap();
        assert!(
            s.accept(Epoch::new(1, 3), "").unwrap(),
            "no id yet: accepted"
        );
        assert_eq!(s.cluster_id(), None);
        assert!(
            s.accept(Epoch::new(1, 3), ID_A).unwrap(),
            "the same epoch with an id is new: the id is adopted"
        );
        assert_eq!(s.cluster_id(), Some(ID_A));
        assert_eq!(
            fs::read_to_string(dir.path().join(EPOCH_FILE)).unwrap(),
            format!("1 3 {ID_A}\n")
        );
        assert!(!s.accept(Epoch::new(1, 3), ID_A).unwrap(), "a renewal");
        assert!(s.accept(Epoch::new(2, 1), ID_A).unwrap());
        drop(s);
        let s = EpochStore::open(dir.path()).unwrap();
        assert_eq!(s.cluster_id(), Some(ID_A), "survives a restart");
        assert_eq!(s.current(), Some(Epoch::new(2, 1)));
    }

    #[test]
    fn another_cluster_is_refused_whatever_its_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = EpochStore::open(dir.path()).unwrap();
        s.accept(Epoch::new(7, 70), ID_A).unwrap();
        for epoch in [
            Epoch::new(1, 1),
            Epoch::new(7, 70),
            Epoch::new(u64::MAX, u64::MAX),
        ] {
            let err = s.accept(epoch, ID_B).unwrap_err();
            assert!(matches!(err, EpochError::OtherCluster { .. }), "{err}");
            let text = err.to_string();
            for part in [ID_A, ID_B, "--forget-cluster"] {
                assert!(text.contains(part), "names {part}: {text}");
            }
        }
        assert_eq!(s.current(), Some(Epoch::new(7, 70)), "nothing changed");
        assert_eq!(
            fs::read_to_string(dir.path().join(EPOCH_FILE)).unwrap(),
            format!("7 70 {ID_A}\n")
        );
        // Within the adopted cluster the epoch still fences.
        assert!(matches!(
            s.accept(Epoch::new(7, 69), ID_A),
            Err(EpochError::Stale { .. })
        ));
    }

    #[test]
    fn a_status_without_id_is_refused_once_one_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = EpochStore::open(dir.path()).unwrap();
        s.accept(Epoch::new(2, 2), ID_A).unwrap();
        let err = s.accept(Epoch::new(9, 9), "").unwrap_err();
        assert!(matches!(err, EpochError::NoClusterId { .. }), "{err}");
        assert!(err.to_string().contains(ID_A), "{err}");
        assert_eq!(s.current(), Some(Epoch::new(2, 2)));
    }

    #[test]
    fn a_malformed_id_is_never_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = EpochStore::open(dir.path()).unwrap();
        let err = s.accept(Epoch::new(1, 1), "not-an-id").unwrap_err();
        assert!(matches!(err, EpochError::BadClusterId(_)), "{err}");
        assert_eq!(s.current(), None);
        assert!(!dir.path().join(EPOCH_FILE).exists());
    }

    #[test]
    fn the_old_two_field_file_reads_as_no_id_and_still_fences() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(EPOCH_FILE), "5 10\n").unwrap();
        let mut s = EpochStore::open(dir.path()).unwrap();
        assert_eq!(s.current(), Some(Epoch::new(5, 10)));
        assert_eq!(s.cluster_id(), None);
        // The epoch accepted before ids fences the first cluster that brings one (an upgraded
        // cluster's deposed leader must not get through).
        assert!(matches!(
            s.accept(Epoch::new(5, 9), ID_A),
            Err(EpochError::Stale { .. })
        ));
        assert_eq!(s.cluster_id(), None, "a refused status adopts nothing");
        assert!(s.accept(Epoch::new(5, 11), ID_A).unwrap());
        assert_eq!(s.cluster_id(), Some(ID_A));
    }

    #[test]
    fn forget_removes_epoch_and_id_so_the_next_cluster_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            EpochStore::forget(dir.path(), |_| {}).unwrap().is_none(),
            "nothing to forget"
        );
        let mut s = EpochStore::open(dir.path()).unwrap();
        s.accept(Epoch::new(40, 400), ID_A).unwrap();
        drop(s);
        let mut announced = String::new();
        let f = EpochStore::forget(dir.path(), |f| {
            assert!(
                dir.path().join(EPOCH_FILE).exists(),
                "announced before removal"
            );
            announced = format!("{:?}", f.held);
        })
        .unwrap()
        .expect("something forgotten");
        assert!(announced.contains(ID_A), "{announced}");
        assert_eq!(f.path, dir.path().join(EPOCH_FILE));
        let held = f.held.expect("readable");
        assert_eq!(held.epoch, Epoch::new(40, 400));
        assert_eq!(held.cluster_id.as_deref(), Some(ID_A));
        assert_eq!(
            held.to_string(),
            format!("epoch 40-400 of monitor cluster {ID_A}")
        );
        assert!(!dir.path().join(EPOCH_FILE).exists());
        // A rebuilt cluster (another id, low epochs) is adopted now.
        let mut s = EpochStore::open(dir.path()).unwrap();
        assert!(s.accept(Epoch::new(1, 2), ID_B).unwrap());
        assert_eq!(s.cluster_id(), Some(ID_B));
        drop(s);
        // A corrupt file is removed as well, saying why it could not be read.
        fs::write(dir.path().join(EPOCH_FILE), "garbage").unwrap();
        let f = EpochStore::forget(dir.path(), |_| {})
            .unwrap()
            .expect("removed");
        assert!(f.held.is_err());
        assert!(!dir.path().join(EPOCH_FILE).exists());
    }
}
