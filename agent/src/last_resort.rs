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
//! - From the exposure's lease end on, a watchdog task looks every [`WATCH_INTERVAL`] on a connection
//!   of its own, bounded by [`PROBE_TIMEOUT`], and [`verdict`] decides: `read_only=1` or mysqld down
//!   ends the exposure; *no answer within the timeout* (a stalled server) kills mysqld at once; an answer
//!   that does not close it (`read_only=0`, or an error: the agent's password refused, a connection the
//!   demotion's kill loop closed while it logged in) is waited on while the fence event may still act
//!   ([`EVENT_BOUND`]), after which `read_only=0` kills (the event failed on a running server) and an
//!   error ends the exposure (a server that runs has run its event). Only a timeout counts as no answer.
//! - The kill: SIGKILL to the process named by mysqld's own `@@pid_file` (learned while it answered),
//!   which must be a `mariadbd` or `mysqld` process (a stale pid file naming another program kills
//!   nothing); the agent then waits for the process to be gone ([`MysqldProcess`]). A killed thread
//!   returns to user space no more, so writes stop at the signal.
//! - The watchdog takes no lock an apply holds, so a demotion stuck on a stalled server cannot delay it.
//! - `kill_stalled_mysqld 0` in `<agent>` turns the kill off (it is then only logged): the writer's
//!   safety then rests on the two other layers, which a stalled mysqld defeats.
//!
//! Bound: a server that stalls at any moment up to `EVENT_BOUND` after the lease's end is seen by a look
//! within `WATCH_INTERVAL + PROBE_TIMEOUT` and killed; one that runs is closed by the event within
//! `EVENT_BOUND`. So no server accepts writes `EVENT_BOUND + WATCH_INTERVAL + PROBE_TIMEOUT +
//! KILL_EFFECT` (750 ms) after its lease ended: the fence bound `F` the leader adds to every lease
//! ([`mmm_proto::FENCE_BOUND_MILLIS`]).
//! Assumed: the agent runs (a dead or paused agent leaves it to the fence event, which a stalled mysqld
//! also defeats: that double fault is not covered), it may signal mysqld (root, or mysqld's user), and
//! both share a pid namespace. Not covered: an agent started while its mysqld is stalled knows no lease
//! end (it could not read the fence) and leaves that server to the fence event.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The fence event's bound: a running mysqld closes itself within this after the lease's end.
pub const EVENT_BOUND: Duration = Duration::from_millis(mmm_proto::FENCE_EVENT_BOUND_MILLIS);
/// How often the watchdog looks.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(mmm_proto::STALLED_KILL_WATCH_MILLIS);
/// Bound on one look: a connection of its own and `@@read_only`. A healthy local server answers in
/// milliseconds; no answer within this is a stalled one.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(mmm_proto::STALLED_KILL_PROBE_MILLIS);
/// Allowance from the signal to writes stopped (a thread inside a system call finishes only that call).
pub const KILL_EFFECT: Duration = Duration::from_millis(mmm_proto::STALLED_KILL_EFFECT_MILLIS);
/// Longest the agent waits to see a killed mysqld gone before it says so (and tries again later).
pub const DEATH_WAIT: Duration = Duration::from_millis(500);
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

    /// How long ago the exposure's lease ended, when the watchdog must look now: exposed, the lease
    /// over, and no kill tried within [`RETRY_EVERY`].
    pub fn look_due(&self, now: Instant) -> Option<Duration> {
        let until = self.until?;
        let pausing = self
            .killed_at
            .is_some_and(|t| now.saturating_duration_since(t) < RETRY_EVERY);
        (now >= until && !pausing).then(|| now.saturating_duration_since(until))
    }

    /// A kill is being tried at `now`.
    pub fn killing(&mut self, now: Instant) {
        self.killed_at = Some(now);
    }
}

/// What one look at mysqld found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// `read_only=1`.
    ReadOnly,
    /// `read_only=0`.
    Writable,
    /// Certainly down (connection refused, socket gone).
    Down,
    /// It answered but the agent could not read `read_only` (access denied, a connection closed or
    /// refused by the server: the demotion's own kill loop closes connections still logging in): it
    /// runs, the agent cannot see inside.
    Answered,
    /// No answer within [`PROBE_TIMEOUT`]: stalled.
    NoAnswer,
}

/// What the watchdog does about a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Writes are denied (or nothing runs): the exposure ends.
    Closed,
    /// A running server the fence event may still close: look again.
    Wait,
    /// A running server past the event's bound that the agent cannot read: left to the event, which
    /// has had its time; the exposure ends.
    LeftToTheEvent,
    /// Kill mysqld now.
    Kill,
}

/// The watchdog's rule, `since_end` after the exposure's lease ended (see the module docs).
pub fn verdict(since_end: Duration, look: Look) -> Verdict {
    let event_had_its_time = since_end >= EVENT_BOUND;
    match look {
        Look::ReadOnly | Look::Down => Verdict::Closed,
        Look::NoAnswer => Verdict::Kill,
        Look::Writable if event_had_its_time => Verdict::Kill,
        Look::Answered if event_had_its_time => Verdict::LeftToTheEvent,
        Look::Writable | Look::Answered => Verdict::Wait,
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
    fn the_fence_bound_covers_the_last_resort() {
        assert_eq!(
            EVENT_BOUND + WATCH_INTERVAL + PROBE_TIMEOUT + KILL_EFFECT,
            Duration::from_millis(mmm_proto::FENCE_BOUND_MILLIS)
        );
    }

    #[test]
    fn verdict_table() {
        let before = EVENT_BOUND - MS;
        let after = EVENT_BOUND;
        let cases = [
            (Duration::ZERO, Look::ReadOnly, Verdict::Closed),
            (after, Look::ReadOnly, Verdict::Closed),
            (Duration::ZERO, Look::Down, Verdict::Closed),
            (Duration::ZERO, Look::NoAnswer, Verdict::Kill),
            (before, Look::NoAnswer, Verdict::Kill),
            (Duration::ZERO, Look::Writable, Verdict::Wait),
            (before, Look::Writable, Verdict::Wait),
            (after, Look::Writable, Verdict::Kill),
            (Duration::ZERO, Look::Answered, Verdict::Wait),
            (before, Look::Answered, Verdict::Wait),
            (after, Look::Answered, Verdict::LeftToTheEvent),
        ];
        for (since, look, want) in cases {
            assert_eq!(
                verdict(since, look),
                want,
                "{look:?} {since:?} after the lease"
            );
        }
    }

    #[test]
    fn looks_are_due_from_the_latest_lease_end_until_a_denial() {
        let t0 = Instant::now();
        let mut e = Exposure::default();
        assert_eq!(e.look_due(t0 + MS * 10_000), None, "never armed");
        e.armed(t0 + MS * 1000);
        assert_eq!(e.look_due(t0 + MS * 999), None, "lease not over");
        assert_eq!(e.look_due(t0 + MS * 1000), Some(Duration::ZERO));
        e.armed(t0 + MS * 600);
        assert_eq!(
            e.look_due(t0 + MS * 1100),
            Some(MS * 100),
            "an older end never shortens the exposure"
        );
        e.killing(t0 + MS * 1100);
        assert_eq!(e.look_due(t0 + MS * 1500), None, "pause after a kill");
        assert!(e.look_due(t0 + MS * 1100 + RETRY_EVERY).is_some());
        e.denied();
        assert_eq!(e.look_due(t0 + MS * 10_000), None, "denied");
        e.armed(t0 + MS * 20_000);
        assert_eq!(e.look_due(t0 + MS * 20_050), Some(MS * 50), "armed again");
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
