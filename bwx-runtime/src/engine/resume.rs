//! Before a flow starts: the workers of the cluster learn each other's partitions, agree on
//! where recovery resumes, and send every stored state to the worker that needs it.
//!
//! Each step is a one-shot timely dataflow ([`exchange_once`]) that every worker joins,
//! so that no process needs to see another's files: a process loads only the recovery
//! partitions it holds, and a key's state travels to its owner undecoded.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use timely::ExchangeData;
use timely::dataflow::InputHandleVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{Input, Operator};
use timely::worker::Worker;

use crate::errors::FlowError;
use crate::flow::StepId;
use crate::recovery::{RecoveryStore, ResumePlan, Route, Snapshot, Stored, StoredStates, codec};

use super::control::Control;
use super::ctx::{Assignments, WorkerResume};
use super::failure::Failure;

/// The longest a waiting worker parks before it looks at the stop flag again.
const PARK_LIMIT: Duration = Duration::from_millis(50);

/// Where an item of [`exchange_once`] goes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Dest {
    /// To this worker.
    Worker(usize),
    /// To every worker.
    All,
}

/// Every worker sends `items`, each where its [`Dest`] says, and gets what was sent to it
/// (sorted, so that every worker sees the same order). `None` when the execution stopped
/// meanwhile: workers leave this step at different times, so another process may already
/// run the flow, and abort it, while this worker waits.
pub(crate) fn exchange_once<T: ExchangeData + Clone + Ord>(
    worker: &mut Worker,
    name: &str,
    items: Vec<(Dest, T)>,
    failure: &Failure,
    mut control: Option<&mut Control>,
) -> Result<Option<Vec<T>>, FlowError> {
    let peers = worker.peers();
    let got = Rc::new(RefCell::new(Vec::new()));
    // Set by the collecting operator once its input is exhausted: every item sent to this
    // worker has then arrived (a probe would only say that no more will be sent).
    let done = Rc::new(Cell::new(false));
    let mut input: InputHandleVec<u64, (usize, T)> = InputHandleVec::new();
    let (sink, finished) = (got.clone(), done.clone());
    worker.dataflow_named::<u64, _, _>(name, |scope| {
        scope.input_from(&mut input).sink(
            Exchange::new(|(to, _): &(usize, T)| *to as u64),
            "collect",
            move |(data, frontier)| {
                data.for_each(|_, items: &mut Vec<(usize, T)>| {
                    sink.borrow_mut().extend(items.drain(..).map(|(_, item)| item))
                });
                if frontier.is_empty() {
                    finished.set(true);
                }
            },
        );
    });
    for (dest, item) in items {
        match dest {
            Dest::Worker(to) => input.send((to, item)),
            Dest::All => {
                for to in 0..peers {
                    input.send((to, item.clone()));
                }
            }
        }
    }
    drop(input);
    while !done.get() {
        if let Some(control) = control.as_deref_mut() {
            control.poll(failure);
        }
        if failure.should_stop() {
            return match failure.error() {
                Some(err) => Err(err),
                None => Ok(None),
            };
        }
        worker.step_or_park(Some(PARK_LIMIT));
    }
    let mut got = got.take();
    got.sort();
    Ok(Some(got))
}

/// This worker's place among the cluster's processes.
pub(crate) struct Place {
    /// The process it runs in.
    pub(crate) process: usize,
    /// How many processes the cluster has.
    pub(crate) processes: usize,
    /// Whether it speaks for its process (the first worker of each process does).
    pub(crate) speaks: bool,
}

/// Every process tells the others what its recovery partitions hold; every worker then
/// computes the same plan from that.
pub(crate) fn agree(
    worker: &mut Worker,
    store: &dyn RecoveryStore,
    place: &Place,
    failure: &Failure,
    control: Option<&mut Control>,
) -> Result<Option<ResumePlan>, FlowError> {
    let mine = if place.speaks {
        vec![(Dest::All, (place.process, store.local_summary()?))]
    } else {
        Vec::new()
    };
    let Some(summaries) = exchange_once(worker, "bwx.recovery-plan", mine, failure, control)? else {
        return Ok(None);
    };
    if summaries.len() != place.processes {
        return Err(FlowError::Setup(format!(
            "recovery: {} of {} processes reported their partitions",
            summaries.len(),
            place.processes
        )));
    }
    let summaries: Vec<Vec<u8>> = summaries.into_iter().map(|(_, s)| s).collect();
    Ok(Some(store.plan(&summaries)?))
}

