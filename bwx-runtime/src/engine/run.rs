//! Instantiating a flow on one timely worker and stepping it to completion.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{ConnectLoop, Feedback, Input, Operator, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};
use timely::worker::Worker;

use crate::errors::FlowError;
use crate::flow::{Dataflow, PartLister, StepId};
use crate::recovery::{RecoveryStore, codec};

use super::config::ExecConfig;
use super::control::Control;
use super::ctx::{Assignments, BuildCtx};
use super::durability;
use super::failure::{self, Failure};

/// The longest a waiting worker parks before it looks at the stop flag again.
const PARK_LIMIT: Duration = Duration::from_millis(50);

/// Builds `flow` on this worker and runs it until every step is done or the execution stops.
pub(crate) fn run_worker(
    worker: &mut Worker,
    flow: &Dataflow,
    config: Arc<ExecConfig>,
    failure: Arc<Failure>,
    mut control: Option<&mut Control>,
) -> Result<(), FlowError> {
    let (steps, builders, streams, partitioned) = {
        let g = flow.lock();
        (
            g.steps.clone(),
            g.builders.clone(),
            g.streams,
            g.partitioned.clone(),
        )
    };
    let step_ids: Arc<[StepId]> = steps.iter().map(|s| s.id.clone()).collect();
    let _guard = failure::enter_worker(failure.clone(), worker.index(), step_ids.clone());

    let mut listed: Vec<(usize, String)> = Vec::new();
    for (i, (step, lister)) in partitioned.iter().enumerate() {
        let parts = lister
            .list_parts()
            .map_err(|e| FlowError::connector(step, worker.index(), "-", "cannot list the partitions", e));
        match parts {
            Ok(parts) => listed.extend(parts.into_iter().map(|p| (i, p))),
            Err(err) => {
                failure.fail(err.clone());
                return Err(err);
            }
        }
    }
    let assignments = if partitioned.is_empty() {
        Assignments::new()
    } else {
        let Some(seen) = discover_parts(worker, listed, &failure, control.as_deref_mut())? else {
            // Another process aborted before this worker had learned every partition.
            return Ok(());
        };
        assign_primaries(
            &partitioned.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
            seen,
        )
    };
    let checked = check_partitions(&partitioned, &assignments).and_then(|()| match &config.recovery {
        Some(store) => check_stored(
            &**store,
            &step_ids,
            &assignments,
            config.drop_unmatched_state,
            worker.index(),
        ),
        None => Ok(()),
    });
    if let Err(err) = checked {
        failure.fail(err.clone());
        return Err(err);
    }
    let assignments = Arc::new(assignments);

    let built: Result<(), FlowError> = worker.dataflow_named::<u64, _, _>(flow.id().as_str(), |scope| {
        let mut ctx = BuildCtx::new(
            scope,
            &steps,
            streams,
            config.clone(),
            failure.clone(),
            assignments.clone(),
        );
        // With recovery, the durable frontier comes back from the durability operator,
        // which is built last, through a feedback edge.
        let feedback = config.recovery.as_ref().map(|_| scope.feedback::<Vec<()>>(0));
        ctx.durable = feedback.as_ref().map(|(_, stream)| stream.clone());
        let mut built = Ok(());
        for (index, (info, build)) in steps.iter().zip(builders.iter()).enumerate() {
            ctx.step_index = index;
            failure::enter_step(index);
            built = build(&mut ctx, info);
            if built.is_err() {
                break;
            }
        }
        if let (Some(store), Some((handle, stream))) = (&config.recovery, feedback) {
            let snapshots = std::mem::take(&mut ctx.snapshots);
            let durable = built
                .clone()
                .and_then(|()| durability::attach(&ctx, snapshots, stream, store.clone()));
            match durable {
                Ok(durable) => durable.connect_loop(handle),
                Err(err) => {
                    // The loop must be closed even when the flow is not built: an
                    // unconnected feedback operator cannot be dropped.
                    timely::dataflow::operators::generic::operator::empty(ctx.scope).connect_loop(handle);
                    built = Err(err);
                }
            }
        }
        built
    });
    if let Err(err) = built {
        failure.fail(err.clone());
        return Err(err);
    }
    loop {
        if let Some(control) = control.as_deref_mut() {
            control.poll(&failure);
        }
        if failure.should_stop() || !worker.step_or_park(Some(PARK_LIMIT)) {
            break;
        }
    }
    Ok(())
}

/// Every fixed-partitioned source and sink must have partitions somewhere in the cluster,
/// unless the source says it may be empty: an empty listing is more often a wrong path or
/// topic than an empty input.
fn check_partitions(
    partitioned: &[(StepId, Arc<dyn PartLister>)],
    assignments: &Assignments,
) -> Result<(), FlowError> {
    for (step, lister) in partitioned {
        if assignments.get(step).is_none_or(Vec::is_empty) && !lister.may_be_empty() {
            return Err(FlowError::Partitions {
                step: step.to_string(),
                why: "no worker of the cluster lists any partition (a wrong path, topic or address?); \
                      a source that may be empty says so with `may_be_empty`"
                    .into(),
            });
        }
    }
    Ok(())
}

