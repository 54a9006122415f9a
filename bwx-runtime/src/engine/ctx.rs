//! The per-worker build context and its table of typed timely streams.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;

use timely::dataflow::{Scope, Stream};

use crate::errors::FlowError;
use crate::flow::{StepId, StepInfo, StreamId};
use crate::recovery::{Snapshot, StoredStates};

use super::config::ExecConfig;
use super::failure::Failure;

/// A timely stream of bwx items: epochs are `u64`, containers are `Vec<T>`.
pub(crate) type TStream<'s, T> = Stream<'s, u64, Vec<T>>;

/// One slot of the stream table, type-erased so the table can hold every item type.
trait ErasedStream<'s> {
    fn item_type(&self) -> TypeId;
    fn item_name(&self) -> &'static str;
}

struct Typed<'s, T: 'static>(TStream<'s, T>);

impl<'s, T: 'static> ErasedStream<'s> for Typed<'s, T> {
    fn item_type(&self) -> TypeId {
        TypeId::of::<T>()
    }
    fn item_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

fn downcast<'a, 's, T: 'static>(slot: &'a dyn ErasedStream<'s>) -> Option<&'a Typed<'s, T>> {
    if slot.item_type() == TypeId::of::<T>() {
        // SAFETY: `Typed<'s, T>` is the only implementor of `ErasedStream<'s>`, and `T`
        // (compared by `TypeId` above) together with the table's fixed lifetime `'s`
        // determines the concrete type, so this is the same cast `dyn Any` performs.
        Some(unsafe { &*(slot as *const dyn ErasedStream<'s> as *const Typed<'s, T>) })
    } else {
        None
    }
}

/// Partition name → primary worker, for every fixed-partitioned step, the same on all workers.
pub(crate) type Assignments = HashMap<StepId, Vec<(String, usize)>>;

/// The recovery state one worker resumes with: per step, the stored states routed to it.
pub(crate) type WorkerResume = HashMap<StepId, Arc<StoredStates>>;

/// What a step's build function gets: the scope, the stream table and the execution.
pub(crate) struct BuildCtx<'s> {
    pub(crate) scope: Scope<'s, u64>,
    slots: Vec<Option<Box<dyn ErasedStream<'s> + 's>>>,
    /// Per stream: whether any step reads it.
    read: Vec<bool>,
    pub(crate) config: Arc<ExecConfig>,
    pub(crate) failure: Arc<Failure>,
    pub(crate) assignments: Arc<Assignments>,
    pub(crate) snapshots: Vec<TStream<'s, Snapshot>>,
    /// The stored states routed to this worker, per step.
    resume: WorkerResume,
    /// With recovery on: the cluster's durable frontier, for sinks to commit by.
    pub(crate) durable: Option<TStream<'s, ()>>,
    pub(crate) step_index: usize,
}

impl<'s> BuildCtx<'s> {
    pub(crate) fn new(
        scope: Scope<'s, u64>,
        steps: &[StepInfo],
        streams: usize,
        config: Arc<ExecConfig>,
        failure: Arc<Failure>,
        assignments: Arc<Assignments>,
        resume: WorkerResume,
    ) -> Self {
        let mut read = vec![false; streams];
        for id in steps.iter().flat_map(|s| &s.inputs) {
            if let Some(r) = read.get_mut(id.0) {
                *r = true;
            }
        }
        BuildCtx {
            scope,
            slots: (0..streams).map(|_| None).collect(),
            read,
            config,
            failure,
            assignments,
            snapshots: Vec::new(),
            resume,
            durable: None,
            step_index: 0,
        }
    }

    pub(crate) fn worker_index(&self) -> usize {
        self.scope.index()
    }

    pub(crate) fn worker_count(&self) -> usize {
        self.scope.peers()
    }

    /// Whether stateful steps must produce snapshots (recovery is on).
    pub(crate) fn snapshots_enabled(&self) -> bool {
        self.config.recovery.is_some()
    }

    /// The stored states of `step` routed to this worker (empty without recovery).
    pub(crate) fn resume_states(&self, step: &StepId) -> Arc<StoredStates> {
        self.resume.get(step).cloned().unwrap_or_default()
    }

    /// The timely stream behind a bwx stream.
    pub(crate) fn get<T: Clone + 'static>(
        &self,
        step: &StepInfo,
        id: StreamId,
    ) -> Result<TStream<'s, T>, FlowError> {
        let slot = self.slots.get(id.0).and_then(|s| s.as_deref()).ok_or_else(|| FlowError::Setup(format!(
            "step '{}' reads stream #{} before any step made it (streams must be used in the flow they came from)",
            step.id, id.0
        )))?;
        match downcast::<T>(slot) {
            Some(typed) => Ok(typed.0.clone()),
            None => Err(FlowError::Setup(format!(
                "step '{}' expected stream #{} to carry {} but it carries {}",
                step.id,
                id.0,
                std::any::type_name::<T>(),
                slot.item_name()
            ))),
        }
    }

    /// Whether any step of the flow reads stream `id`, so that a step can skip making
    /// items nobody reads.
    pub(crate) fn is_read(&self, id: StreamId) -> bool {
        self.read.get(id.0).copied().unwrap_or(true)
    }

    /// Records the timely stream made for a bwx stream.
    pub(crate) fn put<T: 'static>(&mut self, id: StreamId, stream: TStream<'s, T>) {
        self.slots[id.0] = Some(Box::new(Typed(stream)));
    }

    /// Adds a stream of state snapshots that the recovery hook will receive.
    pub(crate) fn add_snapshots(&mut self, stream: TStream<'s, Snapshot>) {
        self.snapshots.push(stream);
    }
}
