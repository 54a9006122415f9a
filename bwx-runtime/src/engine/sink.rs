//! Sink operators and the operator that hands snapshots to the recovery hook.

use std::collections::BTreeMap;
use std::sync::Arc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::{Concatenate, Operator};

use crate::errors::FlowError;
use crate::flow::StepInfo;
use crate::outputs::{DynamicSink, FixedPartitionedSink, StatefulSinkPartition, StatelessSinkPartition};
use crate::recovery::{RecoveryHook, Snapshot, codec};

use super::failure::enter_step;
use super::{BuildCtx, TStream};

/// Writes a stream through one per-worker partition of a dynamic sink.
pub(crate) fn dynamic<'s, S: DynamicSink>(
    ctx: &mut BuildCtx<'s>,
    step: &StepInfo,
    sink: Arc<S>,
    stream: TStream<'s, S::Item>,
) -> Result<(), FlowError> {
    let me = ctx.worker_index();
    let step_index = ctx.step_index;
    let step_id = step.id.clone();
    let fail = move |message: String| FlowError::Connector {
        step: step_id.to_string(),
        worker: me,
        part: "-".into(),
        message,
    };
    let mut part = Some(
        sink.build(&step.id, me, ctx.worker_count())
            .map_err(|e| fail(format!("cannot build the worker's partition: {e}")))?,
    );
    let failure = ctx.failure.clone();
    stream.sink(Pipeline, step.id.as_str(), move |(input, frontier)| {
        enter_step(step_index);
        let Some(writer) = part.as_mut() else { return };
        let mut error = None;
        let mut wrote = false;
        input.for_each(|_cap, data| {
            wrote = true;
            if error.is_none()
                && let Err(e) = writer.write_batch(data)
            {
                error = Some(fail(e.to_string()));
            }
        });
        if error.is_none()
            && wrote
            && let Err(e) = writer.flush()
        {
            error = Some(fail(e.to_string()));
        }
        if error.is_none() && frontier.is_empty() {
            if let Err(e) = writer.close() {
                error = Some(fail(format!("cannot close: {e}")));
            }
            part = None;
        }
        if let Some(err) = error {
            failure.fail(err);
            part = None;
        }
    });
    Ok(())
}

struct SinkPart<P: StatefulSinkPartition> {
    name: String,
    writer: P,
    buffer: Vec<<P as StatefulSinkPartition>::Value>,
}

