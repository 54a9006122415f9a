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
///
/// The partition is flushed once per epoch, when the sink's input frontier passes it (and
/// once more before closing): a sink that writes asynchronously batches a whole epoch per
/// flush. With recovery on, the operator holds a capability on an output that joins the
/// snapshot streams and downgrades it only after that flush returned, so the recovery hook
/// never commits an epoch's snapshots before the sink's writes of the epoch are durable
/// (at-least-once across a resume).
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
    let start_epoch = ctx.config.start_epoch;
    let mut builder = OperatorBuilder::new(step.id.to_string(), ctx.scope);
    let mut input = builder.new_input(stream, Pipeline);
    // Carries nothing: only its capability matters, as the hold on the snapshot commits.
    let hold = ctx
        .snapshots_enabled()
        .then(|| builder.new_output::<Vec<Snapshot>>().1);
    let failure = ctx.failure.clone();
    let meter = ctx.meter_plan(step).sink_meter();
    builder.build(move |mut caps| {
        let mut hold_cap = caps.pop();
        if let Some(c) = hold_cap.as_mut() {
            c.downgrade(&start_epoch);
        }
        // The input frontier at the last flush, and whether anything was written since.
        let mut flushed_at = Some(start_epoch);
        let mut dirty = false;
        move |frontiers| {
            enter_step(step_index);
            let Some(writer) = part.as_mut() else {
                // Closed or failed: a failed sink keeps its hold, so nothing after it commits.
                input.for_each(|_cap, data| data.clear());
                return;
            };
            let mut error = None;
            input.for_each(|_cap, data| {
                if error.is_none() && !data.is_empty() {
                    dirty = true;
                    meter.items_in(data.len());
                    if let Err(e) = meter.time(|| writer.write_batch(data)) {
                        error = Some(fail(e.to_string()));
                    }
                }
                data.clear();
            });
            let frontier = frontiers[0].frontier().first().copied();
            meter.frontier(frontier);
            if error.is_none() && frontier != flushed_at {
                // An epoch closed: everything written so far (it, and perhaps some of the
                // next) becomes durable before the hold moves past it.
                if dirty && let Err(e) = writer.flush() {
                    error = Some(fail(e.to_string()));
                }
                dirty = false;
                flushed_at = frontier;
            }
            if error.is_none() {
                match frontier {
                    Some(f) => {
                        // Before progress reaches it, a resumed flow's input frontier still
                        // reads 0, below the hold's start epoch.
                        if let Some(c) = hold_cap.as_mut().filter(|c| *c.time() < f) {
                            c.downgrade(&f);
                        }
                    }
                    None => {
                        if let Err(e) = writer.close() {
                            error = Some(fail(format!("cannot close: {e}")));
                        } else {
                            hold_cap = None;
                        }
                        part = None;
                    }
                }
            }
            if let Some(err) = error {
                failure.fail(err);
                part = None;
            }
        }
    });
    if let Some(s) = hold {
        ctx.add_snapshots(s);
    }
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
    let resume = match &ctx.config.recovery {
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
        let state = match resume.get(&codec::encode_key(name)) {
            Some(bytes) => Some(
                codec::decode::<S::State>(bytes)
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
    let meter = ctx.meter_plan(step).sink_meter();
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
            meter.frontier(f);
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
                meter.items_in(data.len());
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::errors::FlowError;
    use crate::flow::{Dataflow, StepId};
    use crate::inputs::ConnectorError;
    use crate::recovery::StoredStates;
    use crate::testing::{TestingEvent, TestingSource};
    use crate::{RunConfig, run_workers};

    /// What the sink made durable, and what the hook found missing at a commit.
    #[derive(Default)]
    struct Shared {
        durable: HashSet<u64>,
        flushes: usize,
        /// (epoch, source position, items of the position not yet durable).
        violations: Vec<(u64, usize, Vec<u64>)>,
        /// Commits whose source position covered at least one item.
        checked: usize,
    }

    /// A dynamic sink whose writes become durable only when a slow flush returns.
    struct SlowFlushSink(Arc<Mutex<Shared>>);

    struct SlowFlushPart {
        shared: Arc<Mutex<Shared>>,
        pending: Vec<u64>,
        flush_time: Duration,
    }

    impl DynamicSink for SlowFlushSink {
        type Item = u64;
        type Partition = SlowFlushPart;
        fn build(&self, _: &StepId, worker: usize, _: usize) -> Result<SlowFlushPart, ConnectorError> {
            Ok(SlowFlushPart {
                shared: self.0.clone(),
                pending: Vec::new(),
                // Worker 1 flushes slowly: without the hold, worker 0 (whose source holds
                // the positions) would commit an epoch while worker 1 is still flushing it.
                flush_time: Duration::from_millis(if worker == 1 { 50 } else { 0 }),
            })
        }
    }

    impl StatelessSinkPartition for SlowFlushPart {
        type Item = u64;
        fn write_batch(&mut self, items: &mut Vec<u64>) -> Result<(), ConnectorError> {
            self.pending.append(items);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), ConnectorError> {
            std::thread::sleep(self.flush_time);
            let mut shared = self.shared.lock().unwrap();
            shared.durable.extend(self.pending.drain(..));
            shared.flushes += 1;
            Ok(())
        }
    }

    /// Checks at every commit that the items before the committed source position are durable.
    struct CheckingHook {
        shared: Arc<Mutex<Shared>>,
        /// Event index → the items before it.
        items_before: Vec<Vec<u64>>,
    }

    impl RecoveryHook for CheckingHook {
        fn resume_epoch(&self) -> u64 {
            0
        }
        fn resume_states(&self, _: &StepId) -> Result<Arc<StoredStates>, FlowError> {
            Ok(Arc::default())
        }
        fn epoch_closed(&self, _: usize, epoch: u64, snapshots: Vec<Snapshot>) -> Result<(), FlowError> {
            let mut shared = self.shared.lock().unwrap();
            for snap in snapshots.iter().filter(|s| s.step_id.as_str() == "f.inp") {
                let position: usize = codec::decode(snap.state.as_deref().unwrap()).unwrap();
                let expected = &self.items_before[position];
                let missing: Vec<u64> = expected
                    .iter()
                    .copied()
                    .filter(|i| !shared.durable.contains(i))
                    .collect();
                if !expected.is_empty() {
                    shared.checked += 1;
                }
                if !missing.is_empty() {
                    shared.violations.push((epoch, position, missing));
                }
            }
            Ok(())
        }
    }

    #[test]
    fn a_dynamic_sink_flushes_each_epoch_before_its_snapshots_are_committed() {
        // Groups of items, each group well inside one 20 ms epoch, with pauses between
        // them; spread over two workers so the flush on one races the commit on the other.
        let mut events = Vec::new();
        for group in 0..6u64 {
            events.extend((0..10).map(|i| TestingEvent::Item(group * 10 + i)));
            events.push(TestingEvent::Pause(Duration::from_millis(70)));
        }
        let items_before = (0..=events.len())
            .map(|n| {
                events[..n]
                    .iter()
                    .filter_map(|e| match e {
                        TestingEvent::Item(i) => Some(*i),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let flow = Dataflow::new("f");
        flow.input("inp", TestingSource::from_events(events))
            .redistribute("spread")
            .output("out", SlowFlushSink(shared.clone()));
        let hook = Arc::new(CheckingHook {
            shared: shared.clone(),
            items_before,
        });
        let config = RunConfig::default()
            .epoch_interval(Duration::from_millis(20))
            .recovery(hook);
        run_workers(&flow, 2, config).unwrap();

        let shared = shared.lock().unwrap();
        assert_eq!(shared.violations, Vec::new(), "committed before the sink's flush");
        assert!(
            shared.checked >= 5,
            "only {} commits covered items",
            shared.checked
        );
        assert_eq!(shared.durable.len(), 60);
        // Once per epoch and worker, not once per batch of one item.
        assert!(
            shared.flushes <= 30,
            "{} flushes for 60 one-item batches",
            shared.flushes
        );
    }
}
