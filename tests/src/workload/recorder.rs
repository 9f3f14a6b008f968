//! Where the workload's tasks put what they see, shared with [`super::Workload`] for live counters and
//! snapshots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::history::{Ack, Read};

/// Acks, errors and reads in the order they happened.
#[derive(Debug, Default)]
pub(super) struct Recorder {
    /// Acknowledged writes.
    acks: Mutex<Vec<Ack>>,
    /// Write errors: when, and what happened.
    errors: Mutex<Vec<(Instant, String)>>,
    /// Every read, successful or not.
    reads: Mutex<Vec<Read>>,
    /// Number of acks (read without taking the lock).
    acked: AtomicU64,
    /// Number of write errors (read without taking the lock).
    error_count: AtomicU64,
    /// When the last ack came.
    last_ack: Mutex<Option<Instant>>,
}

impl Recorder {
    pub(super) fn ack(&self, ack: Ack) {
        *self.last_ack.lock().unwrap_or_else(|e| e.into_inner()) = Some(ack.acked);
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ack);
        self.acked.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn error(&self, at: Instant, what: String) {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((at, what));
        self.error_count.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn read(&self, read: Read) {
        self.reads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(read);
    }

    pub(super) fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    pub(super) fn error_count(&self) -> u64 {
        self.error_count.load(Ordering::Relaxed)
    }

    pub(super) fn last_ack(&self) -> Option<Instant> {
        *self.last_ack.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies of everything recorded so far.
    pub(super) fn snapshot(&self) -> (Vec<Ack>, Vec<(Instant, String)>, Vec<Read>) {
        (
            self.acks.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            self.errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            self.reads.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        )
    }
}