/// Routes a keyed stream to the primary workers of a fixed-partitioned sink's partitions.
pub(crate) fn fixed<'s, S: FixedPartitionedSink>(
    ctx: &mut BuildCtx<'s>,
    step: &StepInfo,
    sink: Arc<S>,
    stream: TStream<'s, (S::Key, S::Value)>,
) -> Result<(), FlowError> {
    let me = ctx.worker_index();
    let step_index = ctx.step_index;
    let all: Vec<(String, usize)> = ctx.assignments.get(&step.id).cloned().unwrap_or_default();
    if all.is_empty() {
        return Err(FlowError::Connector {
            step: step.id.to_string(),
            worker: me,
            part: "-".into(),
            message: "the sink lists no partitions on any worker".into(),
        });
    }
    let mut resume = match &ctx.config.recovery {
        Some(recovery) => recovery.resume_states(&step.id)?,
        None => Default::default(),
    };
    let conn_err = |part: &str, message: String| FlowError::Connector {
        step: step.id.to_string(),
        worker: me,
        part: part.to_string(),
        message,
    };
    // Index in `all` → local partition slot, for the partitions this worker writes.
    let mut local: Vec<Option<SinkPart<S::Partition>>> = Vec::with_capacity(all.len());
    for (name, primary) in &all {
        if *primary != me {
            local.push(None);
            continue;
        }
        let state = match resume.remove(&codec::encode_key(name)) {
            Some(bytes) => Some(
                codec::decode::<S::State>(&bytes)
                    .map_err(|e| conn_err(name, format!("cannot decode the stored sink position: {e}")))?,
            ),
            None => None,
        };
        let writer = sink
            .build_part(&step.id, name, state)
            .map_err(|e| conn_err(name, format!("cannot open the partition: {e}")))?;
        local.push(Some(SinkPart {
            name: name.clone(),
            writer,
            buffer: Vec::new(),
        }));
    }
    let parts = all.len() as u64;
    let primaries: Vec<u64> = all.iter().map(|(_, w)| *w as u64).collect();
    let route_sink = sink.clone();
    let route =
        Exchange::new(move |(k, _): &(S::Key, S::Value)| primaries[(route_sink.part_fn(k) % parts) as usize]);

    let snapshots_on = ctx.snapshots_enabled();
    let mut builder = OperatorBuilder::new(step.id.to_string(), ctx.scope);
    let mut input = builder.new_input(stream, route);
    let snap = snapshots_on.then(|| builder.new_output::<Vec<Snapshot>>());
    let (mut snap_out, snap_stream) = match snap {
        Some((o, s)) => (
            Some(OutputBuilder::<_, CapacityContainerBuilder<Vec<Snapshot>>>::from(
                o,
            )),
            Some(s),
        ),
        None => (None, None),
    };
    let failure = ctx.failure.clone();
    let step_id = step.id.clone();
    builder.build(move |mut caps| {
        let mut cap = caps.pop();
        let mut open = true;
        let mut last_epoch: Option<u64> = None;
        // With recovery on, items of epochs after the oldest open one wait here, so that
        // a position snapshot never includes a later epoch's writes.
        let mut stash: Stash<S::Key, S::Value> = BTreeMap::new();
        move |frontiers| {
            enter_step(step_index);
            let mut error = None;
            let frontier = frontiers[0].frontier();
            let f = frontier.first().copied();
            // Stashed epochs that closed are written before the position snapshot.
            drain_stash(
                &mut stash,
                |e| f.is_none_or(|f| e < f),
                |data| write_items(&*sink, &mut local, parts, open, data, &mut error),
            );
            // Positions are taken when an epoch closes: every write of that epoch is done,
            // and none of a later one.
            if let (Some(out), Some(c)) = (snap_out.as_mut(), cap.as_mut()) {
                let held = *c.time();
                let closed = match f {
                    Some(f) if f > held => Some(f - 1),
                    Some(_) => None,
                    None => None,
                };
                if let Some(epoch) = closed {
                    let mut out = out.activate();
                    let mut session = out.session_with_builder(&*c);
                    for part in local.iter().flatten() {
                        match codec::encode(&part.writer.snapshot()) {
                            Ok(state) => session.give(Snapshot {
                                step_id: step_id.clone(),
                                key: codec::encode_key(&part.name),
                                epoch,
                                state: Some(state),
                            }),
                            Err(e) => error = Some((part.name.clone(), e.to_string())),
                        }
                    }
                }
                if let Some(f) = f {
                    c.downgrade(&f);
                }
            }
            // Then the oldest open epoch's stashed items, before its newer ones, for order.
            drain_stash(
                &mut stash,
                |e| f.is_none_or(|f| e <= f),
                |data| write_items(&*sink, &mut local, parts, open, data, &mut error),
            );
            input.for_each(|time, data| {
                let epoch = time.least().copied().unwrap_or_default();
                last_epoch = Some(last_epoch.map_or(epoch, |l| l.max(epoch)));
                if snapshots_on && f.is_some_and(|f| epoch > f) {
                    stash.entry(epoch).or_default().append(data);
                } else {
                    write_items(&*sink, &mut local, parts, open, data, &mut error);
                }
            });
            if f.is_none()
                && let (Some(out), Some(c)) = (snap_out.as_mut(), cap.as_ref())
            {
                // Every epoch closed at once: one snapshot at the last epoch seen.
                let epoch = last_epoch.unwrap_or(*c.time()).max(*c.time());
                let mut out = out.activate();
                let mut session = out.session_with_builder(c);
                for part in local.iter().flatten() {
                    match codec::encode(&part.writer.snapshot()) {
                        Ok(state) => session.give(Snapshot {
                            step_id: step_id.clone(),
                            key: codec::encode_key(&part.name),
                            epoch,
                            state: Some(state),
                        }),
                        Err(e) => error = Some((part.name.clone(), e.to_string())),
                    }
                }
            }
            if open && f.is_none() {
                open = false;
                for part in local.iter_mut().flatten() {
                    if let Err(e) = part.writer.close() {
                        error = Some((part.name.clone(), format!("cannot close: {e}")));
                    }
                }
                cap = None;
            }
            if let Some((part, message)) = error {
                open = false;
                failure.fail(FlowError::Connector {
                    step: step_id.to_string(),
                    worker: me,
                    part,
                    message,
                });
            }
        }
    });
    if let Some(s) = snap_stream {
        ctx.add_snapshots(s);
    }
    Ok(())
}

