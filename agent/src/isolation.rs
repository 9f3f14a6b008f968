//! Isolation of the writer from unverified sources: the rule that keeps a returning old master's
//! unacknowledged tail out of the new writer.
//!
//! MMM's masters replicate from each other, so the new writer keeps a channel from the old master. When
//! the old master comes back with transactions nobody else has (committed after its last replica
//! acknowledgement, never acknowledged to a client), that channel would fetch them and apply them on the
//! writer, on top of the writes it acknowledged since. The leader therefore lists, in every status, the
//! hosts that carry errant transactions or are neither ONLINE nor UNKNOWN (never judged: a new cluster's
//! first start) (`SetStatusRequest.isolate_from`); a returning host is put ONLINE only after an errant
//! check that started after it came back found nothing. The agent keeps the IO thread of a channel whose
//! source is listed stopped:
//!
//! - it stops it before the host opens writes (a candidate without a target position stops it before
//!   applying what it received; one with a target keeps it until it reached the target, which the old
//!   writer reported read-only at and so is acknowledged or acknowledgeable);
//! - a thread `Connecting` to an unreachable source counts as running: it would fetch the tail the moment
//!   the source answers;
//! - while it stops the thread from a source that does not answer a TCP connection within 100 ms (20 ms
//!   for a source the monitors found HARD_OFFLINE: their evidence stands for the rest, and a failover's
//!   candidate waits for this on its critical path), the host's own connections to that source are
//!   reset ([`crate::firewall`]): a semi-sync replica would otherwise wait up to
//!   `rpl_semi_sync_slave_kill_conn_timeout` for it before the thread stops (a source that answers is
//!   not cut off, so its dump thread is killed as usual);
//! - it starts it again once the source is no longer listed, and only with the SQL thread running and
//!   everything received applied (MariaDB may discard the relay log when the IO thread starts, and the
//!   source may be gone since: received transactions would be lost);
//! - the fact that this agent stopped it, and what had been received until then, is kept in
//!   `<state_dir>/isolated-source`, so an agent restarted meanwhile starts it again too, an IO thread an
//!   operator stopped is never started by it, and a failover's catch-up must reach that position (MariaDB
//!   resets `Gtid_IO_Pos` and may drop relay logs when the SQL thread restarts with the IO thread
//!   stopped: without the record a candidate could open without transactions it had received).
//!
//! Assumed: the writer replicates only through the channel `SHOW SLAVE STATUS` shows (one source).
//! Guaranteed: between a status listing the source and the next status not listing it, the writer
//! fetches nothing from that source, except a candidate catching up to a target position.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use crate::agent::source_matches;
use crate::db::{Db, ReplicaInfo};
use crate::firewall::Firewall;
use crate::topology::Topology;

/// How long a restart of the IO thread waits for received transactions to be applied first (tried
/// again at the next status).
const RESTART_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(1);

/// The file that records the source whose IO thread this agent stopped.
const ISOLATED_FILE: &str = "isolated-source";

/// What this agent isolated, in memory and on disk.
#[derive(Debug)]
pub struct Isolation {
    /// `<state_dir>/isolated-source`.
    path: PathBuf,
    /// What is recorded there.
    record: Mutex<Record>,
}

