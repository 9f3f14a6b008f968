//! The replicated state machine (openraft's `RaftStateMachine`): [`ClusterState`] in memory, persisted
//! through snapshots in sled, observable by the node (a shared lock and an epoch watch).

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{any_err, FORMAT_VERSION};
use crate::state::{ClusterState, Epoch, Response};
use crate::types::{
    epoch_of, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const KEY_META: &str = "meta";
const KEY_DATA: &str = "data";

/// What the state machine holds; one lock so a reader sees a consistent triple.
#[derive(Clone, Debug, Default)]
pub struct SmData {
    /// Id of the last applied entry.
    pub last_applied: Option<LogId>,
    /// The last applied membership.
    pub membership: StoredMembership,
    /// The replicated state. Shared with readers, copied on write: a reader holding it while an
    /// entry is applied costs one copy then, not one per read.
    pub state: Arc<ClusterState>,
}

/// The bytes of a snapshot: the state, tagged with the format that wrote it.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    /// On-disk / on-wire format version of this encoding.
    format_version: u32,
    /// The state at the snapshot's last log id.
    state: ClusterState,
}

/// [`SnapshotData`] as written, borrowing the state.
#[derive(Serialize)]
struct SnapshotOut<'a> {
    format_version: u32,
    state: &'a ClusterState,
}

/// The state machine store. Cheap to clone: clones share the same state.
#[derive(Clone)]
pub struct StateMachineStore {
    /// The database, flushed after snapshots are written.
    db: sled::Db,
    /// The tree holding the current snapshot.
    snapshots: sled::Tree,
    /// The state, shared with the node for local reads.
    data: Arc<RwLock<SmData>>,
    /// Sends the epoch of every applied entry.
    epoch_tx: Arc<watch::Sender<Epoch>>,
    /// Serialises "is it newer than the stored one? then write it" of snapshots.
    snapshot_lock: Arc<Mutex<()>>,
    /// Makes snapshot ids unique across builds at the same log id.
    snapshot_seq: Arc<AtomicU64>,
}

fn read_err(e: impl Into<openraft::AnyError>) -> StorageError {
    StorageIOError::read_snapshot(None, e).into()
}

fn write_err(e: impl Into<openraft::AnyError>) -> StorageError {
    StorageIOError::write_snapshot(None, e).into()
}

fn decode_snapshot(bytes: &[u8]) -> Result<ClusterState, String> {
    let d: SnapshotData =
        serde_json::from_slice(bytes).map_err(|e| format!("snapshot data: {e}"))?;
    if d.format_version != FORMAT_VERSION {
        return Err(format!(
            "snapshot has format version {}, this build reads format version {FORMAT_VERSION}",
            d.format_version
        ));
    }
    Ok(d.state)
}