/// Items waiting for their epoch, by epoch.
type Stash<K, V> = BTreeMap<u64, Vec<(K, V)>>;

/// Hands stashed batches of the epochs `ready` accepts to `write`, oldest first.
fn drain_stash<I>(
    stash: &mut BTreeMap<u64, Vec<I>>,
    ready: impl Fn(u64) -> bool,
    mut write: impl FnMut(&mut Vec<I>),
) {
    while let Some(mut entry) = stash.first_entry() {
        if !ready(*entry.key()) {
            break;
        }
        write(entry.get_mut());
        entry.remove();
    }
}

/// Writes items through the local partitions they route to.
fn write_items<S: FixedPartitionedSink>(
    sink: &S,
    local: &mut [Option<SinkPart<S::Partition>>],
    parts: u64,
    open: bool,
    data: &mut Vec<(S::Key, S::Value)>,
    error: &mut Option<(String, String)>,
) {
    if !open || error.is_some() {
        data.clear();
        return;
    }
    for (k, v) in data.drain(..) {
        let index = (sink.part_fn(&k) % parts) as usize;
        if let Some(part) = local[index].as_mut() {
            part.buffer.push(v);
        }
    }
    for part in local.iter_mut().flatten() {
        if !part.buffer.is_empty()
            && let Err(e) = part.writer.write_batch(&mut part.buffer)
        {
            *error = Some((part.name.clone(), e.to_string()));
        }
        part.buffer.clear();
    }
}

/// Hands every worker's snapshots to the recovery hook as epochs close on that worker.
pub(crate) fn attach_snapshots<'s>(
    ctx: &BuildCtx<'s>,
    streams: Vec<TStream<'s, Snapshot>>,
    hook: Arc<dyn RecoveryHook>,
) {
    let me = ctx.worker_index();
    let failure = ctx.failure.clone();
    let stream = ctx.scope.concatenate(streams);
    let mut pending: BTreeMap<u64, Vec<Snapshot>> = BTreeMap::new();
    let mut closed_through: Option<u64> = None;
    let mut done = false;
    stream.sink(Pipeline, "bwx.snapshots", move |(input, frontier)| {
        input.for_each(|_cap, data| {
            for snap in data.drain(..) {
                pending.entry(snap.epoch).or_default().push(snap);
            }
        });
        if done {
            return;
        }
        let complete = match frontier.frontier().first() {
            Some(f) => f.checked_sub(1),
            None => {
                done = true;
                pending.last_key_value().map(|(e, _)| *e).max(closed_through)
            }
        };
        if let Some(epoch) = complete
            && !(closed_through.is_some_and(|c| c >= epoch) && pending.is_empty())
        {
            let later = pending.split_off(&(epoch + 1));
            let ready: Vec<Snapshot> = std::mem::replace(&mut pending, later)
                .into_values()
                .flatten()
                .collect();
            closed_through = Some(epoch);
            if let Err(err) = hook.epoch_closed(me, epoch, ready) {
                failure.fail(err);
                return;
            }
        }
        // Every epoch is closed: the hook makes whatever it buffers durable.
        if done && let Err(err) = hook.finished(me) {
            failure.fail(err);
        }
    });
}
