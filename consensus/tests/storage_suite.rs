//! openraft's own storage test suite against the sled store.

use mmm_consensus::store::{self, LogStore, StateMachineStore};
use mmm_consensus::TypeConfig;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, StorageIOError};
use tempfile::TempDir;

/// Builds a fresh store in its own temporary directory (kept alive as the suite's guard).
struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for SledBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir =
            tempfile::tempdir().map_err(|e| StorageIOError::write(openraft::AnyError::new(&e)))?;
        let (log, sm) = store::open(dir.path())
            .map_err(|e| StorageIOError::write(openraft::AnyError::new(&e)))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(SledBuilder).expect("storage suite");
}
