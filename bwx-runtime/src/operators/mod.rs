//! The operators of the builder API, as methods on [`Stream`](crate::Stream) and
//! [`Dataflow`](crate::Dataflow).
//!
//! | group | operators |
//! |---|---|
//! | flow | [`input`](crate::Dataflow::input), [`output`](crate::Stream::output), [`merge`](crate::Dataflow::merge), [`branch`](crate::Stream::branch), [`redistribute`](crate::Stream::redistribute), [`raises`](crate::Stream::raises) |
//! | stateless | [`map`](crate::Stream::map), [`filter`](crate::Stream::filter), [`filter_map`](crate::Stream::filter_map), [`flat_map`](crate::Stream::flat_map), [`flat_map_batch`](crate::Stream::flat_map_batch), [`flatten`](crate::Stream::flatten), [`inspect`](crate::Stream::inspect), [`inspect_debug`](crate::Stream::inspect_debug) |
//! | keys | [`key_on`](crate::Stream::key_on), [`key_rm`](crate::Stream::key_rm), [`map_value`](crate::Stream::map_value), [`filter_value`](crate::Stream::filter_value), [`filter_map_value`](crate::Stream::filter_map_value), [`flat_map_value`](crate::Stream::flat_map_value) |
//! | stateful | see [`crate::stateful`] |
//!
//! Functions to pass to them, such as [`helpers::map_dict_value`], are in [`helpers`].
//! Your own operators, made of these, with nested step ids: [`composite`].

pub mod composite;
mod connect;
mod flow_ops;
pub mod helpers;
mod keyed;
mod stateless;

pub use connect::{DynamicKind, FixedKind, IntoSink, IntoSource};
pub use flow_ops::BranchOut;
pub use keyed::KeyedItem;

use std::sync::Arc;

use crate::engine::{BuildCtx, TStream};
use crate::errors::FlowError;
use crate::flow::{StepInfo, Stream};

impl<T: crate::Data> Stream<T> {
    /// Records a step with this stream as its only input and one output stream.
    pub(crate) fn unary_step<U: 'static>(
        &self,
        name: &str,
        operator: &'static str,
        build: impl for<'s> Fn(&mut BuildCtx<'s>, &StepInfo, TStream<'s, T>) -> Result<TStream<'s, U>, FlowError>
        + Send
        + Sync
        + 'static,
    ) -> Stream<U> {
        let info = self.flow.add_step(
            name,
            operator,
            vec![self.id],
            1,
            Arc::new(move |ctx: &mut BuildCtx<'_>, info: &StepInfo| {
                let input = ctx.get::<T>(info, info.inputs[0])?;
                let out = build(ctx, info, input)?;
                ctx.put(info.outputs[0], out);
                Ok(())
            }),
        );
        self.flow.stream(info.outputs[0])
    }
}
