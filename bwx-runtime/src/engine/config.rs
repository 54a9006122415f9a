//! What the engine needs to know about an execution, the same on every worker.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::recovery::RecoveryStore;

/// The execution's settings, shared by its workers.
pub(crate) struct ExecConfig {
    /// How often sources close an epoch; zero closes one after every batch.
    pub(crate) epoch_interval: Duration,
    /// The epoch the execution starts at (the resume epoch with recovery, else 0).
    pub(crate) start_epoch: u64,
    /// Where snapshots go and resume state comes from; `None` turns recovery off.
    pub(crate) recovery: Option<Arc<dyn RecoveryStore>>,
    /// The graceful-stop flag.
    pub(crate) stop: Arc<AtomicBool>,
    /// Whether stored state that matches no step or partition of the flow is dropped
    /// (with a warning) instead of refusing to resume.
    pub(crate) drop_unmatched_state: bool,
}
