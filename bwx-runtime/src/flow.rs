//! The flow description: [`Dataflow`], [`Stream`] handles and step ids.
//!
//! Building a flow records a description only; nothing runs until an execution entry point
//! ([`crate::run_main`], [`crate::cluster_main`], [`crate::cli::main`]) instantiates it on every
//! worker, in the same deterministic order.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::engine::BuildCtx;
use crate::errors::FlowError;
pub use crate::step_id::StepId;

/// Identifies a stream within its flow.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct StreamId(pub(crate) usize);

/// What the flow knows about one step, for checks, visualisation and logs.
#[derive(Clone, Debug)]
pub struct StepInfo {
    /// The dotted step id.
    pub id: StepId,
    /// The operator that made it (`map`, `input`, `stateful_batch`, ...).
    pub operator: &'static str,
    /// Streams the step reads.
    pub inputs: Vec<StreamId>,
    /// Streams the step produces.
    pub outputs: Vec<StreamId>,
}

pub(crate) type BuildFn = dyn for<'s> Fn(&mut BuildCtx<'s>, &StepInfo) -> Result<(), FlowError> + Send + Sync;

pub(crate) struct Graph {
    pub(crate) flow_id: String,
    pub(crate) steps: Vec<StepInfo>,
    pub(crate) builders: Vec<Arc<BuildFn>>,
    pub(crate) streams: usize,
    pub(crate) errors: Vec<FlowError>,
    pub(crate) inputs: usize,
    pub(crate) outputs: usize,
    pub(crate) partitioned: Vec<(StepId, Arc<dyn PartLister>)>,
    /// The flow (scope 0) and the composite operators called in it, which nest step ids.
    pub(crate) scopes: Vec<Scope>,
    /// The scope new steps are added to.
    pub(crate) current: usize,
    /// The scope each stream belongs to (where the step that made it was added, or the
    /// caller's scope once an operator returned it), by [`StreamId`].
    pub(crate) stream_scope: Vec<usize>,
}

/// A composite operator's call: a namespace of step ids and a boundary streams cross only
/// as arguments and results.
pub(crate) struct Scope {
    /// The dotted id: the flow id, or the caller's id and the operator's name.
    pub(crate) id: StepId,
    /// The caller's scope; `None` for the flow.
    pub(crate) parent: Option<usize>,
    /// Streams of the caller given to the operator as arguments.
    pub(crate) passed_in: Vec<StreamId>,
}

/// Lists the partitions a fixed-partitioned source or sink can reach from this worker.
pub(crate) trait PartLister: Send + Sync {
    fn list_parts(&self) -> Result<Vec<String>, crate::inputs::ConnectorError>;
    /// Whether no partition anywhere in the cluster is allowed.
    fn may_be_empty(&self) -> bool;
}

/// A dataflow: a named description of sources, operators and sinks.
///
/// Cloning a `Dataflow` clones a handle to the same description.
///
/// ```
/// use bwx::prelude::*;
/// use bwx::testing::{TestingSink, TestingSource};
///
/// let flow = Dataflow::new("double");
/// let out = TestingSink::new();
/// flow.input("inp", TestingSource::new(vec![1, 2, 3]))
///     .map("double", |x| x * 2)
///     .output("out", out.clone());
/// bwx::run_main(&flow).unwrap();
/// assert_eq!(out.take(), vec![2, 4, 6]);
/// ```
#[derive(Clone)]
pub struct Dataflow {
    pub(crate) graph: Arc<Mutex<Graph>>,
}

impl fmt::Debug for Dataflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.lock();
        f.debug_struct("Dataflow")
            .field("id", &g.flow_id)
            .field("steps", &g.steps)
            .finish()
    }
}

impl Dataflow {
    /// A new, empty flow. Its id prefixes every step id (`id.step`).
    pub fn new(flow_id: &str) -> Self {
        let mut errors = Vec::new();
        if let Err(why) = check_name(flow_id) {
            errors.push(FlowError::BadStepName {
                name: flow_id.to_string(),
                why,
            });
        }
        Dataflow {
            graph: Arc::new(Mutex::new(Graph {
                flow_id: flow_id.to_string(),
                steps: Vec::new(),
                builders: Vec::new(),
                streams: 0,
                errors,
                inputs: 0,
                outputs: 0,
                partitioned: Vec::new(),
                scopes: vec![Scope {
                    id: StepId::from(flow_id),
                    parent: None,
                    passed_in: Vec::new(),
                }],
                current: 0,
                stream_scope: Vec::new(),
            })),
        }
    }

