//! The fence's last resort: `kill -9` of the local mysqld when it may still accept writes after the writer
//! lease ended and neither the agent's demotion nor the fence inside mysqld closed it in time.
//!
//! Why: both other layers need mysqld to run statements. The agent's demotion connects and sets
//! `read_only=1` ([`crate::agent`]); the fence ([`crate::fence`]) is an event that mysqld's event
//! scheduler must run. A mysqld that stalls while writable (a frozen disk or VM, a server-wide lock, a
//! SIGSTOP) does neither, and when it wakes up, sessions that were waiting inside it commit after the new
//! writer opened. A killed process accepts nothing; InnoDB's crash recovery keeps every commit that was
//! durable (those acknowledged semi-synchronously are on the new writer too).
//!
//! Rules (one home: this module):
//! - The host is *exposed* from the moment the agent writes a lease's end into mysqld's fence (before
//!   it allows writes, and at every renewal) until it verified writes denied: `read_only=1` read back,
//!   a hold on writes taken, or mysqld certainly down ([`Exposure`]). A released hold exposes it again
//!   from then.
//! - When an exposed host is still exposed [`KILL_AFTER`] after the exposure's lease end, the watchdog
//!   looks once more on a connection of its own (bounded by [`PROBE_TIMEOUT`]): `read_only=1` (the fence
//!   event did it, e.g. while the agent was paused), mysqld certainly down, or access denied end it
//!   there. Otherwise (no answer: a stalled server) it kills mysqld with SIGKILL and waits up to
//!   [`DEATH_WAIT`] for the process to be gone ([`MysqldProcess`]).
//!   The process is found from mysqld's own `@@pid_file`, learned while it answered, and must be a
//!   `mariadbd` or `mysqld` process (a stale pid file naming another program kills nothing).
//! - A mysqld that refused the agent's credentials after the lease ended (access denied: a changed
//!   password) runs, and so does its fence event: it is not killed.
//! - A watchdog task checks every [`WATCH_INTERVAL`] and takes no lock an apply holds, so a demotion
//!   stuck on a stalled server cannot delay it.
//! - `kill_stalled_mysqld 0` in `<agent>` turns the kill off (the exposure is still logged): the writer's
//!   safety then rests on the two other layers, which a stalled mysqld defeats.
//!
//! Bound: exposure ends at most `KILL_AFTER + WATCH_INTERVAL + PROBE_TIMEOUT + DEATH_WAIT` (1 s) after
//! the lease ends, the fence bound `F` the leader adds to every lease ([`mmm_proto::FENCE_BOUND_MILLIS`]).
//! Assumed: the agent runs (a dead or paused agent leaves it to the fence event, which a stalled mysqld
//! also defeats: that double fault is not covered), it may signal mysqld (root, or mysqld's user), and
//! both share a pid namespace. Not covered: an agent started while its mysqld is stalled knows no lease
//! end (it could not read the fence) and leaves that server to the fence event.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long after the lease's end an exposed mysqld is killed: the agent notices a lapse within 100 ms
/// (its tick) and a healthy server denies writes in a few milliseconds; the fence event within 400 ms.
pub const KILL_AFTER: Duration = Duration::from_millis(mmm_proto::STALLED_KILL_AFTER_MILLIS);
/// How often the watchdog looks.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(mmm_proto::STALLED_KILL_WATCH_MILLIS);
/// Bound on the watchdog's last look before a kill: a connection of its own and `@@read_only`.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(mmm_proto::STALLED_KILL_PROBE_MILLIS);
/// Longest wait for a killed mysqld to be gone (its threads leave at their next return from the kernel).
pub const DEATH_WAIT: Duration = Duration::from_millis(mmm_proto::STALLED_KILL_DEATH_MILLIS);
/// A kill that did not finish the process is tried again this often (and logged each time).
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Names a mysqld process may have (`/proc/<pid>/comm`).
const MYSQLD_NAMES: [&str; 2] = ["mariadbd", "mysqld"];

/// Until when the local mysqld may accept writes without a verified denial: pure bookkeeping.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Exposure {
    /// The latest lease end written into the fence since writes were last verified denied; `None` when
    /// they were verified denied since.
    until: Option<Instant>,
    /// When the last kill was tried for this exposure.
    killed_at: Option<Instant>,
    /// When mysqld last answered without letting the agent in (access denied): a server that runs.
    answered_at: Option<Instant>,
}

impl Exposure {
    /// A lease ending at `end` was written into mysqld's fence (writes may be allowed until then).
    pub fn armed(&mut self, end: Instant) {
        self.until = Some(self.until.map_or(end, |u| u.max(end)));
    }

    /// Writes were verified denied (or mysqld is certainly down).
    pub fn denied(&mut self) {
        *self = Exposure::default();
    }

