//! Source operators: poll partitions, close epochs, snapshot positions.
//!
//! A source decides the epochs of the items it reads: it closes one every epoch interval
//! (or after every batch when the interval is zero, as Bytewax's `-s 0`), and with recovery
//! on its close stores every partition position that moved ([`super::epochs`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::errors::{Cause, DYNAMIC_PART, FlowError};
use crate::flow::{StepId, StepInfo};
use crate::inputs::{
    BatchStatus, ConnectorError, DynamicSource, FixedPartitionedSource, StatefulSourcePartition,
    StatelessSourcePartition,
};
use crate::recovery::{Route, Snapshot, codec};

use super::epochs::{EpochSteps, Epochs, SnapshotPort};
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
    fn position(&self) -> Result<Option<Vec<u8>>, codec::CodecError>;
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
    fn position(&self) -> Result<Option<Vec<u8>>, codec::CodecError> {
        codec::encode(&self.0.snapshot()).map(Some)
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
    fn position(&self) -> Result<Option<Vec<u8>>, codec::CodecError> {
        Ok(None)
    }
}

struct Part<P> {
    name: String,
    reader: P,
    /// Not to be polled before this instant.
    wake: Option<Instant>,
    done: bool,
    /// The position last stored (or resumed from), so that an unmoved one is not stored again.
    stored: Option<Vec<u8>>,
}

