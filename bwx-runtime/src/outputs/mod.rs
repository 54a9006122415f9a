//! Sinks: where items leave a flow.
//!
//! - A [`FixedPartitionedSink`] takes a keyed stream `(K, V)`; each item goes to the
//!   partition `part_fn(key) % parts` of the global, name-ordered list of partitions, which
//!   one primary worker writes. Its position is stored with recovery.
//! - A [`DynamicSink`] builds one [`StatelessSinkPartition`] per worker; items are written
//!   on the worker that has them.
//!
//! Sinks see items in batches; [`StatefulSinkPartition::write_batch`] may drain the batch.

use crate::inputs::{ConnectorError, State};
use crate::{Data, ExchangeData, Key};

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

    /// The partitions this worker can reach.
    fn list_parts(&self) -> Vec<String>;

    /// Which partition a key goes to, as an index into the name-ordered list of all
    /// partitions (taken modulo its length). Defaults to the stable [`crate::route_hash`].
    fn part_fn(&self, key: &Self::Key) -> u64 {
        crate::route_hash(key)
    }

    /// Opens a partition, resuming from `resume_state` when recovery has one.
    fn build_part(
        &self,
        step_id: &crate::StepId,
        for_part: &str,
        resume_state: Option<Self::State>,
    ) -> Result<Self::Partition, ConnectorError>;
}

/// One partition of a [`FixedPartitionedSink`].
pub trait StatefulSinkPartition: 'static {
    /// What is written.
    type Value;
    /// Its position.
    type State;

    /// Writes a batch of values (it may drain `values`).
    fn write_batch(&mut self, values: &mut Vec<Self::Value>) -> Result<(), ConnectorError>;

    /// The position to resume from; called at the end of every epoch when recovery is on.
    fn snapshot(&self) -> Self::State;

    /// Called once at EOF.
    fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// A sink that builds one stateless partition on each worker.
pub trait DynamicSink: Send + Sync + 'static {
    /// What is written.
    type Item: Data;
    /// The per-worker writer.
    type Partition: StatelessSinkPartition<Item = Self::Item>;

    /// Builds worker `worker_index`'s partition (of `worker_count`).
    fn build(
        &self,
        step_id: &crate::StepId,
        worker_index: usize,
        worker_count: usize,
    ) -> Result<Self::Partition, ConnectorError>;
}

/// The per-worker partition of a [`DynamicSink`].
pub trait StatelessSinkPartition: 'static {
    /// What is written.
    type Item;

    /// Writes a batch of items (it may drain `items`).
    fn write_batch(&mut self, items: &mut Vec<Self::Item>) -> Result<(), ConnectorError>;

    /// Called once per epoch, when it closes, after its batches are written (and once
    /// before [`close`](Self::close)). A sink that writes asynchronously makes its writes
    /// durable here, once for the whole epoch; with recovery on, the epoch's snapshots are
    /// committed only after this returns, so such a sink is at-least-once.
    fn flush(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Called once at EOF.
    fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// Anything [`crate::Stream::output`] accepts for a stream of `T`.
///
/// Implemented for every [`DynamicSink`] of `T` and every [`FixedPartitionedSink`] whose
/// `(Key, Value)` is `T`; the marker `M` is inferred. The methods are the engine's.
#[allow(private_interfaces)]
pub trait IntoSink<T, M>: Send + Sync + 'static {
    #[doc(hidden)]
    fn build_output<'s>(
        self: std::sync::Arc<Self>,
        ctx: &mut crate::engine::BuildCtx<'s>,
        step: &crate::flow::StepInfo,
        stream: crate::engine::TStream<'s, T>,
    ) -> Result<(), crate::FlowError>;
    #[doc(hidden)]
    fn lister(self: std::sync::Arc<Self>) -> Option<std::sync::Arc<dyn crate::flow::PartLister>>;
}

struct FixedLister<S>(std::sync::Arc<S>);

impl<S: FixedPartitionedSink> crate::flow::PartLister for FixedLister<S> {
    fn list_parts(&self) -> Vec<String> {
        self.0.list_parts()
    }
}

#[allow(private_interfaces)]
impl<S: FixedPartitionedSink> IntoSink<(S::Key, S::Value), crate::inputs::FixedKind> for S {
    fn build_output<'s>(
        self: std::sync::Arc<Self>,
        ctx: &mut crate::engine::BuildCtx<'s>,
        step: &crate::flow::StepInfo,
        stream: crate::engine::TStream<'s, (S::Key, S::Value)>,
    ) -> Result<(), crate::FlowError> {
        crate::engine::sink::fixed(ctx, step, self, stream)
    }
    fn lister(self: std::sync::Arc<Self>) -> Option<std::sync::Arc<dyn crate::flow::PartLister>> {
        Some(std::sync::Arc::new(FixedLister(self)))
    }
}

#[allow(private_interfaces)]
impl<S: DynamicSink> IntoSink<S::Item, crate::inputs::DynamicKind> for S {
    fn build_output<'s>(
        self: std::sync::Arc<Self>,
        ctx: &mut crate::engine::BuildCtx<'s>,
        step: &crate::flow::StepInfo,
        stream: crate::engine::TStream<'s, S::Item>,
    ) -> Result<(), crate::FlowError> {
        crate::engine::sink::dynamic(ctx, step, self, stream)
    }
    fn lister(self: std::sync::Arc<Self>) -> Option<std::sync::Arc<dyn crate::flow::PartLister>> {
        None
    }
}
