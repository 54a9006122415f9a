//! Source operators: poll partitions, advance epochs, snapshot positions.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::errors::FlowError;
use crate::flow::StepInfo;
use crate::inputs::{
    BatchStatus, ConnectorError, DynamicSource, FixedPartitionedSource, StatefulSourcePartition,
    StatelessSourcePartition,
};
use crate::recovery::{Snapshot, codec};

use super::failure::{Failure, enter_step};
use super::{BuildCtx, TStream};

/// Cool-down after an empty batch from a partition that gave no `next_awake`.
const EMPTY_COOLDOWN: Duration = Duration::from_millis(1);

/// A partition as the source operator drives it.
trait Poll {
    type Item;
    fn poll(&mut self, batch: &mut Vec<Self::Item>) -> Result<BatchStatus, ConnectorError>;
    fn awake(&self) -> Option<SystemTime>;
    fn finish(&mut self) -> Result<(), ConnectorError>;
    /// The encoded position, for partitions that keep one.
    fn position(&self) -> Option<Vec<u8>>;
}

struct Stateful<P>(P);
impl<P: StatefulSourcePartition> Poll for Stateful<P>
where
    P::State: serde::Serialize,
{
    type Item = P::Item;
    fn poll(&mut self, batch: &mut Vec<P::Item>) -> Result<BatchStatus, ConnectorError> {
        self.0.next_batch(batch)
    }
    fn awake(&self) -> Option<SystemTime> {
        self.0.next_awake()
    }
    fn finish(&mut self) -> Result<(), ConnectorError> {
        self.0.close()
    }
    fn position(&self) -> Option<Vec<u8>> {
        codec::encode(&self.0.snapshot()).ok()
    }
}

struct Stateless<P>(P);
impl<P: StatelessSourcePartition> Poll for Stateless<P> {
    type Item = P::Item;
    fn poll(&mut self, batch: &mut Vec<P::Item>) -> Result<BatchStatus, ConnectorError> {
        self.0.next_batch(batch)
    }
    fn awake(&self) -> Option<SystemTime> {
        self.0.next_awake()
    }
    fn finish(&mut self) -> Result<(), ConnectorError> {
        self.0.close()
    }
    fn position(&self) -> Option<Vec<u8>> {
        None
    }
}

struct Part<P> {
    name: String,
    reader: P,
    /// Not to be polled before this instant.
    wake: Option<Instant>,
    done: bool,
}

/// Builds the operator for a fixed-partitioned source on this worker.
pub(crate) fn fixed<'s, S: FixedPartitionedSource>(
    ctx: &mut BuildCtx<'s>,
    step: &StepInfo,
    source: Arc<S>,
) -> Result<TStream<'s, S::Item>, FlowError> {
    let me = ctx.worker_index();
    let resume = match &ctx.config.recovery {
        Some(recovery) => recovery.resume_states(&step.id)?,
        None => Default::default(),
    };
    let mut parts = Vec::new();
    for (name, primary) in ctx.assignments.get(&step.id).into_iter().flatten() {
        if *primary != me {
            continue;
        }
        let state = match resume.get(&codec_key(name)) {
            Some(bytes) => Some(
                codec::decode::<S::State>(bytes).map_err(|e| FlowError::Connector {
                    step: step.id.to_string(),
                    worker: me,
                    part: name.clone(),
                    message: format!("cannot decode the stored source position: {e}"),
                })?,
            ),
            None => None,
        };
        let reader = source
            .build_part(&step.id, name, state)
            .map_err(|e| FlowError::Connector {
                step: step.id.to_string(),
                worker: me,
                part: name.clone(),
                message: format!("cannot open the partition: {e}"),
            })?;
        parts.push(Part {
            name: name.clone(),
            reader: Stateful(reader),
            wake: None,
            done: false,
        });
    }
    Ok(build(ctx, step, parts))
}

/// Builds the operator for a dynamic source on this worker.
pub(crate) fn dynamic<'s, S: DynamicSource>(
    ctx: &mut BuildCtx<'s>,
    step: &StepInfo,
    source: Arc<S>,
) -> Result<TStream<'s, S::Item>, FlowError> {
    let (me, count) = (ctx.worker_index(), ctx.worker_count());
    let reader = source
        .build(&step.id, me, count)
        .map_err(|e| FlowError::Connector {
            step: step.id.to_string(),
            worker: me,
            part: "-".into(),
            message: format!("cannot build the worker's partition: {e}"),
        })?;
    let parts = vec![Part {
        name: "-".into(),
        reader: Stateless(reader),
        wake: None,
        done: false,
    }];
    Ok(build(ctx, step, parts))
}

fn codec_key(part: &str) -> Vec<u8> {
    codec::encode_key(&part.to_string())
}

