//! Sources: where items enter a flow.
//!
//! Two kinds, as in Bytewax:
//! - a [`FixedPartitionedSource`] has named partitions; each is read by exactly one
//!   *primary* worker, chosen deterministically, and its position ([`StatefulSourcePartition::snapshot`])
//!   is stored with recovery so a resumed flow continues where it stopped;
//! - a [`DynamicSource`] builds one [`StatelessSourcePartition`] on every worker and keeps no state.
//!
//! A partition is polled with `next_batch`; [`next_awake`](StatefulSourcePartition::next_awake)
//! says when to poll next, so a source never sleeps or spins. After an empty batch with no
//! `next_awake`, the partition is polled again after a 1 ms cool-down.

#[cfg(feature = "tokio")]
mod async_batch;
mod batching;
mod polling;

use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Data;
use crate::step_id::StepId;

#[cfg(feature = "tokio")]
pub use async_batch::AsyncBatcher;
pub use batching::{GetterError, Got, batch, batch_getter, batch_getter_ex};
pub use polling::{Polled, SimplePoller, SimplePollingSource};

/// Any error of a connector; converted into a flow error naming step, worker and partition,
/// which keeps it as its [`source`](std::error::Error::source).
pub type ConnectorError = Box<dyn std::error::Error + Send + Sync>;

/// Marks a connector error that a later retry may cure (a server unavailable, a timeout),
/// unlike a permanent one (bad configuration, bad data). The flow still stops; the error it
/// stops with says whether running it again can help ([`crate::FlowError::is_retriable`]).
///
/// ```
/// use bwx::inputs::{ConnectorError, Transient};
///
/// fn connect() -> Result<(), ConnectorError> {
///     Err(Transient::new("the broker did not answer within 5 s").into())
/// }
/// assert!(connect().unwrap_err().is::<Transient>());
/// ```
#[derive(Debug)]
pub struct Transient(ConnectorError);

impl Transient {
    /// Marks `cause` as transient.
    pub fn new(cause: impl Into<ConnectorError>) -> Self {
        Transient(cause.into())
    }
}

impl std::fmt::Display for Transient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Transient {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// State that recovery stores: serde, cloneable, sendable.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is stored with recovery, so it must implement `serde::Serialize` and `serde::Deserialize` (and `Clone`, `Send`)",
    label = "not recovery state",
    note = "derive them: `#[derive(Clone, serde::Serialize, serde::Deserialize)]`"
)]
pub trait State: Clone + Send + Serialize + DeserializeOwned + 'static {}
// Not recommended: one error naming `State`, not one per missing trait.
#[diagnostic::do_not_recommend]
impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> State for T {}

/// What a partition says after a poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchStatus {
    /// More items may come.
    Active,
    /// The partition is finished; the items of this call are still emitted.
    Eof,
    /// Stop the whole execution now, without EOF (Bytewax's `AbortExecution`); used to test
    /// recovery. The items of this call are still emitted.
    Abort,
}

/// A source with a fixed set of named partitions, each resumable from a stored position.
pub trait FixedPartitionedSource: Send + Sync + 'static {
    /// Items the source emits.
    type Item: Data;
    /// A partition's position, stored with recovery.
    type State: State;
    /// The partition reader.
    type Partition: StatefulSourcePartition<Item = Self::Item, State = Self::State>;

    /// The partitions this worker can reach. Workers may list different subsets; each
    /// partition is read by exactly one of the workers that list it. An error (a missing
    /// directory, a refused connection) stops the flow before it starts, naming the step.
    fn list_parts(&self) -> Result<Vec<String>, ConnectorError>;

    /// Whether the flow may run when no worker of the cluster lists any partition. By
    /// default that is an error naming the step: a source that finds nothing to read is
    /// more often misconfigured (a wrong path, a wrong topic) than meant to be empty.
    fn may_be_empty(&self) -> bool {
        false
    }

    /// Opens a partition, resuming from `resume_state` when recovery has one.
    fn build_part(
        &self,
        step_id: &StepId,
        for_part: &str,
        resume_state: Option<Self::State>,
    ) -> Result<Self::Partition, ConnectorError>;
}

/// One partition of a [`FixedPartitionedSource`].
pub trait StatefulSourcePartition: 'static {
    /// Items the partition emits.
    type Item;
    /// Its position.
    type State;

    /// Appends the next items to `batch` (which is empty) and says whether more may come.
    fn next_batch(&mut self, batch: &mut Vec<Self::Item>) -> Result<BatchStatus, ConnectorError>;

    /// When to poll next; `None` means as soon as possible (after a 1 ms cool-down if the
    /// last batch was empty).
    fn next_awake(&self) -> Option<SystemTime> {
        None
    }

    /// The position to resume from; called at the end of every epoch when recovery is on.
    fn snapshot(&self) -> Self::State;

    /// `durable`, a position this partition returned from [`snapshot`](Self::snapshot), is
    /// stored in every recovery partition: no resume will start before it. A source whose
    /// broker redelivers until told otherwise acknowledges here what `durable` covers (a
    /// JetStream ack, an MQTT PUBACK), so that a crash before this call gets the items again.
    ///
    /// The engine calls it in epoch order, once for every position it stored (a position
    /// that did not move since the last epoch is not stored again), once the epoch is durable
    /// and before [`close`](Self::close), which waits for the commit of the last epoch read;
    /// without recovery, right after the snapshot at every epoch's end. A crash or an error
    /// elsewhere can stop the execution before a durable position is committed: the next
    /// execution resumes from it.
    fn commit(&mut self, durable: &Self::State) -> Result<(), ConnectorError> {
        let _ = durable;
        Ok(())
    }

    /// Called once, after EOF or when the execution stops.
    fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// A source that builds one stateless partition on each worker.
pub trait DynamicSource: Send + Sync + 'static {
    /// Items the source emits.
    type Item: Data;
    /// The per-worker reader.
    type Partition: StatelessSourcePartition<Item = Self::Item>;

    /// Builds worker `worker_index`'s partition (of `worker_count`).
    fn build(
        &self,
        step_id: &StepId,
        worker_index: usize,
        worker_count: usize,
    ) -> Result<Self::Partition, ConnectorError>;
}

/// The per-worker partition of a [`DynamicSource`].
pub trait StatelessSourcePartition: 'static {
    /// Items the partition emits.
    type Item;

    /// Appends the next items to `batch` (which is empty) and says whether more may come.
    fn next_batch(&mut self, batch: &mut Vec<Self::Item>) -> Result<BatchStatus, ConnectorError>;

    /// When to poll next; see [`StatefulSourcePartition::next_awake`].
    fn next_awake(&self) -> Option<SystemTime> {
        None
    }

    /// Called once, after EOF or when the execution stops.
    fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}
