//! The checking client of the fault suite: a [`Workload`] writes continuously through one address (usually the
//! writer VIP) the way an application pool would (one connection while it works, a new one after any error),
//! records every acknowledged write and which server accepted it, reads through the reader addresses, and
//! turns what it saw into a [`History`] that can be judged on its own (outages, split brain) and against the
//! servers' data ([`History::verify`]: nothing acknowledged is lost, the servers converge).

mod history;
mod reader;
mod recorder;
mod verify;
mod writer;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mysql_async::prelude::Queryable;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use history::{Ack, History, Read, ReadOutcome, FAILBACK_MIN_GAP};
pub use verify::{Report, VERIFY_TIMEOUT};

use crate::Lab;
use recorder::Recorder;

/// The table the workload writes (in the application's database).
pub const TABLE: &str = "chk";
/// How long [`Workload::start`] keeps trying to create the table through the target.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two reads of one reader.
const READ_INTERVAL: Duration = Duration::from_millis(50);

/// What the workload does.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    /// Where writes go: usually [`Lab::writer_vip`], or a host's own address when no agent holds the VIP.
    pub target: Ipv4Addr,
    /// Where reads go (one reader task per address): usually [`Lab::reader_vips`].
    pub readers: Vec<Ipv4Addr>,
    /// Pause between two writes (and before reconnecting after an error), e.g. 5 ms.
    pub interval: Duration,
    /// Bound on connecting and on each statement, e.g. 1 s; an INSERT that exceeds it is "unknown".
    pub op_timeout: Duration,
}

/// A running workload: a writer task and one reader task per reader address. [`Workload::stop`] ends it and
/// returns what it saw; dropping it without stopping aborts the tasks.
pub struct Workload {
    /// What it was started with.
    spec: WorkloadSpec,
    /// Where the tasks record acks, errors and reads; shared so a snapshot can be taken while running.
    recorder: Arc<Recorder>,
    /// Tells the tasks to finish their current operation and end.
    stop_tx: watch::Sender<bool>,
    /// The writer and reader tasks.
    tasks: Vec<JoinHandle<()>>,
    /// When the tasks were started (beginning of the history).
    started: Instant,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("spec", &self.spec)
            .field("acked", &self.acked())
            .finish()
    }
}

impl Workload {
    /// Creates `app.chk` through the target (retrying until it works, at most 30 s), then starts writing and
    /// reading. Ids continue after the largest id already in the table, so several workloads can run one
    /// after another in one lab.
    pub async fn start(lab: &Lab, spec: WorkloadSpec) -> anyhow::Result<Workload> {
        if spec.op_timeout.is_zero() {
            bail!("the workload's op_timeout must be more than zero");
        }
        let first_id = create_table(spec.target, spec.op_timeout)
            .await
            .with_context(|| format!("creating app.{TABLE} through {}", spec.target))?;
        let recorder = Arc::new(Recorder::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let started = Instant::now();
        let mut tasks = vec![tokio::spawn(writer::run(
            writer::WriterSpec {
                target: spec.target,
                interval: spec.interval,
                op_timeout: spec.op_timeout,
                first_id,
            },
            recorder.clone(),
            stop_rx.clone(),
        ))];
        for &target in &spec.readers {
            tasks.push(tokio::spawn(reader::run(
                reader::ReaderSpec {
                    target,
                    interval: READ_INTERVAL,
                    op_timeout: spec.op_timeout,
                },
                recorder.clone(),
                stop_rx.clone(),
            )));
        }
        tracing::info!(slot = lab.slot(), target = %spec.target, readers = ?spec.readers, first_id, "workload started");
        Ok(Workload {
            spec,
            recorder,
            stop_tx,
            tasks,
            started,
        })
    }

    /// Stops the tasks (each finishes its current operation, bounded by the op timeout) and returns the history.
    pub async fn stop(mut self) -> History {
        let stopped = Instant::now();
        let _ = self.stop_tx.send(true);
        let grace = self.spec.op_timeout * 3 + Duration::from_secs(1);
        for mut task in std::mem::take(&mut self.tasks) {
            if tokio::time::timeout(grace, &mut task).await.is_err() {
                tracing::warn!("a workload task did not stop within {grace:?}; aborting it");
                task.abort();
            }
        }
        let history = self.snapshot(stopped);
        tracing::info!(
            acked = history.acks.len(),
            errors = history.errors.len(),
            reads = history.reads.len(),
            longest_outage = ?history.longest_outage(),
            "workload stopped"
        );
        history
    }

    /// What the workload has seen so far, as if it had stopped now (it keeps running).
    pub fn history(&self) -> History {
        self.snapshot(Instant::now())
    }

    fn snapshot(&self, stopped: Instant) -> History {
        let (acks, errors, reads) = self.recorder.snapshot();
        History {
            target: self.spec.target,
            readers: self.spec.readers.clone(),
            acks,
            errors,
            reads,
            started: self.started,
            stopped,
        }
    }

    /// Number of acknowledged writes so far.
    pub fn acked(&self) -> u64 {
        self.recorder.acked()
    }

    /// When the last write was acknowledged.
    pub fn last_ack(&self) -> Option<Instant> {
        self.recorder.last_ack()
    }

    /// Number of write errors (failed connects, failed or timed-out statements) so far.
    pub fn write_errors(&self) -> u64 {
        self.recorder.error_count()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.stop_tx.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Creates the table through `target` as the application user, retrying until it works or [`SETUP_TIMEOUT`]
/// passes; returns the first id to use.
async fn create_table(target: Ipv4Addr, op_timeout: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        match try_create_table(target, op_timeout).await {
            Ok(first) => return Ok(first),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("still failing after {SETUP_TIMEOUT:?}")))
            }
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "workload table not created yet; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn try_create_table(target: Ipv4Addr, op_timeout: Duration) -> anyhow::Result<u64> {
    let mut conn = writer::connect(target, op_timeout).await?.0;
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, \
         server_id INT UNSIGNED NOT NULL, ts DATETIME(6) NOT NULL) ENGINE=InnoDB"
    );
    tokio::time::timeout(op_timeout, conn.query_drop(sql))
        .await
        .context("CREATE TABLE timed out")??;
    let max: Option<Option<u64>> = tokio::time::timeout(
        op_timeout,
        conn.query_first(format!("SELECT MAX(id) FROM {TABLE}")),
    )
    .await
    .context("SELECT MAX(id) timed out")??;
    let _ = tokio::time::timeout(op_timeout, conn.disconnect()).await;
    Ok(max.flatten().map_or(1, |m| m + 1))
}
