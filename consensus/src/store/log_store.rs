//! The Raft log, vote and committed/purged ids in sled (openraft's `RaftLogStorage`).

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::any_err;
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig};

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";

/// The log store. Cheap to clone: clones share the same sled trees (a clone is also the log reader).
#[derive(Clone)]
pub struct LogStore {
    /// The database, flushed (fsync) after appends and votes.
    db: sled::Db,
    /// Entries keyed by big-endian index.
    logs: sled::Tree,
    /// Vote, committed and last purged log ids.
    raft: sled::Tree,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn decode_entry(v: &[u8]) -> Result<Entry, StorageError> {
    serde_json::from_slice(v).map_err(|e| StorageIOError::read_logs(any_err(&e)).into())
}

impl LogStore {
    pub(super) fn new(db: sled::Db, logs: sled::Tree, raft: sled::Tree) -> Self {
        LogStore { db, logs, raft }
    }

    fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError> {
        let Some(v) = self
            .raft
            .get(key)
            .map_err(|e| StorageIOError::read(any_err(&e)))?
        else {
            return Ok(None);
        };
        let t = serde_json::from_slice(&v).map_err(|e| StorageIOError::read(any_err(&e)))?;
        Ok(Some(t))
    }

    fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StorageError> {
        let v = serde_json::to_vec(value).map_err(|e| StorageIOError::write(any_err(&e)))?;
        self.raft
            .insert(key, v)
            .map_err(|e| StorageIOError::write(any_err(&e)))?;
        Ok(())
    }

    async fn flush(&self) -> Result<(), sled::Error> {
        self.db.flush_async().await.map(|_| ())
    }

    /// Number of entries currently kept in the log (after purges), for benchmarks and status.
    pub fn len(&self) -> usize {
        self.logs.len()
    }

    /// Whether the log holds no entry.
    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }

    /// Bytes the database uses on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let map = |b: Bound<&u64>| match b {
            Bound::Included(i) => Bound::Included(index_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let bounds = (map(range.start_bound()), map(range.end_bound()));
        let mut out = Vec::new();
        for kv in self.logs.range(bounds) {
            let (_, v) = kv.map_err(|e| StorageIOError::read_logs(any_err(&e)))?;
            out.push(decode_entry(&v)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_json(KEY_LAST_PURGED)?;
        let last = match self
            .logs
            .last()
            .map_err(|e| StorageIOError::read_logs(any_err(&e)))?
        {
            Some((_, v)) => Some(decode_entry(&v)?.log_id),
            None => None,
        };
        Ok(LogState {
            last_log_id: last.or(last_purged_log_id),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_json(KEY_VOTE, vote)?;
        self.flush()
            .await
            .map_err(|e| StorageIOError::write_vote(any_err(&e)))?;
        tracing::debug!(%vote, "vote saved");
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.get_json(KEY_VOTE)
    }

    /// Not flushed: a lost committed id only means fewer entries are re-applied at start, they are
    /// learned again from the leader.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.put_json(KEY_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_json::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let v =
                serde_json::to_vec(&entry).map_err(|e| StorageIOError::write_logs(any_err(&e)))?;
            batch.insert(&index_key(entry.log_id.index), v);
        }
        self.logs
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(any_err(&e)))?;
        match self.flush().await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(any_err(&e)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "truncating log from");
        let mut batch = sled::Batch::default();
        for kv in self.logs.range(index_key(log_id.index)..) {
            let (k, _) = kv.map_err(|e| StorageIOError::write_logs(any_err(&e)))?;
            batch.remove(k);
        }
        self.logs
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(any_err(&e)))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "purging log up to");
        // The purge mark goes first, so a crash in between never exposes a gap.
        self.put_json(KEY_LAST_PURGED, &log_id)?;
        let mut batch = sled::Batch::default();
        for kv in self.logs.range(..=index_key(log_id.index)) {
            let (k, _) = kv.map_err(|e| StorageIOError::write_logs(any_err(&e)))?;
            batch.remove(k);
        }
        self.logs
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(any_err(&e)))?;
        Ok(())
    }
}