    /// The flow id.
    pub fn id(&self) -> String {
        self.lock().flow_id.clone()
    }

    /// The steps recorded so far, in order.
    pub fn steps(&self) -> Vec<StepInfo> {
        self.lock().steps.clone()
    }

    /// Checks the description: step names, duplicate ids, and at least one input and output.
    ///
    /// Every execution entry point calls this first; all problems are reported together.
    pub fn check(&self) -> Result<(), FlowError> {
        let g = self.lock();
        let mut errors = g.errors.clone();
        if g.inputs == 0 {
            errors.push(FlowError::NoInput {
                flow: g.flow_id.clone(),
            });
        }
        if g.outputs == 0 {
            errors.push(FlowError::NoOutput {
                flow: g.flow_id.clone(),
            });
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(FlowError::Many(errors)),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Graph> {
        // A poisoned lock only means another thread panicked while adding a step; the
        // description itself is still consistent because every insertion is a single push.
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a step. `build` runs once per worker when the flow is instantiated.
    pub(crate) fn add_step(
        &self,
        name: &str,
        operator: &'static str,
        inputs: Vec<StreamId>,
        outputs: usize,
        build: Arc<BuildFn>,
    ) -> StepInfo {
        let mut g = self.lock();
        let id = g.child_id(name);
        if let Err(why) = check_name(name) {
            g.errors.push(FlowError::BadStepName {
                name: name.to_string(),
                why,
            });
        }
        g.check_unique(&id, operator);
        for input in &inputs {
            if let Err(problem) = g.readable(*input, g.current) {
                let err = FlowError::OutOfScope {
                    step: id.to_string(),
                    problem,
                };
                g.errors.push(err);
            }
        }
        let current = g.current;
        let outputs = (0..outputs)
            .map(|_| {
                g.streams += 1;
                g.stream_scope.push(current);
                StreamId(g.streams - 1)
            })
            .collect();
        let info = StepInfo {
            id,
            operator,
            inputs,
            outputs,
        };
        g.steps.push(info.clone());
        g.builders.push(build);
        info
    }

    pub(crate) fn note_input(&self) {
        self.lock().inputs += 1;
    }

    pub(crate) fn note_output(&self) {
        self.lock().outputs += 1;
    }

    pub(crate) fn note_partitioned(&self, step: StepId, lister: Arc<dyn PartLister>) {
        self.lock().partitioned.push((step, lister));
    }

    pub(crate) fn stream<T>(&self, id: StreamId) -> Stream<T> {
        Stream {
            flow: self.clone(),
            id,
            _item: PhantomData,
        }
    }
}

impl Graph {
    /// The id of `name` in the current scope: `flow.name`, or `flow.operator.name`.
    pub(crate) fn child_id(&self, name: &str) -> StepId {
        StepId::new(format!("{}.{}", self.scopes[self.current].id, name))
    }

    /// Records an error if `id` is the id of a step or operator already.
    pub(crate) fn check_unique(&mut self, id: &StepId, operator: &'static str) {
        let first = match self.steps.iter().position(|s| s.id == *id) {
            Some(index) => Some((self.steps[index].operator, index)),
            None => self
                .scopes
                .iter()
                .any(|s| s.id == *id)
                .then_some(("a composite operator", self.steps.len())),
        };
        if let Some((first, first_index)) = first {
            self.errors.push(FlowError::DuplicateStep {
                id: id.to_string(),
                first,
                first_index,
                second: operator,
                second_index: self.steps.len(),
            });
        }
    }

    /// Whether a step of `scope` may read `stream`: it belongs to the scope, or the scope's
    /// operator was given it. Otherwise, why not.
    pub(crate) fn readable(&self, stream: StreamId, scope: usize) -> Result<(), String> {
        let home = self.stream_scope.get(stream.0).copied().unwrap_or(0);
        if home == scope || self.scopes[scope].passed_in.contains(&stream) {
            return Ok(());
        }
        let maker = self
            .steps
            .iter()
            .find(|s| s.outputs.contains(&stream))
            .map_or_else(|| "?".to_string(), |s| s.id.to_string());
        let mut inner = home;
        while let Some(parent) = self.scopes[inner].parent {
            if parent == scope {
                return Err(format!(
                    "reads the stream of '{maker}', made inside operator '{}' and not returned by it; return it from the operator to use it here",
                    self.scopes[inner].id
                ));
            }
            inner = parent;
        }
        Err(format!(
            "reads the stream of '{maker}', made outside operator '{}'; pass it to the operator as an argument",
            self.scopes[scope].id
        ))
    }
}

pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("a step id must not be empty")
    } else if name.contains('.') {
        Err("a step id must not contain '.', which separates the parts of a dotted id")
    } else if name.chars().any(char::is_whitespace) {
        Err("a step id must not contain white space")
    } else {
        Ok(())
    }
}

/// A typed stream of items of type `T` in a [`Dataflow`].
///
/// A keyed stream is a `Stream<(K, V)>` with `K: Key`. Operators are methods; see
/// [`crate::operators`]. Using the same stream twice gives each consumer every item.
pub struct Stream<T> {
    pub(crate) flow: Dataflow,
    pub(crate) id: StreamId,
    _item: PhantomData<fn() -> T>,
}

impl<T> Clone for Stream<T> {
    fn clone(&self) -> Self {
        Stream {
            flow: self.flow.clone(),
            id: self.id,
            _item: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Stream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id.0)
            .field("item", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T> Stream<T> {
    /// The flow this stream belongs to.
    pub fn flow(&self) -> &Dataflow {
        &self.flow
    }

    /// The stream's id within its flow.
    pub fn stream_id(&self) -> StreamId {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestingSink, TestingSource};

    #[test]
    fn duplicate_step_names_both_steps() {
        let flow = Dataflow::new("f");
        let s = flow.input("inp", TestingSource::new(vec![1u32]));
        let a = s.map("x", |x| x + 1);
        let b = a.filter("x", |x| *x > 0);
        b.output("out", TestingSink::new());
        let err = flow.check().unwrap_err().to_string();
        assert!(err.contains("duplicate step id 'f.x'"), "{err}");
        assert!(err.contains("map") && err.contains("filter"), "{err}");
    }

    #[test]
    fn an_inspector_counts_as_an_output() {
        let flow = Dataflow::new("f");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        flow.input("inp", TestingSource::new(vec![1u32, 2]))
            .inspect("see", move |_step, x| log.lock().unwrap().push(*x));
        flow.check().unwrap();
        crate::run_main(&flow).unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![1, 2]);
    }

    #[test]
    fn inspect_debug_numbers_the_first_epoch_1() {
        let flow = Dataflow::new("f");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        flow.input("inp", TestingSource::new(vec![7u32]))
            .inspect_debug("see", move |_step, x, epoch, _worker| {
                log.lock().unwrap().push((*x, epoch))
            });
        crate::run_main(&flow).unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![(7, 1)]);
        // With recovery, a store that holds nothing starts there too.
        seen.lock().unwrap().clear();
        let store = crate::testing::MemoryStore::new(1);
        crate::run_main_with(&flow, crate::RunConfig::default().recovery(store)).unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![(7, 1)]);
        // And a fresh SQLite store.
        seen.lock().unwrap().clear();
        let dir = tempfile::tempdir().unwrap();
        crate::recovery::init_dir(dir.path(), 2).unwrap();
        let store =
            crate::recovery::SqliteRecovery::open(dir.path(), std::time::Duration::ZERO, "f").unwrap();
        crate::run_main_with(&flow, crate::RunConfig::default().recovery(store)).unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![(7, 1)]);
    }

    #[test]
    fn missing_output_and_bad_name_are_reported_together() {
        let flow = Dataflow::new("f");
        flow.input("in put", TestingSource::new(vec![1u32]));
        let err = flow.check().unwrap_err().to_string();
        assert!(err.contains("white space"), "{err}");
        assert!(err.contains("no output"), "{err}");
    }
}