    /// mysqld answered at `at` but refused the agent (a changed password): its threads run, so does its
    /// fence event. An exposure whose lease ended before such an answer is left to the fence event.
    pub fn answered(&mut self, at: Instant) {
        self.answered_at = Some(self.answered_at.map_or(at, |a| a.max(at)));
    }

    /// The lease end of the current exposure, if any.
    pub fn until(&self) -> Option<Instant> {
        self.until
    }

    /// Whether mysqld must be killed at `now` (and records the attempt).
    pub fn kill_due(&mut self, now: Instant) -> bool {
        let due = self
            .until
            .is_some_and(|u| now >= u + KILL_AFTER && self.answered_at.is_none_or(|a| a < u))
            && self
                .killed_at
                .is_none_or(|t| now.saturating_duration_since(t) >= RETRY_EVERY);
        if due {
            self.killed_at = Some(now);
        }
        due
    }
}

/// The local mysqld process, as its pid file names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqldProcess {
    /// `@@pid_file` of the server (absolute; read again at kill time, as mysqld rewrites it at start).
    pub pid_file: PathBuf,
}

/// What a kill did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    /// The process was killed and is gone.
    Killed {
        /// Its pid.
        pid: i32,
        /// How long it took to be gone after the signal.
        took: Duration,
    },
    /// No mysqld process runs under the pid file's pid (mysqld is down: nothing accepts writes).
    NotRunning,
}

