//! What the engine needs to know about an execution, the same on every worker.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::recovery::RecoveryStore;

/// The execution's settings, shared by its workers.
#[derive(Clone)]
pub(crate) struct ExecConfig {
    /// How often sources close an epoch; zero closes one after every batch.
    pub(crate) epoch_interval: Duration,
    /// The epoch the execution starts at (with recovery, the resume epoch the cluster
    /// agreed on; 0 before that, and without recovery).
    pub(crate) start_epoch: u64,
    /// Worker threads in each process (worker `i` runs in process `i / workers_per_process`).
    pub(crate) workers_per_process: usize,
    /// Where snapshots go and resume state comes from; `None` turns recovery off.
    pub(crate) recovery: Option<Arc<dyn RecoveryStore>>,
    /// The graceful-stop flag: inputs stop reading.
    pub(crate) stop: Arc<AtomicBool>,
    /// Set before any input of the cluster stops for a graceful stop: the end of the inputs
    /// is then not the end of the stream (keyed steps keep their state for the resume).
    pub(crate) stopping: Arc<AtomicBool>,
    /// Whether stored state that matches no step or partition of the flow is dropped
    /// (with a warning) instead of refusing to resume.
    pub(crate) drop_unmatched_state: bool,
}