/// Builds the operator for a fixed-partitioned source on this worker.
pub(crate) fn fixed<'s, S: FixedPartitionedSource>(
    ctx: &mut BuildCtx<'s>,
    step: &StepInfo,
    source: Arc<S>,
) -> Result<TStream<'s, S::Item>, FlowError> {
    let me = ctx.worker_index();
    let resume = ctx.resume_states(&step.id);
    let mut parts = Vec::new();
    for (name, primary) in ctx.assignments.get(&step.id).into_iter().flatten() {
        if *primary != me {
            continue;
        }
        let stored = resume.get(&codec::part_key(name)).map(|s| s.state.clone());
        let state = match &stored {
            Some(bytes) => Some(
                codec::decode::<S::State>(bytes).map_err(|e| FlowError::StateDecode {
                    step: step.id.to_string(),
                    worker: me,
                    what: "position",
                    key: name.clone(),
                    cause: Cause::new(e),
                })?,
            ),
            None => None,
        };
        let reader = source
            .build_part(&step.id, name, state)
            .map_err(|e| FlowError::connector(&step.id, me, name, "cannot open the partition", e))?;
        parts.push(Part {
            name: name.clone(),
            reader: Stateful(reader),
            wake: None,
            done: false,
            stored,
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
    let reader = source.build(&step.id, me, count).map_err(|e| {
        FlowError::connector(
            &step.id,
            me,
            DYNAMIC_PART,
            "cannot build the worker's partition",
            e,
        )
    })?;
    let parts = vec![Part {
        name: DYNAMIC_PART.into(),
        reader: Stateless(reader),
        wake: None,
        done: false,
        stored: None,
    }];
    Ok(build(ctx, step, parts))
}

/// What a source does when one of its epochs closes: store the positions that moved.
struct Positions<'a, P> {
    parts: &'a mut [Part<P>],
    step: &'a StepId,
    worker: usize,
}

impl<P: Poll> EpochSteps<()> for Positions<'_, P> {
    fn apply(&mut self, _: u64, _: &mut Vec<()>) -> Result<(), FlowError> {
        Ok(())
    }

    fn close(&mut self, epoch: u64, snapshots: &mut Vec<Snapshot>) -> Result<(), FlowError> {
        for part in self.parts.iter_mut() {
            let position = part.reader.position().map_err(|e| FlowError::StateEncode {
                step: self.step.to_string(),
                worker: self.worker,
                key: part.name.clone(),
                cause: Cause::new(e),
            })?;
            if let Some(position) = position
                && part.stored.as_ref() != Some(&position)
            {
                snapshots.push(Snapshot {
                    step_id: self.step.clone(),
                    key: codec::part_key(&part.name),
                    route: Route::Partition,
                    epoch,
                    state: Some(position.clone()),
                });
                part.stored = Some(position);
            }
        }
        Ok(())
    }
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
    let per_batch = interval.is_zero();
    let start_epoch = ctx.config.start_epoch;
    let failure: Arc<Failure> = ctx.failure.clone();
    let stop = ctx.config.stop.clone();

    let mut builder = OperatorBuilder::new(step.id.to_string(), ctx.scope);
    let info = builder.operator_info();
    let activator = ctx.scope.activator_for(info.address.clone());
    let (output, stream) = builder.new_output::<Vec<P::Item>>();
    let mut output =
        OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<P::Item>>>::from(output);
    let snapshots = ctx
        .snapshots_enabled()
        .then(|| builder.new_output::<Vec<Snapshot>>());
    let (snap_output, snap_stream) = snapshots.unzip();

    builder.build(move |mut caps| {
        // The snapshot output, when there is one, is the last: its capability too.
        let port = snap_output.and_then(|o| caps.pop().map(|c| SnapshotPort::new(o, c, start_epoch)));
        let mut cap: Option<Capability<u64>> = caps.pop();
        if let Some(c) = cap.as_mut() {
            c.downgrade(&start_epoch);
        }
        let mut epochs = Epochs::new(start_epoch, port, false);
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
                epochs.touch(epoch);
                let mut result = close(&mut epochs, None, &mut parts, &step_id, me);
                for part in parts.iter_mut().filter(|p| !p.done) {
                    part.done = true;
                    if let Err(e) = part.reader.finish() {
                        result = result.and(Err(FlowError::connector(
                            &step_id,
                            me,
                            &part.name,
                            "cannot close the partition",
                            e,
                        )));
                    }
                }
                if let Err(err) = result {
                    failure.fail(err);
                }
                cap = None;
                return;
            }
            let mut now = Instant::now();
            if !per_batch && now >= epoch_ends {
                if let Err(err) = close(&mut epochs, Some(epoch + 1), &mut parts, &step_id, me) {
                    failure.fail(err);
                    return;
                }
                epoch += 1;
                epoch_ends = now + interval;
                out_cap.downgrade(&epoch);
            }
            for i in 0..parts.len() {
                let part = &mut parts[i];
                if part.done || part.wake.is_some_and(|w| w > now) {
                    continue;
                }
                let status = match part.reader.poll(&mut batch) {
                    Ok(status) => status,
                    Err(e) => {
                        batch.clear();
                        let doing = "cannot read the next batch";
                        failure.fail(FlowError::connector(&step_id, me, &part.name, doing, e));
                        return;
                    }
                };
                epochs.touch(epoch);
                let was_empty = batch.is_empty();
                if !was_empty {
                    output.activate().session(&*out_cap).give_container(&mut batch);
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
                            let doing = "cannot close the partition";
                            failure.fail(FlowError::connector(&step_id, me, &part.name, doing, e));
                            return;
                        }
                    }
                    BatchStatus::Abort => {
                        failure.abort();
                        return;
                    }
                }
                if per_batch && !was_empty {
                    // Bytewax's `-s 0`: every batch is an epoch of its own.
                    if let Err(err) = close(&mut epochs, Some(epoch + 1), &mut parts, &step_id, me) {
                        failure.fail(err);
                        return;
                    }
                    epoch += 1;
                    out_cap.downgrade(&epoch);
                }
            }
            if parts.iter().all(|p| p.done) {
                if let Err(err) = close(&mut epochs, None, &mut parts, &step_id, me) {
                    failure.fail(err);
                }
                cap = None;
                return;
            }
            // Poll again now if a partition is ready, else when the first one wakes or the
            // epoch ends, whichever is earlier; the worker parks meanwhile.
            let until_epoch_end = if per_batch {
                Duration::MAX
            } else {
                epoch_ends.saturating_duration_since(now)
            };
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

/// Closes the source's epochs before `frontier` (all of them with `None`), storing the
/// positions that moved.
fn close<P: Poll>(
    epochs: &mut Epochs<()>,
    frontier: Option<u64>,
    parts: &mut [Part<P>],
    step: &StepId,
    worker: usize,
) -> Result<(), FlowError> {
    epochs.advance(frontier, &mut Positions { parts, step, worker })
}
