//! Sink operators: writes, pre-commits and commits through the epoch life cycle.
//!
//! A sink step's operator holds the partitions its worker writes ([`LocalSink`]): the one
//! partition of a dynamic sink, or the fixed partitions whose primary it is, to which keyed
//! items are routed. For every epoch the operator writes its items, pre-commits when the
//! epoch closes (with recovery on, the positions of the partitions that wrote are the
//! epoch's snapshot, taken after the pre-commit), and commits once the cluster's durable
//! frontier passes the epoch ([`super::epochs`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::progress::Antichain;

use crate::errors::{Cause, DYNAMIC_PART, FlowError};
use crate::flow::{StepId, StepInfo};
use crate::outputs::{DynamicSink, FixedPartitionedSink, StatefulSinkPartition, StatelessSinkPartition};
use crate::recovery::{Route, Snapshot, codec};

use super::epochs::{EpochSteps, Epochs, SnapshotPort};
use super::failure::enter_step;
use super::{BuildCtx, TStream};

/// The partitions one worker writes for a sink step.
trait LocalSink<T>: 'static {
    /// Writes items of the open epoch.
    fn write(&mut self, items: &mut Vec<T>) -> Result<(), FlowError>;

    /// `epoch` closed: pre-commits every partition that wrote since the last close, and
    /// (with recovery on) pushes their positions.
    fn pre_commit(&mut self, epoch: u64, snapshots: Option<&mut Vec<Snapshot>>) -> Result<(), FlowError>;

    /// `epoch` is durable: commits the partitions that pre-committed it.
    fn commit(&mut self, epoch: u64) -> Result<(), FlowError>;

    /// The end of the input, after the last commit.
    fn close(&mut self) -> Result<(), FlowError>;
}

/// The sink operator's steps of an epoch.
struct SinkSteps<'a, L> {
    local: &'a mut L,
    recovering: bool,
}

impl<T, L: LocalSink<T>> EpochSteps<T> for SinkSteps<'_, L> {
    fn apply(&mut self, _epoch: u64, items: &mut Vec<T>) -> Result<(), FlowError> {
        self.local.write(items)
    }

    fn close(&mut self, epoch: u64, snapshots: &mut Vec<Snapshot>) -> Result<(), FlowError> {
        self.local.pre_commit(epoch, self.recovering.then_some(snapshots))
    }

    fn commit(&mut self, epoch: u64) -> Result<(), FlowError> {
        self.local.commit(epoch)
    }
}

/// Builds a sink step's operator on this worker around its local partitions.
fn sink_operator<'s, T, P, L>(
    ctx: &mut BuildCtx<'s>,
    step: &StepInfo,
    stream: TStream<'s, T>,
    pact: P,
    mut local: L,
) where
    T: crate::Data,
    P: ParallelizationContract<u64, Vec<T>>,
    L: LocalSink<T>,
{
    let step_index = ctx.step_index;
    let start = ctx.config.start_epoch;
    let recovering = ctx.snapshots_enabled();
    let mut builder = OperatorBuilder::new(step.id.to_string(), ctx.scope);
    // Declared first, so that the inputs below can say how they connect to it.
    let (snap_output, snap_stream) = recovering.then(|| builder.new_output::<Vec<Snapshot>>()).unzip();
    let mut input = builder.new_input(stream, pact);
    // The durable frontier only decides commits: it leads to no output.
    let mut durable = ctx
        .durable
        .clone()
        .map(|d| builder.new_input_connection(d, Pipeline, [(0, Antichain::new())]));
    let failure = ctx.failure.clone();
    builder.build(move |mut caps| {
        // The snapshot output, when there is one, is the last: its capability too.
        let port = snap_output.and_then(|o| caps.pop().map(|c| SnapshotPort::new(o, c, start)));
        let mut epochs = Epochs::new(start, port, true);
        let mut closed = false;
        move |frontiers| {
            enter_step(step_index);
            if failure.should_stop() || closed {
                input.for_each(|_, data| data.clear());
                if let Some(d) = durable.as_mut() {
                    d.for_each(|_, data| data.clear());
                }
                return;
            }
            let frontier = frontiers[0].frontier().first().copied();
            let mut steps = SinkSteps {
                local: &mut local,
                recovering,
            };
            let mut result = epochs.advance(frontier, &mut steps);
            input.for_each(|cap, data| {
                let epoch = cap.least().copied().unwrap_or_default();
                if result.is_ok() {
                    result = epochs.admit(epoch, data, &mut steps);
                }
                data.clear();
            });
            let durable_frontier = match durable.as_mut() {
                Some(d) => {
                    d.for_each(|_, data| data.clear());
                    frontiers[1].frontier().first().copied()
                }
                None => frontier,
            };
            if result.is_ok() && recovering {
                result = epochs.durable(durable_frontier, &mut steps);
            }
            if result.is_ok() && frontier.is_none() && durable_frontier.is_none() && epochs.all_committed() {
                closed = true;
                result = local.close();
            }
            if let Err(err) = result {
                failure.fail(err);
            }
        }
    });
    if let Some(s) = snap_stream {
        ctx.add_snapshots(s);
    }
}