fn build<'s, P: Poll + 'static>(
    ctx: &mut BuildCtx<'s>,
    step: &StepInfo,
    mut parts: Vec<Part<P>>,
) -> TStream<'s, P::Item>
where
    P::Item: crate::Data,
{
    let step_index = ctx.step_index;
    let step_id = step.id.clone();
    let me = ctx.worker_index();
    let interval = ctx.config.epoch_interval;
    let start_epoch = ctx.config.start_epoch;
    let failure: Arc<Failure> = ctx.failure.clone();
    let snapshots_on = ctx.snapshots_enabled();
    let stop = ctx.config.stop.clone();
    let meter = ctx.meter_plan(step).source_meter();

    let mut builder = OperatorBuilder::new(step.id.to_string(), ctx.scope);
    let info = builder.operator_info();
    let activator = ctx.scope.activator_for(info.address.clone());
    let (output, stream) = builder.new_output::<Vec<P::Item>>();
    let mut output =
        OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<P::Item>>>::from(output);
    let (snap_output, snap_stream) = if snapshots_on {
        let (o, s) = builder.new_output::<Vec<Snapshot>>();
        (
            Some(OutputBuilder::<
                _,
                timely::container::CapacityContainerBuilder<Vec<Snapshot>>,
            >::from(o)),
            Some(s),
        )
    } else {
        (None, None)
    };
    let mut snap_output = snap_output;

    builder.build(move |mut caps| {
        let snap_cap = if snapshots_on { caps.pop() } else { None };
        let mut cap: Option<Capability<u64>> = caps.pop();
        let mut snap_cap = snap_cap;
        for c in cap.iter_mut().chain(snap_cap.iter_mut()) {
            c.downgrade(&start_epoch);
        }
        let mut epoch = start_epoch;
        let mut epoch_ends = Instant::now() + interval;
        let mut batch = Vec::new();
        move |_frontiers| {
            enter_step(step_index);
            let Some(out_cap) = cap.as_mut() else { return };
            if failure.should_stop() {
                return;
            }
            if stop.load(Ordering::Relaxed) {
                // Graceful stop: the epoch closes with everything emitted so far, the
                // positions are its snapshot, and the input ends without reading more.
                if let (Some(snap_out), Some(sc)) = (snap_output.as_mut(), snap_cap.as_ref()) {
                    emit_positions(&step_id, epoch, &parts, &mut snap_out.activate(), sc);
                }
                for part in parts.iter_mut().filter(|p| !p.done) {
                    part.done = true;
                    if let Err(e) = part.reader.finish() {
                        failure.fail(FlowError::Connector {
                            step: step_id.to_string(),
                            worker: me,
                            part: part.name.clone(),
                            message: format!("cannot close the partition: {e}"),
                        });
                    }
                }
                cap = None;
                snap_cap = None;
                return;
            }
            let mut now = Instant::now();
            if now >= epoch_ends {
                if let (Some(snap_out), Some(sc)) = (snap_output.as_mut(), snap_cap.as_ref()) {
                    emit_positions(&step_id, epoch, &parts, &mut snap_out.activate(), sc);
                }
                epoch += 1;
                epoch_ends = now + interval;
                out_cap.downgrade(&epoch);
                if let Some(sc) = snap_cap.as_mut() {
                    sc.downgrade(&epoch);
                }
            }
            meter.input_epoch(epoch);
            let mut out = output.activate();
            for part in parts.iter_mut().filter(|p| !p.done) {
                if part.wake.is_some_and(|w| w > now) {
                    continue;
                }
                let status = match meter.time(|| part.reader.poll(&mut batch)) {
                    Ok(status) => status,
                    Err(e) => {
                        failure.fail(FlowError::Connector {
                            step: step_id.to_string(),
                            worker: me,
                            part: part.name.clone(),
                            message: e.to_string(),
                        });
                        return;
                    }
                };
                let was_empty = batch.is_empty();
                meter.source_batch(batch.len());
                if !was_empty {
                    out.session(&*out_cap).give_container(&mut batch);
                    batch.clear();
                }
                now = Instant::now();
                part.wake = match part.reader.awake() {
                    Some(at) => Some(now + at.duration_since(SystemTime::now()).unwrap_or_default()),
                    None if was_empty => Some(now + EMPTY_COOLDOWN),
                    None => None,
                };
                match status {
                    BatchStatus::Active => {}
                    BatchStatus::Eof => {
                        part.done = true;
                        if let Err(e) = part.reader.finish() {
                            failure.fail(FlowError::Connector {
                                step: step_id.to_string(),
                                worker: me,
                                part: part.name.clone(),
                                message: format!("cannot close the partition: {e}"),
                            });
                            return;
                        }
                    }
                    BatchStatus::Abort => {
                        failure.abort();
                        return;
                    }
                }
            }
            drop(out);
            if parts.iter().all(|p| p.done) {
                tracing::info!(step = %step_id, worker = me, parts = parts.len(), "input '{step_id}' reached the end of its input on worker {me}");
                meter.frontier(None);
                if let (Some(snap_out), Some(sc)) = (snap_output.as_mut(), snap_cap.as_ref()) {
                    emit_positions(&step_id, epoch, &parts, &mut snap_out.activate(), sc);
                }
                cap = None;
                snap_cap = None;
                return;
            }
            // Poll again now if a partition is ready, else when the first one wakes or the
            // epoch ends, whichever is earlier; the worker parks meanwhile.
            let until_epoch_end = epoch_ends.saturating_duration_since(now);
            match parts.iter().filter(|p| !p.done).map(|p| p.wake).min() {
                Some(None) => activator.activate(),
                Some(Some(at)) => {
                    activator.activate_after(at.saturating_duration_since(now).min(until_epoch_end))
                }
                None => activator.activate_after(until_epoch_end),
            }
        }
    });
    if let Some(s) = snap_stream {
        ctx.add_snapshots(s);
    }
    stream
}

fn emit_positions<P: Poll>(
    step_id: &crate::flow::StepId,
    epoch: u64,
    parts: &[Part<P>],
    out: &mut timely::dataflow::operators::generic::OutputBuilderSession<
        '_,
        u64,
        timely::container::CapacityContainerBuilder<Vec<Snapshot>>,
    >,
    cap: &Capability<u64>,
) {
    let mut session = out.session_with_builder(cap);
    for part in parts {
        if let Some(state) = part.reader.position() {
            session.give(Snapshot {
                step_id: step_id.clone(),
                key: codec_key(&part.name),
                epoch,
                state: Some(state),
            });
        }
    }
}
