//! What [`Dataflow::input`](crate::Dataflow::input) and [`Stream::output`](crate::Stream::output)
//! accept: the bridge from the connector contracts ([`crate::inputs`], [`crate::outputs`])
//! to the engine operators that run them.

use std::sync::Arc;

use crate::engine::{BuildCtx, TStream, sink, source};
use crate::errors::FlowError;
use crate::flow::{PartLister, StepInfo};
use crate::inputs::{ConnectorError, DynamicSource, FixedPartitionedSource};
use crate::outputs::{DynamicSink, FixedPartitionedSink};

/// Marker for [`IntoSource`] and [`IntoSink`] implemented by fixed-partitioned connectors.
pub enum FixedKind {}
/// Marker for [`IntoSource`] and [`IntoSink`] implemented by dynamic connectors.
pub enum DynamicKind {}

/// Anything [`crate::Dataflow::input`] accepts: a fixed-partitioned or a dynamic source.
///
/// Implemented for every [`FixedPartitionedSource`] and every [`DynamicSource`]; the
/// marker `M` keeps the two implementations apart and is inferred. The methods are the
/// engine's; implement one of the two source traits instead.
#[allow(private_interfaces)]
pub trait IntoSource<M>: Send + Sync + 'static {
    /// Items the source emits.
    type Item: crate::Data;
    #[doc(hidden)]
    fn build_input<'s>(
        self: Arc<Self>,
        ctx: &mut BuildCtx<'s>,
        step: &StepInfo,
    ) -> Result<TStream<'s, Self::Item>, FlowError>;
    #[doc(hidden)]
    fn lister(self: Arc<Self>) -> Option<Arc<dyn PartLister>>;
}

/// Anything [`crate::Stream::output`] accepts for a stream of `T`.
///
/// Implemented for every [`DynamicSink`] of `T` and every [`FixedPartitionedSink`] whose
/// `(Key, Value)` is `T`; the marker `M` is inferred. The methods are the engine's.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot write a stream of `{T}`",
    label = "this sink does not take `{T}`",
    note = "a partitioned sink (`FileSink`, `DirSink`, ...) writes a keyed stream `(key, value)`, routed by its key: key the stream first, with `.key_on(\"step\", |item| key)`, or `.map(\"step\", |item| ((), item))` for one key",
    note = "a dynamic sink (`StdOutSink`, `TestingSink`, ...) writes the item type it was made for"
)]
#[allow(private_interfaces)]
pub trait IntoSink<T, M>: Send + Sync + 'static {
    #[doc(hidden)]
    fn build_output<'s>(
        self: Arc<Self>,
        ctx: &mut BuildCtx<'s>,
        step: &StepInfo,
        stream: TStream<'s, T>,
    ) -> Result<(), FlowError>;
    #[doc(hidden)]
    fn lister(self: Arc<Self>) -> Option<Arc<dyn PartLister>>;
}

struct SourceLister<S>(Arc<S>);

impl<S: FixedPartitionedSource> PartLister for SourceLister<S> {
    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        self.0.list_parts()
    }
    fn may_be_empty(&self) -> bool {
        self.0.may_be_empty()
    }
}

struct SinkLister<S>(Arc<S>);

impl<S: FixedPartitionedSink> PartLister for SinkLister<S> {
    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        self.0.list_parts()
    }
    fn may_be_empty(&self) -> bool {
        false
    }
}

#[allow(private_interfaces)]
impl<S: FixedPartitionedSource> IntoSource<FixedKind> for S {
    type Item = S::Item;
    fn build_input<'s>(
        self: Arc<Self>,
        ctx: &mut BuildCtx<'s>,
        step: &StepInfo,
    ) -> Result<TStream<'s, Self::Item>, FlowError> {
        source::fixed(ctx, step, self)
    }
    fn lister(self: Arc<Self>) -> Option<Arc<dyn PartLister>> {
        Some(Arc::new(SourceLister(self)))
    }
}

#[allow(private_interfaces)]
impl<S: DynamicSource> IntoSource<DynamicKind> for S {
    type Item = S::Item;
    fn build_input<'s>(
        self: Arc<Self>,
        ctx: &mut BuildCtx<'s>,
        step: &StepInfo,
    ) -> Result<TStream<'s, Self::Item>, FlowError> {
        source::dynamic(ctx, step, self)
    }
    fn lister(self: Arc<Self>) -> Option<Arc<dyn PartLister>> {
        None
    }
}

#[allow(private_interfaces)]
#[diagnostic::do_not_recommend]
impl<S: FixedPartitionedSink> IntoSink<(S::Key, S::Value), FixedKind> for S {
    fn build_output<'s>(
        self: Arc<Self>,
        ctx: &mut BuildCtx<'s>,
        step: &StepInfo,
        stream: TStream<'s, (S::Key, S::Value)>,
    ) -> Result<(), FlowError> {
        sink::fixed(ctx, step, self, stream)
    }
    fn lister(self: Arc<Self>) -> Option<Arc<dyn PartLister>> {
        Some(Arc::new(SinkLister(self)))
    }
}

#[allow(private_interfaces)]
#[diagnostic::do_not_recommend]
impl<S: DynamicSink> IntoSink<S::Item, DynamicKind> for S {
    fn build_output<'s>(
        self: Arc<Self>,
        ctx: &mut BuildCtx<'s>,
        step: &StepInfo,
        stream: TStream<'s, S::Item>,
    ) -> Result<(), FlowError> {
        sink::dynamic(ctx, step, self, stream)
    }
    fn lister(self: Arc<Self>) -> Option<Arc<dyn PartLister>> {
        None
    }
}