impl StateMachineStore {
    /// Loads the state from the stored snapshot, if any.
    pub(super) fn load(db: sled::Db, snapshots: sled::Tree) -> Result<Self, String> {
        let mut data = SmData::default();
        let meta = snapshots.get(KEY_META).map_err(|e| e.to_string())?;
        let bytes = snapshots.get(KEY_DATA).map_err(|e| e.to_string())?;
        if let (Some(meta), Some(bytes)) = (meta, bytes) {
            let meta: SnapshotMeta =
                serde_json::from_slice(&meta).map_err(|e| format!("snapshot meta: {e}"))?;
            data.state = Arc::new(decode_snapshot(&bytes)?);
            data.last_applied = meta.last_log_id;
            data.membership = meta.last_membership.clone();
            tracing::info!(snapshot = %meta, "loaded state from snapshot");
        }
        let epoch = data.last_applied.as_ref().map(epoch_of).unwrap_or_default();
        let (epoch_tx, _) = watch::channel(epoch);
        Ok(StateMachineStore {
            db,
            snapshots,
            data: Arc::new(RwLock::new(data)),
            epoch_tx: Arc::new(epoch_tx),
            snapshot_lock: Arc::new(Mutex::new(())),
            snapshot_seq: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The state, shared: the node reads it for local (follower) reads.
    pub fn shared(&self) -> Arc<RwLock<SmData>> {
        self.data.clone()
    }

    /// A receiver woken with the epoch of every applied entry.
    pub fn subscribe(&self) -> watch::Receiver<Epoch> {
        self.epoch_tx.subscribe()
    }

    /// Writes a snapshot unless a newer one is stored already; returns whether it was written.
    async fn persist(
        &self,
        meta: &SnapshotMeta,
        bytes: &[u8],
        force: bool,
    ) -> Result<bool, StorageError> {
        {
            let _guard = self.snapshot_lock.lock().unwrap_or_else(|e| e.into_inner());
            if !force {
                if let Some(old) = self
                    .snapshots
                    .get(KEY_META)
                    .map_err(|e| read_err(any_err(&e)))?
                {
                    let old: SnapshotMeta =
                        serde_json::from_slice(&old).map_err(|e| read_err(any_err(&e)))?;
                    if old.last_log_id >= meta.last_log_id {
                        return Ok(false);
                    }
                }
            }
            let meta_bytes = serde_json::to_vec(meta).map_err(|e| write_err(any_err(&e)))?;
            let mut batch = sled::Batch::default();
            batch.insert(KEY_META, meta_bytes);
            batch.insert(KEY_DATA, bytes);
            self.snapshots
                .apply_batch(batch)
                .map_err(|e| write_err(any_err(&e)))?;
        }
        self.db
            .flush_async()
            .await
            .map_err(|e| write_err(any_err(&e)))?;
        Ok(true)
    }
}

/// Builds a snapshot of the state as it was when the builder was made.
pub struct SnapshotBuilder {
    /// The state to write.
    copy: SmData,
    /// Where to write it.
    store: StateMachineStore,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let started = Instant::now();
        let data = SnapshotOut {
            format_version: FORMAT_VERSION,
            state: &self.copy.state,
        };
        let bytes = serde_json::to_vec(&data).map_err(|e| write_err(any_err(&e)))?;
        let seq = self.store.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match &self.copy.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, seq),
            None => format!("0-0-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: self.copy.last_applied,
            last_membership: self.copy.membership.clone(),
            snapshot_id,
        };
        let written = self.store.persist(&meta, &bytes, false).await?;
        tracing::info!(
            snapshot = %meta,
            bytes = bytes.len(),
            written,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "built snapshot"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let d = self.data.read().unwrap_or_else(|e| e.into_inner());
        Ok((d.last_applied, d.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        let mut last = None;
        {
            let mut d = self.data.write().unwrap_or_else(|e| e.into_inner());
            for entry in entries {
                let epoch = epoch_of(&entry.log_id);
                d.last_applied = Some(entry.log_id);
                let resp = match entry.payload {
                    EntryPayload::Blank => Response { epoch, error: None },
                    EntryPayload::Normal(req) => {
                        let resp = Arc::make_mut(&mut d.state).apply(epoch, &req);
                        if let Some(err) = &resp.error {
                            tracing::warn!(%epoch, reason = %req.reason, error = %err, "request refused on apply");
                        }
                        resp
                    }
                    EntryPayload::Membership(m) => {
                        tracing::info!(%epoch, membership = %m, "membership applied");
                        d.membership = StoredMembership::new(Some(entry.log_id), m);
                        Response { epoch, error: None }
                    }
                };
                last = Some(epoch);
                out.push(resp);
            }
        }
        if let Some(epoch) = last {
            self.epoch_tx.send_replace(epoch);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let copy = self.data.read().unwrap_or_else(|e| e.into_inner()).clone();
        SnapshotBuilder {
            copy,
            store: self.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let state = decode_snapshot(&bytes).map_err(|e| read_err(openraft::AnyError::error(e)))?;
        self.persist(meta, &bytes, true).await?;
        {
            let mut d = self.data.write().unwrap_or_else(|e| e.into_inner());
            d.state = Arc::new(state);
            d.last_applied = meta.last_log_id;
            d.membership = meta.last_membership.clone();
        }
        let epoch = meta.last_log_id.as_ref().map(epoch_of).unwrap_or_default();
        self.epoch_tx.send_replace(epoch);
        tracing::info!(snapshot = %meta, bytes = bytes.len(), "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let meta = self
            .snapshots
            .get(KEY_META)
            .map_err(|e| read_err(any_err(&e)))?;
        let bytes = self
            .snapshots
            .get(KEY_DATA)
            .map_err(|e| read_err(any_err(&e)))?;
        let (Some(meta), Some(bytes)) = (meta, bytes) else {
            return Ok(None);
        };
        let meta: SnapshotMeta =
            serde_json::from_slice(&meta).map_err(|e| read_err(any_err(&e)))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes.to_vec())),
        }))
    }
}
