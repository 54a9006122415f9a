//! Recovery: snapshots of state, and resuming a flow where it stopped.
//!
//! With recovery off (the default) no operator tracks touched keys or produces snapshots.
//! With a [`RecoveryHook`] configured, every stateful step and every fixed-partitioned
//! source and sink emits one [`Snapshot`] per key it touched in an epoch when that epoch
//! closes, and the hook receives them on the worker that made them.
//!
//! [`SqliteRecovery`] stores them in a directory of SQLite partition files made by
//! [`init_dir`] (`bwx recovery init DIR N`). A resumed execution starts at the smallest
//! frontier every worker of the last execution made durable, with the state of every key
//! as of that epoch re-routed to the workers that now own it, so the worker count may
//! change between executions. [`inspect()`] reports what a directory holds.
//!
//! # Guarantees
//! - State and source positions are exactly-once: a resume replays the input after the
//!   stored positions into the stored state.
//! - Sinks whose partitions store a position and truncate to it on resume (file sinks) are
//!   exactly-once; every other sink is at-least-once: the output of the epochs after the
//!   resume epoch is written again.
//! - Stop a flow with SIGINT or SIGTERM ([`crate::RunConfig::stop_on_signals`]): inputs stop,
//!   a final snapshot is written and the run returns `Ok`. A `kill -9` loses at most the
//!   epochs after the last durable snapshot, which are replayed.
//!
//! # Several processes
//! Every worker opens the partition files it writes to. On one host, SQLite's WAL mode
//! serialises writers of all processes. On several hosts the directory must be on shared
//! storage that every process reaches with working POSIX locks, as in Bytewax. Restart
//! every process of a cluster together: each computes the resume point from the files
//! before any of them writes.
//!
//! # Crash testing
//! `BWX_FAILPOINT=NAME[:N]` makes a process kill itself with SIGKILL the `N`-th time it
//! reaches a named point of the recovery code (`first-epoch`, `after-snapshot-write`,
//! `during-gc`, `during-resume`); the crash harness uses it. It is for tests only.

mod backend;
pub mod codec;
mod error;
mod failpoint;
mod gc;
mod init;
pub mod inspect;
mod resume;
mod sqlite;
mod store;
mod writer;

pub use backend::SqliteBackend;
pub use error::RecoveryError;
pub use init::init_dir;
pub use inspect::inspect;
pub use sqlite::SqliteRecovery;

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::errors::FlowError;
use crate::step_id::StepId;

/// The state of one key of one step at the close of an epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The dotted step id.
    pub step_id: StepId,
    /// The encoded key ([`codec::encode_key`]); for sources and sinks, the partition name.
    pub key: Vec<u8>,
    /// The epoch that closed.
    pub epoch: u64,
    /// The encoded state ([`codec::encode`]), or `None` when the key's state was discarded.
    pub state: Option<Vec<u8>>,
}

/// One step's stored state: encoded key (or partition name) → encoded state.
pub type StoredStates = HashMap<Vec<u8>, Vec<u8>>;

/// Receives snapshots and supplies resume state; the recovery store implements it.
pub trait RecoveryHook: Send + Sync + 'static {
    /// The epoch the execution starts at (0 for a fresh start).
    fn resume_epoch(&self) -> u64;

    /// The number of this execution (0 for the first), when the store counts them.
    fn execution(&self) -> Option<u64> {
        None
    }

    /// Worker `worker` of `worker_count` starts an execution of a flow with `steps`; called
    /// on every worker before the flow is built.
    fn begin(&self, worker: usize, worker_count: usize, steps: &[StepId]) -> Result<(), FlowError> {
        let _ = (worker, worker_count, steps);
        Ok(())
    }

    /// The stored state of `step`, for every worker of the process to take what it needs
    /// from without a copy. Called once per step per worker while the flow is built; a
    /// stateful step takes the keys it now owns, a source or sink its partitions.
    fn resume_states(&self, step: &StepId) -> Result<Arc<StoredStates>, FlowError>;

    /// Epoch `epoch` closed on worker `worker`; `snapshots` are all that the worker's steps
    /// made for it (possibly none).
    fn epoch_closed(&self, worker: usize, epoch: u64, snapshots: Vec<Snapshot>) -> Result<(), FlowError>;

    /// Worker `worker` finished (every input reached EOF, or a graceful stop) after its
    /// last `epoch_closed`: whatever the hook still buffers must be made durable now.
    fn finished(&self, worker: usize) -> Result<(), FlowError> {
        let _ = worker;
        Ok(())
    }
}