impl MysqldProcess {
    /// The process the pid file names now, checked to be a mysqld; `Ok(None)` when none runs.
    pub fn current_pid(&self) -> anyhow::Result<Option<i32>> {
        let text = match std::fs::read_to_string(&self.pid_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", self.pid_file.display()))
            }
        };
        let pid: i32 = text.trim().parse().with_context(|| {
            format!(
                "{} holds {:?}, not a process id",
                self.pid_file.display(),
                text.trim()
            )
        })?;
        if pid <= 1 {
            bail!("{} names pid {pid}", self.pid_file.display());
        }
        match proc_name_and_state(pid) {
            None => Ok(None),
            Some((_, 'Z' | 'X')) => Ok(None),
            Some((name, _)) if MYSQLD_NAMES.contains(&name.as_str()) => Ok(Some(pid)),
            Some((name, _)) => {
                tracing::warn!(pid_file = %self.pid_file.display(), pid, process = %name, "the pid file names a process that is not mysqld (a stale file): nothing to kill");
                Ok(None)
            }
        }
    }

    /// Kills the process with SIGKILL and waits up to [`DEATH_WAIT`] for it to be gone.
    pub async fn kill(&self) -> anyhow::Result<KillOutcome> {
        let Some(pid) = self.current_pid()? else {
            return Ok(KillOutcome::NotRunning);
        };
        // SAFETY: kill(2) with a pid checked above to be a mysqld process; no memory is shared.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(KillOutcome::NotRunning);
            }
            return Err(e).with_context(|| format!("kill -9 {pid} (mysqld)"));
        }
        let sent = Instant::now();
        loop {
            if matches!(proc_name_and_state(pid), None | Some((_, 'Z' | 'X'))) {
                return Ok(KillOutcome::Killed {
                    pid,
                    took: sent.elapsed(),
                });
            }
            if sent.elapsed() >= DEATH_WAIT {
                bail!("mysqld (pid {pid}) still there {DEATH_WAIT:?} after kill -9");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// `(comm, state letter)` of a process, `None` when it does not exist.
fn proc_name_and_state(pid: i32) -> Option<(String, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`; comm may hold spaces and parentheses: it ends at the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let state = stat.get(close + 1..)?.trim_start().chars().next()?;
    Some((name, state))
}

/// Learns the pid file from the server (`@@pid_file`, made absolute against `@@datadir` as mysqld does).
pub async fn learn(db: &mut crate::db::Db) -> anyhow::Result<MysqldProcess> {
    let row: Option<(Option<String>, Option<String>)> = db
        .query_first("SELECT @@global.pid_file, @@global.datadir")
        .await?;
    let (file, datadir) = row.unwrap_or_default();
    let file = file
        .filter(|f| !f.is_empty())
        .context("@@pid_file is empty")?;
    Ok(MysqldProcess {
        pid_file: absolute(Path::new(&file), datadir.as_deref().unwrap_or("")),
    })
}

fn absolute(file: &Path, datadir: &str) -> PathBuf {
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        Path::new(datadir).join(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn exposure_is_due_only_kill_after_past_the_latest_lease_end_without_a_denial() {
        let t0 = Instant::now();
        // (steps, probe time, due?)
        type Step = fn(&mut Exposure, Instant);
        let arm_1000: Step = |e, t0| e.armed(t0 + MS * 1000);
        let arm_600: Step = |e, t0| e.armed(t0 + MS * 600);
        let deny: Step = |e, _| e.denied();
        let answer_at_1100: Step = |e, t0| e.answered(t0 + MS * 1100);
        let answer_at_900: Step = |e, t0| e.answered(t0 + MS * 900);
        let cases: Vec<(&str, Vec<Step>, u64, bool)> = vec![
            ("never armed", vec![], 10_000, false),
            ("armed, before the end", vec![arm_1000], 1000, false),
            (
                "armed, just before end + KILL_AFTER",
                vec![arm_1000],
                1000 + KILL_AFTER.as_millis() as u64 - 1,
                false,
            ),
            (
                "armed, at end + KILL_AFTER",
                vec![arm_1000],
                1000 + KILL_AFTER.as_millis() as u64,
                true,
            ),
            ("denied after arming", vec![arm_1000, deny], 10_000, false),
            (
                "an older end never shortens the exposure",
                vec![arm_1000, arm_600],
                600 + KILL_AFTER.as_millis() as u64,
                false,
            ),
            (
                "mysqld answered (access denied) after the lease ended: left to the fence event",
                vec![arm_1000, answer_at_1100],
                10_000,
                false,
            ),
            (
                "mysqld answered only before the lease ended",
                vec![arm_1000, answer_at_900],
                1000 + KILL_AFTER.as_millis() as u64,
                true,
            ),
            (
                "armed again after a denial",
                vec![arm_1000, deny, arm_600],
                600 + KILL_AFTER.as_millis() as u64,
                true,
            ),
        ];
        for (name, steps, probe, want) in cases {
            let mut e = Exposure::default();
            for s in &steps {
                s(&mut e, t0);
            }
            assert_eq!(e.kill_due(t0 + MS * probe as u32), want, "{name}");
        }
    }

    #[test]
    fn a_kill_is_retried_only_after_a_pause() {
        let t0 = Instant::now();
        let mut e = Exposure::default();
        e.armed(t0);
        assert!(e.kill_due(t0 + KILL_AFTER));
        assert!(!e.kill_due(t0 + KILL_AFTER + MS * 100));
        assert!(e.kill_due(t0 + KILL_AFTER + RETRY_EVERY));
        e.denied();
        assert!(!e.kill_due(t0 + RETRY_EVERY * 10));
    }

    #[test]
    fn proc_stat_parsing_handles_odd_names() {
        let me = std::process::id() as i32;
        let (name, state) = proc_name_and_state(me).expect("own /proc entry");
        assert!(!name.is_empty());
        assert!(state.is_ascii_uppercase(), "{state}");
        assert!(proc_name_and_state(i32::MAX).is_none());
    }

    #[test]
    fn a_relative_pid_file_is_under_the_datadir() {
        assert_eq!(
            absolute(Path::new("h.pid"), "/var/lib/mysql/"),
            PathBuf::from("/var/lib/mysql/h.pid")
        );
        assert_eq!(
            absolute(Path::new("/run/mysqld/mysqld.pid"), "/var/lib/mysql/"),
            PathBuf::from("/run/mysqld/mysqld.pid")
        );
    }

    /// A process named `mariadbd` (a copy of `sleep`) is killed through its pid file; one with another
    /// name, or a pid file naming nobody, is left alone.
    #[tokio::test]
    async fn kills_only_a_mysqld_named_by_the_pid_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = dir.path().join("mariadbd");
        std::fs::copy("/bin/sleep", &fake).expect("copy sleep");
        let mut child = std::process::Command::new(&fake)
            .arg("30")
            .spawn()
            .expect("spawn");
        let pid_file = dir.path().join("db.pid");
        std::fs::write(&pid_file, format!("{}\n", child.id())).expect("pid file");
        let p = MysqldProcess {
            pid_file: pid_file.clone(),
        };
        // Wait for the exec (right after fork the child still has the test's name).
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.current_pid().expect("read").is_none() {
            assert!(Instant::now() < deadline, "the fake mariadbd never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match p.kill().await.expect("kill") {
            KillOutcome::Killed { pid, took } => {
                assert_eq!(pid as u32, child.id());
                assert!(took <= DEATH_WAIT);
            }
            other => panic!("not killed: {other:?}"),
        }
        let status = child.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        // Now the file names a dead process: nothing to kill.
        assert_eq!(p.kill().await.expect("kill"), KillOutcome::NotRunning);

        // A process that is not mysqld is never killed.
        let mut other = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .expect("spawn");
        std::fs::write(&pid_file, format!("{}\n", other.id())).expect("pid file");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(p.kill().await.expect("kill"), KillOutcome::NotRunning);
        assert!(
            other.try_wait().expect("try_wait").is_none(),
            "sleep was killed"
        );
        other.kill().expect("cleanup");
        let _ = other.wait();

        // A missing pid file: mysqld is not running; garbage in it is an error naming the file.
        std::fs::remove_file(&pid_file).expect("rm");
        assert_eq!(p.current_pid().expect("read"), None);
        std::fs::write(&pid_file, "abc").expect("pid file");
        let e = p.current_pid().expect_err("garbage");
        assert!(format!("{e:#}").contains("db.pid"), "{e:#}");
    }
}
