//! Running futures inside a network namespace.
//!
//! A socket belongs to the network namespace of the thread that created it, for its whole life. An
//! [`NsRuntime`] is one dedicated OS thread that enters a namespace (`setns(CLONE_NEWNET)`) and then drives a
//! tokio current-thread runtime: every future spawned through [`NsRuntime::handle`] runs on that thread, so
//! its TCP connections and netlink sockets are created in that namespace. Threads that thread starts (tokio's
//! blocking pool) inherit the namespace. The rest of the process (the test's own runtime) is not affected.

use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

/// Where `ip netns add` puts the namespace handles.
const NETNS_DIR: &str = "/var/run/netns";
/// How long [`NsRuntime::start`] waits for the thread to enter the namespace and build its runtime.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long dropping an [`NsRuntime`] waits for its tasks to end (they are cancelled at their next await);
/// a thread still busy after that is left to finish on its own rather than blocking the test.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// A tokio runtime whose thread lives in a network namespace. Dropping it stops the runtime (bounded by
/// [`SHUTDOWN_TIMEOUT`]) and cancels the tasks still running on it.
pub struct NsRuntime {
    /// The namespace's name (for logs and errors).
    ns: String,
    /// Spawns onto the namespace's thread.
    handle: tokio::runtime::Handle,
    /// Ends the thread's `block_on` (sent or dropped on drop).
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// Signalled by the thread when its runtime is shut down, so drop can wait with a bound
    /// (`JoinHandle::join` cannot).
    exited: mpsc::Receiver<()>,
}

impl std::fmt::Debug for NsRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NsRuntime").field("ns", &self.ns).finish()
    }
}

/// Moves the calling thread into the named network namespace.
fn enter(ns: &str) -> anyhow::Result<()> {
    let path = std::path::Path::new(NETNS_DIR).join(ns);
    let file = std::fs::File::open(&path)
        .with_context(|| format!("opening {} (no such network namespace?)", path.display()))?;
    // SAFETY: setns on a descriptor we own; it changes only the calling thread's network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!(
            "setns({}, CLONE_NEWNET): {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

impl NsRuntime {
    /// Starts the thread, enters namespace `ns` (a name under `/var/run/netns`, e.g. `mmm3-db1`) and builds
    /// the runtime; fails if the namespace does not exist or cannot be entered.
    pub fn start(ns: &str) -> anyhow::Result<NsRuntime> {
        let (ready_tx, ready_rx) = mpsc::channel::<anyhow::Result<tokio::runtime::Handle>>();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let (exited_tx, exited_rx) = mpsc::channel::<()>();
        let name = ns.to_string();
        std::thread::Builder::new()
            .name(format!("netns-{ns}"))
            .spawn(move || {
                let rt = enter(&name).and_then(|()| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("building the namespace's runtime")
                });
                let rt = match rt {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(rt.handle().clone()));
                rt.block_on(async {
                    let _ = shutdown_rx.await;
                });
                rt.shutdown_timeout(SHUTDOWN_TIMEOUT);
                let _ = exited_tx.send(());
            })
            .context("spawning the namespace thread")?;
        let handle = ready_rx
            .recv_timeout(START_TIMEOUT)
            .map_err(|e| anyhow!("the thread for namespace {ns} did not start: {e}"))??;
        Ok(NsRuntime {
            ns: ns.to_string(),
            handle,
            shutdown: Some(shutdown_tx),
            exited: exited_rx,
        })
    }

    /// Spawns futures onto the namespace's thread (their sockets are created in the namespace).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }

    /// The namespace's name.
    pub fn ns(&self) -> &str {
        &self.ns
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Waiting blocks the caller's thread: bounded, and only once per namespace at teardown.
        if self
            .exited
            .recv_timeout(SHUTDOWN_TIMEOUT + Duration::from_secs(1))
            .is_err()
        {
            tracing::warn!(ns = %self.ns, "namespace runtime did not stop in time; leaving its thread");
        }
    }
}