/// Writes a stream through one per-worker partition of a dynamic sink.
pub(crate) fn dynamic<'s, S: DynamicSink>(
    ctx: &mut BuildCtx<'s>,
    step: &StepInfo,
    sink: Arc<S>,
    stream: TStream<'s, S::Item>,
) -> Result<(), FlowError> {
    let me = ctx.worker_index();
    let part = sink.build(&step.id, me, ctx.worker_count()).map_err(|e| {
        FlowError::connector(
            &step.id,
            me,
            DYNAMIC_PART,
            "cannot build the worker's partition",
            e,
        )
    })?;
    let local = DynamicLocal {
        part,
        step: step.id.clone(),
        worker: me,
        dirty: false,
        prepared: Vec::new(),
    };
    sink_operator(ctx, step, stream, Pipeline, local);
    Ok(())
}

/// The one partition of a dynamic sink on a worker.
struct DynamicLocal<P> {
    part: P,
    step: StepId,
    worker: usize,
    /// Whether it wrote since its last pre-commit.
    dirty: bool,
    /// Epochs it pre-committed and has not committed, oldest first.
    prepared: Vec<u64>,
}

impl<P: StatelessSinkPartition> LocalSink<P::Item> for DynamicLocal<P> {
    fn write(&mut self, items: &mut Vec<P::Item>) -> Result<(), FlowError> {
        if items.is_empty() {
            return Ok(());
        }
        self.dirty = true;
        self.part.write_batch(items).map_err(|e| {
            FlowError::connector(&self.step, self.worker, DYNAMIC_PART, "cannot write a batch", e)
        })
    }

    fn pre_commit(&mut self, epoch: u64, _: Option<&mut Vec<Snapshot>>) -> Result<(), FlowError> {
        if !std::mem::take(&mut self.dirty) {
            return Ok(());
        }
        self.prepared.push(epoch);
        self.part.pre_commit(epoch).map_err(|e| {
            FlowError::connector(
                &self.step,
                self.worker,
                DYNAMIC_PART,
                format!("cannot pre-commit epoch {epoch}"),
                e,
            )
        })
    }

    fn commit(&mut self, epoch: u64) -> Result<(), FlowError> {
        if self.prepared.first() != Some(&epoch) {
            return Ok(());
        }
        self.prepared.remove(0);
        self.part.commit(epoch).map_err(|e| {
            FlowError::connector(
                &self.step,
                self.worker,
                DYNAMIC_PART,
                format!("cannot commit epoch {epoch}"),
                e,
            )
        })
    }

    fn close(&mut self) -> Result<(), FlowError> {
        self.part
            .close()
            .map_err(|e| FlowError::connector(&self.step, self.worker, DYNAMIC_PART, "cannot close", e))
    }
}

/// Routes a keyed stream to the primary workers of a fixed-partitioned sink's partitions.
pub(crate) fn fixed<'s, S: FixedPartitionedSink>(
    ctx: &mut BuildCtx<'s>,
    step: &StepInfo,
    sink: Arc<S>,
    stream: TStream<'s, (S::Key, S::Value)>,
) -> Result<(), FlowError> {
    let me = ctx.worker_index();
    let all: Vec<(String, usize)> = ctx.assignments.get(&step.id).cloned().unwrap_or_default();
    if all.is_empty() {
        return Err(FlowError::Partitions {
            step: step.id.to_string(),
            why: "the sink lists no partitions on any worker".into(),
        });
    }
    let resume = ctx.resume_states(&step.id);
    let mut parts: Vec<Option<SinkPart<S::Partition>>> = Vec::with_capacity(all.len());
    for (name, primary) in &all {
        if *primary != me {
            parts.push(None);
            continue;
        }
        let state = match resume.get(&codec::part_key(name)) {
            Some(stored) => {
                Some(
                    codec::decode::<S::State>(&stored.state).map_err(|e| FlowError::StateDecode {
                        step: step.id.to_string(),
                        worker: me,
                        what: "position",
                        key: name.clone(),
                        cause: Cause::new(e),
                    })?,
                )
            }
            None => None,
        };
        let writer = sink
            .build_part(&step.id, name, state)
            .map_err(|e| FlowError::connector(&step.id, me, name, "cannot open the partition", e))?;
        parts.push(Some(SinkPart {
            name: name.clone(),
            writer,
            buffer: Vec::new(),
            dirty: false,
        }));
    }
    let count = all.len() as u64;
    let primaries: Vec<u64> = all.iter().map(|(_, w)| *w as u64).collect();
    let route_sink = sink.clone();
    let route =
        Exchange::new(move |(k, _): &(S::Key, S::Value)| primaries[(route_sink.part_fn(k) % count) as usize]);
    let local = FixedLocal {
        sink,
        parts,
        step: step.id.clone(),
        worker: me,
        prepared: BTreeMap::new(),
    };
    sink_operator(ctx, step, stream, route, local);
    Ok(())
}

