//! How a flow binary opens its recovery store: the [`RecoveryBackend`] contract, and the
//! SQLite store as the default backend (`-r DIR`, `recovery init DIR N`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{RecoveryError, RecoveryStore};
#[cfg(feature = "sqlite")]
use super::{SqliteRecovery, init_dir, init_parts};

/// What a run asks of recovery (`-r`, `-b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryOptions {
    /// Where the partitions are.
    pub directory: PathBuf,
    /// How long superseded snapshots are kept (so that partitions backed up at different
    /// moments within it still share a resume point).
    pub backup_interval: Duration,
}

/// Where recovery state lives; the command line (`bwx::cli`) opens it for every run with
/// `-r` and creates it for `recovery init`.
pub trait RecoveryBackend: Send + Sync + 'static {
    /// Opens the store for this process of an execution.
    fn open(&self, options: &RecoveryOptions) -> Result<Arc<dyn RecoveryStore>, RecoveryError>;

    /// Creates `directory` (if needed) and `partitions` empty partitions in it.
    fn init(&self, directory: &Path, partitions: usize) -> Result<(), RecoveryError>;

    /// Creates `directory` (if needed) and the partitions `parts` of a set of `partitions`
    /// in it, all of the store `store_id` (`recovery init --parts --store-id`): the part of
    /// the set one host keeps on its own disk. Backends that cannot split a set refuse.
    fn init_parts(
        &self,
        directory: &Path,
        partitions: usize,
        parts: &[usize],
        store_id: &str,
    ) -> Result<(), RecoveryError> {
        let _ = (directory, partitions, parts, store_id);
        Err(RecoveryError::Usage(
            "this recovery backend cannot create part of a set of partitions (--parts, --store-id)".into(),
        ))
    }
}

/// A shared backend (so the caller can keep a handle to it).
impl<B: RecoveryBackend + ?Sized> RecoveryBackend for Arc<B> {
    fn open(&self, options: &RecoveryOptions) -> Result<Arc<dyn RecoveryStore>, RecoveryError> {
        (**self).open(options)
    }

    fn init(&self, directory: &Path, partitions: usize) -> Result<(), RecoveryError> {
        (**self).init(directory, partitions)
    }

    fn init_parts(
        &self,
        directory: &Path,
        partitions: usize,
        parts: &[usize],
        store_id: &str,
    ) -> Result<(), RecoveryError> {
        (**self).init_parts(directory, partitions, parts, store_id)
    }
}

/// Opens [`SqliteRecovery`] partitions for a flow; the command line uses it by default.
#[cfg(feature = "sqlite")]
#[derive(Clone, Debug)]
pub struct SqliteBackend {
    flow_id: String,
}

#[cfg(feature = "sqlite")]
impl SqliteBackend {
    /// The backend for the flow with this id (stored partitions must belong to it).
    pub fn new(flow_id: &str) -> Self {
        SqliteBackend {
            flow_id: flow_id.to_string(),
        }
    }
}

#[cfg(feature = "sqlite")]
impl RecoveryBackend for SqliteBackend {
    fn open(&self, options: &RecoveryOptions) -> Result<Arc<dyn RecoveryStore>, RecoveryError> {
        SqliteRecovery::open(&options.directory, options.backup_interval, &self.flow_id)
    }

    fn init(&self, directory: &Path, partitions: usize) -> Result<(), RecoveryError> {
        init_dir(directory, partitions)?;
        Ok(())
    }

    fn init_parts(
        &self,
        directory: &Path,
        partitions: usize,
        parts: &[usize],
        store_id: &str,
    ) -> Result<(), RecoveryError> {
        init_parts(directory, partitions, parts, store_id)?;
        Ok(())
    }
}