/// The process that speaks loads the state of the partitions it holds and checks it
/// against the flow; every state then travels to the worker that resumes it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn route_state(
    worker: &mut Worker,
    store: &dyn RecoveryStore,
    plan: &ResumePlan,
    place: &Place,
    steps: &[StepId],
    assignments: &Assignments,
    drop_unmatched: bool,
    failure: &Failure,
    control: Option<&mut Control>,
) -> Result<Option<WorkerResume>, FlowError> {
    let peers = worker.peers();
    let mut sends = Vec::new();
    if place.speaks {
        let rows = store.load(plan, place.process)?;
        let mut unmatched = Vec::new();
        for row in rows {
            match destination(&row, steps, assignments, peers) {
                Ok(dest) => sends.push((dest, Routed::from(row))),
                Err(what) => unmatched.push(what),
            }
        }
        if !unmatched.is_empty() {
            unmatched.sort();
            unmatched.dedup();
            if !drop_unmatched {
                return Err(FlowError::UnmatchedState(unmatched));
            }
            tracing::warn!(
                "recovery: dropping stored state that matches nothing in the flow: {}",
                unmatched.join("; ")
            );
        }
    }
    let Some(got) = exchange_once(worker, "bwx.recovery-state", sends, failure, control)? else {
        return Ok(None);
    };
    let mut resume: HashMap<StepId, StoredStates> = HashMap::new();
    for routed in got {
        resume.entry(StepId::new(routed.step)).or_default().insert(
            routed.key,
            Stored {
                route: routed.route,
                state: routed.state,
            },
        );
    }
    Ok(Some(
        resume
            .into_iter()
            .map(|(step, states)| (step, Arc::new(states)))
            .collect(),
    ))
}

/// A stored state on its way to a worker.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
struct Routed {
    step: String,
    key: Vec<u8>,
    route: Route,
    state: Vec<u8>,
}

impl From<Snapshot> for Routed {
    fn from(row: Snapshot) -> Routed {
        Routed {
            step: row.step_id.to_string(),
            key: row.key,
            route: row.route,
            state: row.state.unwrap_or_default(),
        }
    }
}

/// Where a stored state goes, or what in it matches nothing in the flow.
fn destination(
    row: &Snapshot,
    steps: &[StepId],
    assignments: &Assignments,
    peers: usize,
) -> Result<Dest, String> {
    if !steps.contains(&row.step_id) {
        return Err(format!(
            "step '{}' is not in the flow (renamed or removed?)",
            row.step_id
        ));
    }
    match row.route {
        Route::Key(hash) => Ok(Dest::Worker((hash % peers.max(1) as u64) as usize)),
        Route::KeyForAll(_) => Ok(Dest::All),
        Route::Partition => {
            let name = codec::decode_key::<String>(&row.key).map_err(|_| {
                format!(
                    "step '{}' has a stored partition named {}",
                    row.step_id,
                    crate::recovery::codec::printable_key(&row.key)
                )
            })?;
            assignments
                .get(&row.step_id)
                .and_then(|parts| parts.iter().find(|(p, _)| *p == name))
                .map(|(_, primary)| Dest::Worker(*primary))
                .ok_or_else(|| {
                    format!(
                        "step '{}' has stored partitions it no longer lists: '{name}'",
                        row.step_id
                    )
                })
        }
    }
}

/// Which worker of its holder writes each partition: a process's partitions are spread
/// over its workers in index order.
pub(crate) fn writers(plan: &ResumePlan, workers_per_process: usize) -> Vec<usize> {
    let mut next: HashMap<usize, usize> = HashMap::new();
    plan.holders
        .iter()
        .map(|&process| {
            let rank = next.entry(process).or_default();
            let worker = process * workers_per_process + *rank % workers_per_process.max(1);
            *rank += 1;
            worker
        })
        .collect()
}
