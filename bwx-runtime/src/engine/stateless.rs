//! Stateless operators: each is one pipelined timely operator that loops over a batch.

use std::sync::Arc;

use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::Partition;
use timely::dataflow::operators::{Concatenate, Operator};

use crate::Data;
use crate::flow::StepId;
use crate::monitor::meter::Meter;

use super::TStream;
use super::failure::enter_step;

/// Applies `logic` to every batch: it drains the batch and pushes into the output.
pub(crate) fn flat_map_batch<'s, T, U, F>(
    stream: TStream<'s, T>,
    name: &str,
    step: usize,
    meter: Meter,
    logic: Arc<F>,
) -> TStream<'s, U>
where
    T: Data,
    U: Data,
    F: Fn(&mut Vec<T>, &mut Vec<U>) + Send + Sync + 'static,
{
    let mut out_buf: Vec<U> = Vec::new();
    stream.unary_frontier(Pipeline, name, move |_cap, _info| {
        move |(input, frontier), output| {
            enter_step(step);
            meter.frontier(frontier.frontier().first().copied());
            input.for_each(|cap, data| {
                meter.items_in(data.len());
                meter.time(|| logic(data, &mut out_buf));
                meter.items_out(out_buf.len());
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
    meter: Meter,
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
    stream.unary_frontier(Pipeline, name, move |_cap, _info| {
        move |(input, frontier), output| {
            enter_step(step);
            meter.frontier(frontier.frontier().first().copied());
            input.for_each(|cap, data| {
                meter.items_in(data.len());
                meter.time(|| logic(&mut state, data, &mut out_buf));
                meter.items_out(out_buf.len());
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
    meter: Meter,
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
                meter.items_in(data.len());
                meter.items_out(data.len());
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
    meter: Meter,
    pred: Arc<F>,
) -> (TStream<'s, T>, TStream<'s, T>)
where
    T: Data,
    F: Fn(&T) -> bool + Send + Sync + 'static,
{
    // Every item leaves by one of the two outputs, so counting the input counts both;
    // the partition itself sees single items, hence a counting operator before it, only
    // when something is counted.
    let stream = if meter.counts_items() {
        stream.unary(Pipeline, "counted", move |_cap, _info| {
            move |input, output| {
                input.for_each(|cap, data| {
                    meter.items_in(data.len());
                    meter.items_out(data.len());
                    output.session(&cap).give_container(data);
                });
            }
        })
    } else {
        stream
    };
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
pub(crate) fn redistribute<'s, T: crate::ExchangeData>(
    stream: TStream<'s, T>,
    name: &str,
    meter: Meter,
) -> TStream<'s, T> {
    let mut next: u64 = 0;
    stream.unary(
        Exchange::new(move |_item: &T| {
            next = next.wrapping_add(1);
            next
        }),
        name,
        |_cap, _info| {
            move |input, output| {
                input.for_each(|cap, data| {
                    meter.items_in(data.len());
                    meter.items_out(data.len());
                    output.session(&cap).give_container(data)
                });
            }
        },
    )
}

/// Ends a stream: any item stops the flow with a panic naming the step.
pub(crate) fn raises<T: Data + std::fmt::Debug>(
    stream: TStream<'_, T>,
    step_id: StepId,
    step: usize,
    meter: Meter,
) {
    stream.sink(Pipeline, step_id.as_str(), move |(input, _frontier)| {
        enter_step(step);
        input.for_each(|_cap, data| {
            meter.items_in(data.len());
            if let Some(item) = data.first() {
                panic!("`raises` step received an item: {item:?}");
            }
        });
    });
}

/// Where [`split3`] sends an item.
pub(crate) enum Split3<A, B, C> {
    First(A),
    Second(B),
    Third(C),
}

/// Splits a stream into three streams of different types with one pass over each batch
/// (the lowering of an operator with several outputs, such as windowing's down, late and
/// meta).
pub(crate) fn split3<'s, T, A, B, C, F>(
    stream: TStream<'s, T>,
    name: &str,
    step: usize,
    meter: Meter,
    route: F,
) -> (TStream<'s, A>, TStream<'s, B>, TStream<'s, C>)
where
    T: Data,
    A: Data,
    B: Data,
    C: Data,
    F: Fn(T) -> Split3<A, B, C> + 'static,
{
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::operators::generic::OutputBuilder;
    use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

    let mut op = OperatorBuilder::new(name.to_string(), stream.scope());
    let mut input = op.new_input(stream, Pipeline);
    let (a_out, a_stream) = op.new_output::<Vec<A>>();
    let (b_out, b_stream) = op.new_output::<Vec<B>>();
    let (c_out, c_stream) = op.new_output::<Vec<C>>();
    let mut a_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<A>>>::from(a_out);
    let mut b_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<B>>>::from(b_out);
    let mut c_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<C>>>::from(c_out);
    op.build(move |_caps| {
        move |_frontiers| {
            enter_step(step);
            let (mut a_out, mut b_out, mut c_out) = (a_out.activate(), b_out.activate(), c_out.activate());
            input.for_each(|cap, data| {
                let mut a = a_out.session_with_builder(&cap);
                let mut b = b_out.session_with_builder(&cap);
                let mut c = c_out.session_with_builder(&cap);
                let (total, mut seconds) = (data.len(), 0);
                for item in data.drain(..) {
                    match route(item) {
                        Split3::First(x) => a.give(x),
                        Split3::Second(x) => {
                            seconds += 1;
                            b.give(x)
                        }
                        Split3::Third(x) => c.give(x),
                    }
                }
                meter.items_out(total);
                meter.late_items(seconds);
            });
        }
    });
    (a_stream, b_stream, c_stream)
}
