//! Sinks: where items leave a flow.
//!
//! - A [`FixedPartitionedSink`] takes a keyed stream `(K, V)`; each item goes to the
//!   partition `part_fn(key) % parts` of the global, name-ordered list of partitions, which
//!   one primary worker writes. Its position is stored with recovery.
//! - A [`DynamicSink`] builds one [`StatelessSinkPartition`] per worker; items are written
//!   on the worker that has them.
//!
//! # The life of an epoch in a sink
//!
//! Sinks are two-phase, as Flink's `TwoPhaseCommittingSink`. For every epoch, in order:
//!
//! 1. `write_batch` receives the epoch's items (and none of a later epoch);
//! 2. `pre_commit(epoch)` runs when the epoch closes: make everything written so far
//!    durable, but it need not be visible yet (flush, fsync, prepare a transaction). An
//!    error stops the flow, and the epoch never becomes durable anywhere;
//! 3. `snapshot()` (fixed-partitioned sinks) gives the position stored for the epoch;
//! 4. `commit(epoch)` runs once the epoch's snapshots are durable in **every** recovery
//!    partition of the cluster: make the epoch visible (commit the transaction). After a
//!    crash between the epoch becoming durable and `commit`, the resumed partition gets
//!    the snapshot taken after `pre_commit`, and must finish or redo that commit itself.
//!
//! Without recovery, `commit` follows `pre_commit` at once. Sinks that need neither keep
//! the default no-ops; `pre_commit` still runs once per epoch, so a buffering sink flushes
//! once per epoch, not once per batch.

use crate::ExchangeData;
use crate::inputs::{ConnectorError, State};
use crate::key::Key;
use crate::step_id::StepId;

/// What a sink promises about its output across failures and resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Delivery {
    /// Every item is written at least once: after a resume, items of the epochs after the
    /// last durable one may be written again.
    AtLeastOnce,
    /// Every item is written exactly once across resumes (with recovery on).
    ExactlyOnce,
}

/// A sink with a fixed set of named partitions, each resumable from a stored position.
pub trait FixedPartitionedSink: Send + Sync + 'static {
    /// The key that routes an item to its partition.
    type Key: Key;
    /// What is written.
    type Value: ExchangeData;
    /// A partition's position, stored with recovery.
    type State: State;
    /// The partition writer.
    type Partition: StatefulSinkPartition<Value = Self::Value, State = Self::State>;

    /// The partitions this worker can reach. An error (an unreachable directory, a
    /// refused connection) stops the flow before it starts, naming the step.
    fn list_parts(&self) -> Result<Vec<String>, ConnectorError>;

    /// Which partition a key goes to, as an index into the name-ordered list of all
    /// partitions (taken modulo its length). Defaults to the stable [`crate::route_hash`].
    fn part_fn(&self, key: &Self::Key) -> u64 {
        crate::route_hash(key)
    }

    /// Opens a partition, resuming from `resume_state` when recovery has one.
    fn build_part(
        &self,
        step_id: &StepId,
        for_part: &str,
        resume_state: Option<Self::State>,
    ) -> Result<Self::Partition, ConnectorError>;

    /// The guarantee the sink gives with recovery on.
    fn delivery(&self) -> Delivery {
        Delivery::AtLeastOnce
    }
}

/// One partition of a [`FixedPartitionedSink`]; see the [module docs](self) for the order
/// of the calls.
pub trait StatefulSinkPartition: 'static {
    /// What is written.
    type Value;
    /// Its position.
    type State;

    /// Writes a batch of values of the open epoch (it may drain `values`).
    fn write_batch(&mut self, values: &mut Vec<Self::Value>) -> Result<(), ConnectorError>;

    /// The epoch closed: make its writes durable (not necessarily visible) before its
    /// snapshot is taken.
    fn pre_commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        let _ = epoch;
        Ok(())
    }

    /// The position to resume from, taken after `pre_commit` of every epoch when recovery
    /// is on.
    fn snapshot(&self) -> Self::State;

    /// The epoch is durable in every recovery partition: make its writes visible.
    fn commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        let _ = epoch;
        Ok(())
    }

    /// Called once at the end of the input, after the last `commit`.
    fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// A sink that builds one stateless partition on each worker.
pub trait DynamicSink: Send + Sync + 'static {
    /// What is written.
    type Item: crate::Data;
    /// The per-worker writer.
    type Partition: StatelessSinkPartition<Item = Self::Item>;

    /// Builds worker `worker_index`'s partition (of `worker_count`).
    fn build(
        &self,
        step_id: &StepId,
        worker_index: usize,
        worker_count: usize,
    ) -> Result<Self::Partition, ConnectorError>;

    /// The guarantee the sink gives with recovery on.
    fn delivery(&self) -> Delivery {
        Delivery::AtLeastOnce
    }
}

/// The per-worker partition of a [`DynamicSink`]; see the [module docs](self) for the order
/// of the calls.
pub trait StatelessSinkPartition: 'static {
    /// What is written.
    type Item;

    /// Writes a batch of items of the open epoch (it may drain `items`).
    fn write_batch(&mut self, items: &mut Vec<Self::Item>) -> Result<(), ConnectorError>;

    /// The epoch closed: make its writes durable. A sink that writes asynchronously waits
    /// for them here, once for the whole epoch; with recovery on, the epoch's snapshots are
    /// stored only after this returns, so such a sink is at-least-once.
    fn pre_commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        let _ = epoch;
        Ok(())
    }

    /// The epoch is durable in every recovery partition: make its writes visible.
    fn commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        let _ = epoch;
        Ok(())
    }

    /// Called once at the end of the input, after the last `commit`.
    fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}
