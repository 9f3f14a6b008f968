//! Processes the lab runs inside namespaces: stdout/stderr to a log file, killed (the whole process group)
//! when dropped.
//!
//! A process may be paused (SIGSTOP to its group) to model a stalled host: a long GC-like pause, a VM
//! freeze, a process stuck in the kernel. A paused process is still killed by SIGKILL (the kernel delivers
//! it to stopped processes), so `kill` and `Drop` never hang on it; `stop` resumes it after its SIGTERM so
//! the process can act on the signal.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

/// A child process started by the lab. Dropping it kills it (SIGKILL to its process group) and reaps it.
#[derive(Debug)]
pub struct LabProcess {
    /// The child; `None` once it has been reaped.
    child: Option<Child>,
    /// Its process id (also its process group id).
    pid: u32,
    /// Where its stdout and stderr go.
    log: PathBuf,
    /// Short label for logs and errors.
    label: String,
    /// True between `pause` and `resume`: `stop` must then send SIGCONT after SIGTERM, and tests ask
    /// which processes are still stalled.
    paused: bool,
}

impl LabProcess {
    /// Starts `program args` inside namespace `ns` (or in the root namespace if `ns` is `None`), in a process
    /// group of its own (so a terminal's Ctrl-C reaches only the lab, which then tears everything down).
    pub(crate) fn spawn(
        ns: Option<&str>,
        program: &Path,
        args: &[&str],
        log: &Path,
    ) -> anyhow::Result<Self> {
        Self::spawn_with_env(ns, program, args, log, &[])
    }

    /// [`LabProcess::spawn`] with extra environment variables (e.g. libfaketime's, for a skewed clock).
    pub(crate) fn spawn_with_env(
        ns: Option<&str>,
        program: &Path,
        args: &[&str],
        log: &Path,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        if !program.exists() {
            bail!(
                "{} not found (build it first, e.g. `cargo build --workspace`)",
                program.display()
            );
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open log {}", log.display()))?;
        let err = out.try_clone().context("cloning log file handle")?;
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn().with_context(|| {
            format!(
                "cannot start {} in namespace {}",
                program.display(),
                ns.unwrap_or("root")
            )
        })?;
        let pid = child.id();
        let label = format!(
            "{}@{}",
            program
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            ns.unwrap_or("root")
        );
        tracing::info!(pid, process = %label, log = %log.display(), "lab process started");
        Ok(Self {
            child: Some(child),
            pid,
            log: log.to_path_buf(),
            label,
            paused: false,
        })
    }

    /// Process id (inside `ip netns exec`, which execs the program, this is the program itself).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The log file holding the process's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Sends a signal to the process group.
    pub fn signal(&self, signal: i32) -> anyhow::Result<()> {
        if self.child.is_none() {
            bail!("{} has already exited", self.label);
        }
        // SAFETY: kill(2) on our own child's process group; the child is not reaped yet, so the id is ours.
        let rc = unsafe { libc::kill(-(self.pid as i32), signal) };
        if rc != 0 {
            bail!(
                "kill({}, {signal}) failed: {}",
                self.pid,
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// Stops the process group with SIGSTOP: it keeps its sockets and memory but runs no code, so peers see
    /// connections that open (the kernel completes TCP handshakes) but never answer.
    /// Returns once every thread of the process is stopped (a thread busy in a system call stops only
    /// when it returns from it: a statement sent right after the signal could still run otherwise).
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.signal(libc::SIGSTOP)?;
        self.paused = true;
        let deadline = std::time::Instant::now() + PAUSE_TIMEOUT;
        while !all_threads_stopped(self.pid) {
            if std::time::Instant::now() > deadline {
                bail!("{} not stopped {PAUSE_TIMEOUT:?} after SIGSTOP", self.label);
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        tracing::info!(pid = self.pid, process = %self.label, "lab process paused");
        Ok(())
    }

    /// Continues a paused process group with SIGCONT (harmless on a running one).
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.signal(libc::SIGCONT)?;
        self.paused = false;
        tracing::info!(pid = self.pid, process = %self.label, "lab process resumed");
        Ok(())
    }

    /// True between [`LabProcess::pause`] and [`LabProcess::resume`].
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_reap(), Ok(None))
    }

    /// Reaps the process if it has exited (dropping the handle, so its id is never signalled again).
    fn try_reap(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} was already reaped", self.label)
        };
        let status = child
            .try_wait()
            .with_context(|| format!("waiting for {}", self.label))?;
        if status.is_some() {
            self.child = None;
        }
        Ok(status)
    }

    /// Waits (polling, up to `timeout`) for the process to exit and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_reap()? {
                return Ok(status);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{} did not exit within {timeout:?}", self.label);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process group with SIGKILL and reaps the process.
    pub fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("{} was already reaped", self.label)
        };
        // SAFETY: as in `signal`; the child is not reaped yet.
        // SIGKILL also ends a stopped (paused) process: no SIGCONT is needed before it.
        unsafe { libc::kill(-(self.pid as i32), libc::SIGKILL) };
        self.paused = false;
        let status = child
            .wait()
            .with_context(|| format!("reaping {}", self.label))?;
        tracing::info!(pid = self.pid, process = %self.label, %status, "lab process killed");
        Ok(status)
    }

    /// SIGTERM, then SIGKILL if the process has not exited within `grace`.
    pub async fn stop(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        self.signal(libc::SIGTERM)?;
        if self.paused {
            // A stopped process only acts on the pending SIGTERM once it runs again.
            self.resume()?;
        }
        match self.wait_exit(grace).await {
            Ok(s) => Ok(s),
            Err(_) => self.kill(),
        }
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.kill();
        }
    }
}

/// How long [`LabProcess::pause`] waits for every thread to stop.
const PAUSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// True when every thread of `pid` is stopped (`T` or `t` in `/proc/<pid>/task/<tid>/stat`), or the
/// process is gone.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|t| {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            return true;
        };
        // pid (comm) state ...: the state follows the last ')'.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| matches!(state, "T" | "t" | "Z" | "X"))
    })
}
