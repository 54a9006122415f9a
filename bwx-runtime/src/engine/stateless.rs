//! Stateless operators: each is one pipelined timely operator that loops over a batch.

use std::sync::Arc;

use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::Partition;
use timely::dataflow::operators::{Concatenate, Operator};

use crate::Data;
use crate::flow::StepId;

use super::TStream;
use super::failure::enter_step;

/// Applies `logic` to every batch: it drains the batch and pushes into the output.
pub(crate) fn flat_map_batch<'s, T, U, F>(
    stream: TStream<'s, T>,
    name: &str,
    step: usize,
    logic: Arc<F>,
) -> TStream<'s, U>
where
    T: Data,
    U: Data,
    F: Fn(&mut Vec<T>, &mut Vec<U>) + Send + Sync + 'static,
{
    let mut out_buf: Vec<U> = Vec::new();
    stream.unary(Pipeline, name, move |_cap, _info| {
        move |input, output| {
            enter_step(step);
            input.for_each(|cap, data| {
                logic(data, &mut out_buf);
                if !out_buf.is_empty() {
                    output.session(&cap).give_container(&mut out_buf);
                }
            });
        }
    })
}

/// Like [`flat_map_batch`] with operator-local state made by `init` on each worker.
pub(crate) fn with_local_state<'s, T, U, S, I, F>(
    stream: TStream<'s, T>,
    name: &str,
    step: usize,
    init: &I,
    logic: Arc<F>,
) -> TStream<'s, U>
where
    T: Data,
    U: Data,
    S: 'static,
    I: Fn() -> S,
    F: Fn(&mut S, &mut Vec<T>, &mut Vec<U>) + Send + Sync + 'static,
{
    let mut state = init();
    let mut out_buf: Vec<U> = Vec::new();
    stream.unary(Pipeline, name, move |_cap, _info| {
        move |input, output| {
            enter_step(step);
            input.for_each(|cap, data| {
                logic(&mut state, data, &mut out_buf);
                if !out_buf.is_empty() {
                    output.session(&cap).give_container(&mut out_buf);
                }
            });
        }
    })
}

/// `inspect_debug`: calls `f(step_id, item, epoch, worker)` and passes items on.
pub(crate) fn inspect_debug<'s, T, F>(
    stream: TStream<'s, T>,
    step_id: StepId,
    step: usize,
    worker: usize,
    f: Arc<F>,
) -> TStream<'s, T>
where
    T: Data,
    F: Fn(&StepId, &T, u64, usize) + Send + Sync + 'static,
{
    let name = step_id.to_string();
    stream.unary(Pipeline, &name, move |_cap, _info| {
        move |input, output| {
            enter_step(step);
            input.for_each(|cap, data| {
                let epoch = cap.least().copied().unwrap_or_default();
                for item in data.iter() {
                    f(&step_id, item, epoch, worker);
                }
                output.session(&cap).give_container(data);
            });
        }
    })
}

/// Splits a stream in two with one pass over each batch (not a clone of every item).
pub(crate) fn branch<'s, T, F>(
    stream: TStream<'s, T>,
    step: usize,
    pred: Arc<F>,
) -> (TStream<'s, T>, TStream<'s, T>)
where
    T: Data,
    F: Fn(&T) -> bool + Send + Sync + 'static,
{
    let mut parts =
        stream.partition::<timely::container::CapacityContainerBuilder<Vec<T>>, T, _>(2, move |item| {
            enter_step(step);
            (if pred(&item) { 0 } else { 1 }, item)
        });
    let falses = parts.pop().expect("partition made two streams");
    let trues = parts.pop().expect("partition made two streams");
    (trues, falses)
}

/// Union of any number of streams.
pub(crate) fn merge<'s, T: Data>(streams: Vec<TStream<'s, T>>) -> TStream<'s, T> {
    let scope = streams[0].scope();
    scope.concatenate(streams)
}

/// Spreads items over all workers, round robin per worker.
pub(crate) fn redistribute<'s, T: crate::ExchangeData>(stream: TStream<'s, T>, name: &str) -> TStream<'s, T> {
    let mut next: u64 = 0;
    stream.unary(
        Exchange::new(move |_item: &T| {
            next = next.wrapping_add(1);
            next
        }),
        name,
        |_cap, _info| {
            move |input, output| {
                input.for_each(|cap, data| output.session(&cap).give_container(data));
            }
        },
    )
}

/// Ends a stream: any item stops the flow with a panic naming the step.
pub(crate) fn raises<T: Data + std::fmt::Debug>(stream: TStream<'_, T>, step_id: StepId, step: usize) {
    stream.sink(Pipeline, step_id.as_str(), move |(input, _frontier)| {
        enter_step(step);
        input.for_each(|_cap, data| {
            if let Some(item) = data.first() {
                panic!("`raises` step received an item: {item:?}");
            }
        });
    });
}
