//! Source operators: poll partitions, close epochs, snapshot positions.
//!
//! A source decides the epochs of the items it reads: it closes one every epoch interval
//! (or after every batch when the interval is zero, as Bytewax's `-s 0`), and with recovery
//! on its close stores every partition position that moved ([`super::epochs`]). Once the
//! epoch is durable (at once without recovery) each partition commits the position it
//! stored for it ([`StatefulSourcePartition::commit`]); a partition that ended is closed
//! after its last commit.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::progress::Antichain;

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
    fn position(&mut self) -> Result<Option<Vec<u8>>, codec::CodecError>;
    /// The position last taken is the one stored for `epoch`: commit it once `epoch` is
    /// durable.
    fn keep(&mut self, epoch: u64);
    /// `epoch` is durable: commits the positions kept for it and the epochs before.
    fn commit(&mut self, epoch: u64) -> Result<(), ConnectorError>;
}

struct Stateful<P: StatefulSourcePartition> {
    part: P,
    /// The position last taken, until it is kept or replaced.
    taken: Option<P::State>,
    /// Stored positions waiting for their epoch to be durable, oldest first.
    kept: VecDeque<(u64, P::State)>,
}

impl<P: StatefulSourcePartition> Poll for Stateful<P>
where
    P::State: serde::Serialize,
{
    type Item = P::Item;
    fn poll(&mut self, batch: &mut Vec<P::Item>) -> Result<BatchStatus, ConnectorError> {
        self.part.next_batch(batch)
    }
    fn awake(&self) -> Option<SystemTime> {
        self.part.next_awake()
    }
    fn finish(&mut self) -> Result<(), ConnectorError> {
        self.part.close()
    }
    fn position(&mut self) -> Result<Option<Vec<u8>>, codec::CodecError> {
        let position = self.part.snapshot();
        let encoded = codec::encode(&position)?;
        self.taken = Some(position);
        Ok(Some(encoded))
    }
    fn keep(&mut self, epoch: u64) {
        if let Some(position) = self.taken.take() {
            self.kept.push_back((epoch, position));
        }
    }
    fn commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        while self.kept.front().is_some_and(|(e, _)| *e <= epoch) {
            if let Some((_, position)) = self.kept.pop_front() {
                self.part.commit(&position)?;
            }
        }
        Ok(())
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
    fn position(&mut self) -> Result<Option<Vec<u8>>, codec::CodecError> {
        Ok(None)
    }
    fn keep(&mut self, _: u64) {}
    fn commit(&mut self, _: u64) -> Result<(), ConnectorError> {
        Ok(())
    }
}

struct Part<P> {
    name: String,
    reader: P,
    /// Not to be polled before this instant.
    wake: Option<Instant>,
    /// Whether it is read no more; from then on it waits for the commit of `ended`.
    done: bool,
    /// The epoch in which it was read last: it closes once that epoch committed.
    ended: Option<u64>,
    /// Whether it is closed.
    closed: bool,
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
            reader: Stateful {
                part: reader,
                taken: None,
                kept: VecDeque::new(),
            },
            wake: None,
            done: false,
            ended: None,
            closed: false,
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
        ended: None,
        closed: false,
        stored: None,
    }];
    Ok(build(ctx, step, parts))
}

/// What a source does when one of its epochs closes (store the positions that moved) and
/// when it is durable (commit them, and close the partitions that ended in it).
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
                part.reader.keep(epoch);
            }
        }
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<(), FlowError> {
        for part in self.parts.iter_mut().filter(|p| !p.closed) {
            part.reader.commit(epoch).map_err(|e| {
                FlowError::connector(
                    self.step,
                    self.worker,
                    &part.name,
                    format!("cannot commit the position of epoch {epoch}"),
                    e,
                )
            })?;
            if part.ended.is_some_and(|ended| ended <= epoch) {
                part.closed = true;
                part.reader.finish().map_err(|e| {
                    FlowError::connector(
                        self.step,
                        self.worker,
                        &part.name,
                        "cannot close the partition",
                        e,
                    )
                })?;
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
    let meter = ctx.meter_plan(step).source_meter();

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
    // With recovery, the cluster's durable frontier decides commits; it leads to no output.
    let mut durable = ctx
        .durable
        .clone()
        .map(|d| builder.new_input_connection(d, Pipeline, std::iter::empty::<(usize, Antichain<u64>)>()));

    builder.build(move |mut caps| {
        // The snapshot output, when there is one, is the last: its capability too.
        let port = snap_output.and_then(|o| caps.pop().map(|c| SnapshotPort::new(o, c, start_epoch)));
        let mut cap: Option<Capability<u64>> = caps.pop();
        if let Some(c) = cap.as_mut() {
            c.downgrade(&start_epoch);
        }
        let mut epochs = Epochs::new(start_epoch, port, true);
        let mut epoch = start_epoch;
        let mut epoch_ends = Instant::now() + interval;
        let mut batch = Vec::new();
        move |frontiers| {
            enter_step(step_index);
            if let Some(d) = durable.as_mut() {
                d.for_each(|_, data| data.clear());
            }
            if failure.should_stop() {
                return;
            }
            if durable.is_some() {
                let durable_frontier = frontiers[0].frontier().first().copied();
                let mut steps = Positions {
                    parts: &mut parts,
                    step: &step_id,
                    worker: me,
                };
                if let Err(err) = epochs.durable(durable_frontier, &mut steps) {
                    failure.fail(err);
                    return;
                }
            }
            let Some(out_cap) = cap.as_mut() else { return };
            if stop.load(Ordering::Relaxed) {
                // Graceful stop: the epoch closes with everything emitted so far, the
                // positions are its snapshot, and the input ends without reading more;
                // the partitions close after their commit.
                epochs.touch(epoch);
                for part in parts.iter_mut().filter(|p| !p.done) {
                    part.done = true;
                    part.ended = Some(epoch);
                }
                if let Err(err) = close(&mut epochs, None, &mut parts, &step_id, me) {
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
            meter.input_epoch(epoch);
            for i in 0..parts.len() {
                let part = &mut parts[i];
                if part.done || part.wake.is_some_and(|w| w > now) {
                    continue;
                }
                let status = match meter.time(|| part.reader.poll(&mut batch)) {
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
                meter.source_batch(batch.len());
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
                        // Closed once the epoch of its last items committed.
                        part.done = true;
                        part.ended = Some(epoch);
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
                tracing::info!(step = %step_id, worker = me, parts = parts.len(), "input '{step_id}' reached the end of its input on worker {me}");
                meter.frontier(None);
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