/// Stored state must match the flow: a step that no longer exists, or a source or sink
/// partition that is no longer listed, would be dropped silently. It is an error, unless
/// the run was told to drop it (then a warning names what is dropped).
fn check_stored(
    store: &dyn RecoveryStore,
    steps: &[StepId],
    assignments: &Assignments,
    drop_unmatched: bool,
    worker: usize,
) -> Result<(), FlowError> {
    let mut unmatched = Vec::new();
    for step in store.stored_steps() {
        if !steps.contains(&step) {
            unmatched.push(format!("step '{step}' is not in the flow (renamed or removed?)"));
            continue;
        }
        let Some(parts) = assignments.get(&step) else {
            continue;
        };
        let mut gone: Vec<String> = store
            .resume_states(&step)?
            .keys()
            .filter_map(|key| match codec::decode_key::<String>(key) {
                Ok(name) if parts.iter().any(|(p, _)| *p == name) => None,
                Ok(name) => Some(format!("'{name}'")),
                Err(_) => Some(format!(
                    "a partition stored as {}",
                    crate::recovery::inspect::printable_key(key)
                )),
            })
            .collect();
        if !gone.is_empty() {
            gone.sort();
            unmatched.push(format!(
                "step '{step}' has stored partitions it no longer lists: {}",
                gone.join(", ")
            ));
        }
    }
    if unmatched.is_empty() {
        return Ok(());
    }
    if drop_unmatched {
        if worker == 0 {
            tracing::warn!(
                "recovery: dropping stored state that matches nothing in the flow: {}",
                unmatched.join("; ")
            );
        }
        return Ok(());
    }
    Err(FlowError::UnmatchedState(unmatched))
}

/// A partitioned step's index, one of its partitions, and a worker that can reach it.
type Reach = (usize, String, usize);

/// Every worker lists the partitions it can reach; all of them learn every list. `None`
/// when the execution was aborted meanwhile: workers leave this step at different times,
/// so another process may already run the flow, and abort it, while this worker waits.
fn discover_parts(
    worker: &mut Worker,
    listed: Vec<(usize, String)>,
    failure: &Failure,
    mut control: Option<&mut Control>,
) -> Result<Option<Vec<Reach>>, FlowError> {
    let index = worker.index();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let probe = ProbeHandle::new();
    let mut input: InputHandleVec<u64, Reach> = InputHandleVec::new();
    let sink = seen.clone();
    worker.dataflow_named::<u64, _, _>("bwx.partition-discovery", |scope| {
        scope.input_from(&mut input).broadcast().probe_with(&probe).sink(
            Pipeline,
            "collect",
            move |(data, _frontier)| {
                data.for_each(|_cap, items: &mut Vec<Reach>| sink.borrow_mut().extend(items.drain(..)));
            },
        );
    });
    for (step, part) in listed {
        input.send((step, part, index));
    }
    drop(input);
    while !probe.done() {
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
    let mut seen = seen.take();
    seen.sort();
    Ok(Some(seen))
}

/// Picks the primary worker of every partition, identically on all workers: partitions in
/// name order, each to the worker that can reach it and has the fewest primaries so far
/// (the lowest index on a tie). When every worker reaches every partition, partition `i`
/// in name order goes to worker `i % workers`.
fn assign_primaries(steps: &[StepId], seen: Vec<Reach>) -> Assignments {
    let mut per_step: Vec<Vec<(String, Vec<usize>)>> = vec![Vec::new(); steps.len()];
    for (step, part, worker) in seen {
        let parts = &mut per_step[step];
        match parts.last_mut() {
            Some((name, workers)) if *name == part => workers.push(worker),
            _ => parts.push((part, vec![worker])),
        }
    }
    let mut out = HashMap::new();
    for (step, parts) in steps.iter().zip(per_step) {
        let mut load: HashMap<usize, usize> = HashMap::new();
        let assigned = parts
            .into_iter()
            .map(|(part, mut workers)| {
                workers.sort_unstable();
                workers.dedup();
                let primary = workers
                    .iter()
                    .copied()
                    .min_by_key(|w| (load.get(w).copied().unwrap_or(0), *w))
                    .unwrap_or(0);
                *load.entry(primary).or_insert(0) += 1;
                (part, primary)
            })
            .collect();
        out.insert(step.clone(), assigned);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_spread_evenly_when_every_worker_sees_every_part() {
        let step = StepId::new("f.inp".into());
        let mut seen = Vec::new();
        for p in 0..4 {
            for w in 0..2 {
                seen.push((0, format!("p{p}"), w));
            }
        }
        seen.sort();
        let a = assign_primaries(std::slice::from_ref(&step), seen);
        let got: Vec<usize> = a[&step].iter().map(|(_, w)| *w).collect();
        assert_eq!(got, vec![0, 1, 0, 1]);
    }

    #[test]
    fn a_partition_goes_to_a_worker_that_reaches_it() {
        let step = StepId::new("f.inp".into());
        let seen = vec![
            (0, "a".to_string(), 1),
            (0, "b".to_string(), 1),
            (0, "c".to_string(), 0),
        ];
        let a = assign_primaries(std::slice::from_ref(&step), seen);
        assert_eq!(a[&step], vec![("a".into(), 1), ("b".into(), 1), ("c".into(), 0)]);
    }
}
