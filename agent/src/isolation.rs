//! Isolation of the writer from unverified sources: the rule that keeps a returning old master's
//! unacknowledged tail out of the new writer.
//!
//! MMM's masters replicate from each other, so the new writer keeps a channel from the old master. When
//! the old master comes back with transactions nobody else has (committed after its last replica
//! acknowledgement, never acknowledged to a client), that channel would fetch them and apply them on the
//! writer, on top of the writes it acknowledged since. The leader therefore lists, in every status of the
//! active master and of a failover's candidate, the hosts that are not ONLINE or carry errant
//! transactions (`SetStatusRequest.isolate_from`); a returning host is put ONLINE only after an errant
//! check that started after it came back found nothing. The agent keeps the IO thread of a channel whose
//! source is listed stopped:
//!
//! - it stops it before the host opens writes (a candidate without a target position stops it before
//!   applying what it received; one with a target keeps it until it reached the target, which the old
//!   writer reported read-only at and so is acknowledged or acknowledgeable);
//! - a thread `Connecting` to an unreachable source counts as running: it would fetch the tail the moment
//!   the source answers;
//! - it starts it again once the source is no longer listed;
//! - the fact that this agent stopped it is kept in `<state_dir>/isolated-source`, so an agent restarted
//!   meanwhile starts it again too, and an IO thread an operator stopped is never started by it.
//!
//! Assumed: the writer replicates only through the channel `SHOW SLAVE STATUS` shows (one source).
//! Guaranteed: between a status listing the source and the next status not listing it, the writer
//! fetches nothing from that source, except a candidate catching up to a target position.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use crate::agent::source_matches;
use crate::db::Db;
use crate::topology::Topology;

/// The file that records the source whose IO thread this agent stopped.
const ISOLATED_FILE: &str = "isolated-source";

/// What this agent isolated, in memory and on disk.
#[derive(Debug)]
pub struct Isolation {
    /// `<state_dir>/isolated-source`.
    path: PathBuf,
    /// The source host whose IO thread this agent stopped (`None`: none stopped by it).
    stopped: Mutex<Option<String>>,
}

/// What one [`Isolation::enforce`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforced {
    /// Nothing to change.
    Unchanged,
    /// The IO thread from this source was stopped.
    Stopped(String),
    /// The IO thread from this source was started again.
    Started(String),
}

impl Isolation {
    /// Opens the record in `dir` (the agent's state directory).
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(ISOLATED_FILE);
        let stopped = match fs::read_to_string(&path) {
            Ok(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if let Some(s) = &stopped {
            tracing::info!(source = %s, file = %path.display(), "replication from this source was stopped by the agent (isolation): started again once the leader no longer isolates it");
        }
        Ok(Isolation {
            path,
            stopped: Mutex::new(stopped),
        })
    }

    fn stopped(&self) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn record(&self, source: Option<&str>) -> anyhow::Result<()> {
        match source {
            Some(s) => {
                let tmp = self.path.with_extension("tmp");
                let mut f = fs::File::create(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                writeln!(f, "{s}").and_then(|()| f.sync_all())?;
                fs::rename(&tmp, &self.path)
                    .with_context(|| format!("cannot rename {}", tmp.display()))?;
            }
            None => match fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot remove {}", self.path.display()))
                }
            },
        }
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = source.map(str::to_string);
        Ok(())
    }

    /// Stops the IO thread when the local server's source is in `isolate_from` (unless `keep_io`: a
    /// candidate still catching up to a target position), starts it again when this agent stopped it
    /// and the source is no longer listed.
    pub async fn enforce(
        &self,
        db: &mut Db,
        topo: &Topology,
        isolate_from: &BTreeSet<String>,
        keep_io: bool,
    ) -> anyhow::Result<Enforced> {
        let stopped = self.stopped();
        if isolate_from.is_empty() && stopped.is_none() {
            return Ok(Enforced::Unchanged);
        }
        let Some(rep) = db.replica_status().await? else {
            if stopped.is_some() {
                self.record(None)?;
            }
            return Ok(Enforced::Unchanged);
        };
        let source = topo
            .hosts
            .iter()
            .find(|(name, ip)| source_matches(&rep.source_host, name, **ip))
            .map(|(name, _)| name.clone());
        let isolated = source.as_ref().is_some_and(|s| isolate_from.contains(s));
        match (isolated && !keep_io, stopped) {
            (true, _) if rep.io_stopped => Ok(Enforced::Unchanged),
            (true, _) => {
                let source = source.unwrap_or_default();
                // Recorded first: an agent that dies between the two steps still starts it later.
                self.record(Some(&source))?;
                db.stop_replica_io().await?;
                tracing::warn!(source = %source, "replication IO thread stopped: its source is not verified (not ONLINE, or errant transactions); nothing it has reaches this host until it is");
                Ok(Enforced::Stopped(source))
            }
            (false, Some(was)) => {
                if source.as_deref() == Some(was.as_str()) && rep.io_stopped {
                    db.start_replica_io().await?;
                    tracing::info!(source = %was, "replication IO thread started again: its source is verified");
                    self.record(None)?;
                    return Ok(Enforced::Started(was));
                }
                // Re-pointed elsewhere meanwhile (which starts replication), or already running.
                self.record(None)?;
                Ok(Enforced::Unchanged)
            }
            (false, None) => Ok(Enforced::Unchanged),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_survives_a_restart_and_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let iso = Isolation::open(dir.path()).unwrap();
        assert_eq!(iso.stopped(), None);
        iso.record(Some("db1")).unwrap();
        let again = Isolation::open(dir.path()).unwrap();
        assert_eq!(again.stopped().as_deref(), Some("db1"));
        again.record(None).unwrap();
        assert!(!dir.path().join(ISOLATED_FILE).exists());
        assert_eq!(Isolation::open(dir.path()).unwrap().stopped(), None);
    }
}
