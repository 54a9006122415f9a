//! The SQLite store as the CLI's recovery backend (`-r DIR`, `recovery init DIR N`).

use std::path::Path;
use std::sync::Arc;

use crate::cli::{Placement, RecoveryArgs, RecoveryBackend};
use crate::errors::FlowError;

use super::{RecoveryHook, SqliteRecovery, init_dir};

/// Opens [`SqliteRecovery`] partitions for a flow; `bwx::cli::main` registers it.
#[derive(Clone, Debug)]
pub struct SqliteBackend {
    flow_id: String,
}

impl SqliteBackend {
    /// The backend for the flow with this id (stored partitions must belong to it).
    pub fn new(flow_id: &str) -> Self {
        SqliteBackend {
            flow_id: flow_id.to_string(),
        }
    }
}

impl RecoveryBackend for SqliteBackend {
    fn open(&self, args: &RecoveryArgs, _placement: &Placement) -> Result<Arc<dyn RecoveryHook>, FlowError> {
        // In the CLI the snapshot interval is the epoch length (as in Bytewax), so every
        // epoch is snapshotted.
        let every = SqliteRecovery::epochs_per_snapshot(args.snapshot_interval, args.snapshot_interval);
        SqliteRecovery::open(&args.directory, args.backup_interval, every, &self.flow_id)
    }

    fn init(&self, directory: &Path, partitions: usize) -> Result<(), FlowError> {
        init_dir(directory, partitions)?;
        Ok(())
    }
}
