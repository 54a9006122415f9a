//! The recovery hook: where snapshots of state go and where resume state comes from.
//!
//! With recovery off (the default) no operator tracks touched keys or produces snapshots.
//! With a [`RecoveryHook`] configured, every stateful step and every fixed-partitioned
//! source and sink emits one [`Snapshot`] per key it touched in an epoch when that epoch
//! closes, and the hook receives them on the worker that made them.

pub mod codec;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::errors::FlowError;
use crate::flow::StepId;

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

impl Serialize for StepId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StepId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(StepId::new)
    }
}

/// Receives snapshots and supplies resume state; the recovery store implements it.
pub trait RecoveryHook: Send + Sync + 'static {
    /// The epoch the execution starts at (0 for a fresh start).
    fn resume_epoch(&self) -> u64;

    /// The stored state of `step` that this worker needs: encoded key → encoded state.
    /// Called once per step per worker while the flow is built; a stateful step asks for the
    /// keys it now owns, a source or sink for its partitions.
    fn resume_states(&self, step: &StepId) -> Result<HashMap<Vec<u8>, Vec<u8>>, FlowError>;

    /// Epoch `epoch` closed on worker `worker`; `snapshots` are all that the worker's steps
    /// made for it (possibly none).
    fn epoch_closed(&self, worker: usize, epoch: u64, snapshots: Vec<Snapshot>) -> Result<(), FlowError>;
}