struct SinkPart<P: StatefulSinkPartition> {
    name: String,
    writer: P,
    buffer: Vec<P::Value>,
    /// Whether it wrote since its last pre-commit.
    dirty: bool,
}

/// The fixed partitions a worker is the primary of, by index in the name-ordered list
/// of all partitions (`None` for the others').
struct FixedLocal<S: FixedPartitionedSink> {
    sink: Arc<S>,
    parts: Vec<Option<SinkPart<S::Partition>>>,
    step: StepId,
    worker: usize,
    /// Per pre-committed epoch, the partitions that pre-committed it.
    prepared: BTreeMap<u64, Vec<usize>>,
}

impl<S: FixedPartitionedSink> FixedLocal<S> {
    fn failed(&self, part: &str, doing: impl Into<String>, e: crate::inputs::ConnectorError) -> FlowError {
        FlowError::connector(&self.step, self.worker, part, doing, e)
    }
}

impl<S: FixedPartitionedSink> LocalSink<(S::Key, S::Value)> for FixedLocal<S> {
    fn write(&mut self, items: &mut Vec<(S::Key, S::Value)>) -> Result<(), FlowError> {
        let count = self.parts.len() as u64;
        for (k, v) in items.drain(..) {
            let index = (self.sink.part_fn(&k) % count) as usize;
            if let Some(part) = self.parts[index].as_mut() {
                part.buffer.push(v);
            }
        }
        for part in self.parts.iter_mut().flatten() {
            if part.buffer.is_empty() {
                continue;
            }
            part.dirty = true;
            let written = part.writer.write_batch(&mut part.buffer);
            part.buffer.clear();
            if let Err(e) = written {
                return Err(FlowError::connector(
                    &self.step,
                    self.worker,
                    &part.name,
                    "cannot write a batch",
                    e,
                ));
            }
        }
        Ok(())
    }

    fn pre_commit(&mut self, epoch: u64, mut snapshots: Option<&mut Vec<Snapshot>>) -> Result<(), FlowError> {
        let mut prepared = Vec::new();
        for (index, part) in self.parts.iter_mut().enumerate() {
            let Some(part) = part.as_mut().filter(|p| p.dirty) else {
                continue;
            };
            part.dirty = false;
            prepared.push(index);
            if let Err(e) = part.writer.pre_commit(epoch) {
                let doing = format!("cannot pre-commit epoch {epoch}");
                return Err(FlowError::connector(
                    &self.step,
                    self.worker,
                    &part.name,
                    doing,
                    e,
                ));
            }
            if let Some(snapshots) = snapshots.as_mut() {
                let state = codec::encode(&part.writer.snapshot()).map_err(|e| FlowError::StateEncode {
                    step: self.step.to_string(),
                    worker: self.worker,
                    key: part.name.clone(),
                    cause: Cause::new(e),
                })?;
                snapshots.push(Snapshot {
                    step_id: self.step.clone(),
                    key: codec::part_key(&part.name),
                    route: Route::Partition,
                    epoch,
                    state: Some(state),
                });
            }
        }
        if !prepared.is_empty() {
            self.prepared.insert(epoch, prepared);
        }
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<(), FlowError> {
        for index in self.prepared.remove(&epoch).unwrap_or_default() {
            if let Some(part) = self.parts[index].as_mut()
                && let Err(e) = part.writer.commit(epoch)
            {
                let name = part.name.clone();
                return Err(self.failed(&name, format!("cannot commit epoch {epoch}"), e));
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), FlowError> {
        for part in self.parts.iter_mut().flatten() {
            if let Err(e) = part.writer.close() {
                let name = part.name.clone();
                return Err(FlowError::connector(
                    &self.step,
                    self.worker,
                    &name,
                    "cannot close",
                    e,
                ));
            }
        }
        Ok(())
    }
}