/// The record of isolation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Record {
    /// The source host whose IO thread this agent stopped (`None`: none stopped by it).
    stopped: Option<String>,
    /// The GTID position received when fetching was stopped (merged over stops), until the server has
    /// applied it. MariaDB does not keep it reliably: a restart of the SQL thread while the IO thread is
    /// stopped resets `Gtid_IO_Pos` to what was applied and may drop the rest of the relay log. A
    /// failover's catch-up must still reach it, so a candidate never opens without transactions it had
    /// received (and that the old writer may have acknowledged). "" when none.
    floor: String,
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
        let record = match fs::read_to_string(&path) {
            Ok(s) => {
                let mut lines = s.lines().map(str::trim);
                Record {
                    stopped: lines.next().filter(|l| !l.is_empty()).map(str::to_string),
                    floor: lines.next().unwrap_or("").to_string(),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Record::default(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if record != Record::default() {
            tracing::info!(source = ?record.stopped, floor = %record.floor, file = %path.display(), "replication isolation recorded by an earlier run: the IO thread it stopped starts again once its source is verified, and a failover's catch-up must reach the floor");
        }
        Ok(Isolation {
            path,
            record: Mutex::new(record),
        })
    }

    fn record(&self) -> Record {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What had been received when this agent last stopped fetching, until it is applied ("" when
    /// nothing is owed): a failover's catch-up must reach it too.
    pub fn received_floor(&self) -> String {
        self.record().floor
    }

    fn save(&self, record: Record) -> anyhow::Result<()> {
        if record == Record::default() {
            match fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot remove {}", self.path.display()))
                }
            }
        } else {
            let tmp = self.path.with_extension("tmp");
            let mut f = fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            writeln!(
                f,
                "{}\n{}",
                record.stopped.as_deref().unwrap_or(""),
                record.floor
            )
            .and_then(|()| f.sync_all())?;
            fs::rename(&tmp, &self.path)
                .with_context(|| format!("cannot rename {}", tmp.display()))?;
        }
        *self.record.lock().unwrap_or_else(|e| e.into_inner()) = record;
        Ok(())
    }

    /// Stops the IO thread when the local server's source is in the status's `isolate_from` (unless
    /// `keep_io`: a candidate still catching up to a target position), starts it again when this agent
    /// stopped it and the source is no longer listed; forgets the floor once the server has applied it.
    /// `replica`: the replica status when the caller read it and changed nothing since (`None`: read
    /// here).
    pub async fn enforce(
        &self,
        db: &mut Db,
        topo: &Topology,
        status: &crate::validate::DesiredStatus,
        keep_io: bool,
        replica: Option<Option<ReplicaInfo>>,
        firewall: &Firewall,
    ) -> anyhow::Result<Enforced> {
        let (isolate_from, hard_offline) = (&status.isolate_from, &status.hard_offline);
        let mut rec = self.record();
        if isolate_from.is_empty() && rec == Record::default() {
            return Ok(Enforced::Unchanged);
        }
        if !rec.floor.is_empty() {
            let applied = db.gtid_positions().await?.current;
            if crate::sql::gtid_reached(&applied, &rec.floor) {
                tracing::info!(floor = %rec.floor, applied = %applied, "transactions received before fetching stopped are applied");
                rec.floor.clear();
                self.save(rec.clone())?;
            }
        }
        let replica = match replica {
            Some(known) => known,
            None => db.replica_status().await?,
        };
        let Some(rep) = replica else {
            if rec.stopped.is_some() {
                rec.stopped = None;
                self.save(rec)?;
            }
            return Ok(Enforced::Unchanged);
        };
        let source = topo
            .hosts
            .iter()
            .find(|(name, ip)| source_matches(&rep.source_host, name, **ip))
            .map(|(name, _)| name.clone());
        let isolated = source.as_ref().is_some_and(|s| isolate_from.contains(s));
        let received = |r: &ReplicaInfo| r.received_gtid.trim().replace('\n', "");
        match (isolated && !keep_io, rec.stopped.clone()) {
            (true, _) if rep.io_stopped => Ok(Enforced::Unchanged),
            (true, _) => {
                let source = source.unwrap_or_default();
                // Recorded first: an agent that dies between the two steps still starts it later.
                rec.stopped = Some(source.clone());
                rec.floor = crate::sql::gtid_merge(&rec.floor, &received(&rep));
                self.save(rec.clone())?;
                // A semi-sync replica first connects to the source to kill its dump thread, and
                // waits for it when the source is unreachable: refused at once instead. A source
                // that answers is not cut off: its dump thread must be killed (a dump thread left
                // behind still counts as a semi-sync replica there).
                let port = u16::try_from(rep.source_port).unwrap_or(3306);
                let hard = hard_offline.contains(&source);
                let wait = answer_timeout(hard);
                match topo.hosts.get(&source) {
                    Some(IpAddr::V4(ip)) if !answers(*ip, port, wait).await => {
                        tracing::info!(source = %source, hard_offline = hard, answer_timeout_ms = wait.as_millis() as u64,
                            "the source did not answer a TCP connection: cut off while the IO thread stops");
                        firewall
                            .while_cut_off(*ip, port, db.stop_replica_io())
                            .await?
                    }
                    _ => db.stop_replica_io().await?,
                }
                // What arrived until the thread actually stopped.
                if let Some(after) = db.replica_status().await? {
                    rec.floor = crate::sql::gtid_merge(&rec.floor, &received(&after));
                    self.save(rec.clone())?;
                }
                tracing::warn!(source = %source, floor = %rec.floor, "replication IO thread stopped: its source is not verified (not ONLINE, or errant transactions); nothing it has reaches this host until it is");
                Ok(Enforced::Stopped(source))
            }
            (false, Some(was)) => {
                if source.as_deref() == Some(was.as_str()) && rep.io_stopped {
                    // Started only with the SQL thread running and what was received applied: MariaDB
                    // may discard the relay log when the IO thread starts.
                    if !rep.sql_running {
                        anyhow::bail!(
                            "the IO thread from {was} stays stopped: the SQL thread is not running, and \
                             starting the IO thread could discard received transactions it has not applied"
                        );
                    }
                    db.wait_applied(&rep, RESTART_CATCH_UP)
                        .await
                        .with_context(|| {
                            format!("the IO thread from {was} stays stopped until what was received is applied")
                        })?;
                    db.start_replica_io().await?;
                    tracing::info!(source = %was, "replication IO thread started again: its source is verified");
                    rec.stopped = None;
                    self.save(rec)?;
                    return Ok(Enforced::Started(was));
                }
                // Re-pointed elsewhere meanwhile (which starts replication), or already running.
                rec.stopped = None;
                self.save(rec)?;
                Ok(Enforced::Unchanged)
            }
            (false, None) => Ok(Enforced::Unchanged),
        }
    }
}

/// How long a source may take to answer a TCP connection before it counts as unreachable: far above a
/// round trip within one site, where a kernel answers a SYN in well under a millisecond.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(100);
/// The same for a source the monitors found HARD_OFFLINE (a majority could not reach it for
/// `trap_period`, or its mysqld is down, which refuses at once): their evidence stands for the rest,
/// and a failover's candidate waits for this on its critical path.
const HARD_OFFLINE_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(20);

/// How long a source may take to answer before it is cut off, by whether the monitors found it
/// HARD_OFFLINE.
fn answer_timeout(hard_offline: bool) -> std::time::Duration {
    if hard_offline {
        HARD_OFFLINE_ANSWER_TIMEOUT
    } else {
        ANSWER_TIMEOUT
    }
}

/// True when `ip:port` accepts or refuses a TCP connection within `wait` (the host is reachable,
/// whether or not its server runs).
async fn answers(ip: std::net::Ipv4Addr, port: u16, wait: std::time::Duration) -> bool {
    match tokio::time::timeout(wait, tokio::net::TcpStream::connect((ip, port))).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hard_offline_source_gets_less_time_to_answer() {
        assert_eq!(answer_timeout(false), ANSWER_TIMEOUT);
        assert_eq!(answer_timeout(true), HARD_OFFLINE_ANSWER_TIMEOUT);
        assert!(HARD_OFFLINE_ANSWER_TIMEOUT < ANSWER_TIMEOUT);
        // A listening port answers, and so does a refusing one (the host is there).
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let lo = std::net::Ipv4Addr::LOCALHOST;
        assert!(answers(lo, port, answer_timeout(true)).await);
        drop(l);
        assert!(answers(lo, port, answer_timeout(true)).await, "refused");
    }

    #[test]
    fn the_record_survives_a_restart_and_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let iso = Isolation::open(dir.path()).unwrap();
        assert_eq!(iso.record(), Record::default());
        assert_eq!(iso.received_floor(), "");
        let r = Record {
            stopped: Some("db1".into()),
            floor: "0-1-208".into(),
        };
        iso.save(r.clone()).unwrap();
        let again = Isolation::open(dir.path()).unwrap();
        assert_eq!(again.record(), r);
        assert_eq!(again.received_floor(), "0-1-208");
        // The IO thread started again: the floor stays until it is applied.
        let started = Record {
            stopped: None,
            floor: "0-1-208".into(),
        };
        again.save(started.clone()).unwrap();
        assert_eq!(Isolation::open(dir.path()).unwrap().record(), started);
        again.save(Record::default()).unwrap();
        assert!(!dir.path().join(ISOLATED_FILE).exists());
        assert_eq!(
            Isolation::open(dir.path()).unwrap().record(),
            Record::default()
        );
    }
}
