//! Instantiating a flow on one timely worker and stepping it to completion.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use timely::dataflow::operators::{ConnectLoop, Feedback};
use timely::worker::Worker;

use crate::errors::FlowError;
use crate::flow::{Dataflow, PartLister, StepId};

use super::config::ExecConfig;
use super::control::Control;
use super::ctx::{Assignments, BuildCtx, WorkerResume};
use super::durability;
use super::failure::{self, Failure};
use super::resume::{self, Dest, exchange_once};

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
    if let Err(err) = check_partitions(&partitioned, &assignments) {
        failure.fail(err.clone());
        return Err(err);
    }
    // With recovery, the cluster agrees where to resume and every worker receives the
    // stored state it resumes with; the execution then starts at the agreed epoch.
    let mut config = config;
    let mut resume = Resume::default();
    if let Some(store) = config.recovery.clone() {
        let wpp = config.workers_per_process;
        let place = resume::Place {
            process: worker.index() / wpp,
            processes: worker.peers() / wpp,
            speaks: worker.index().is_multiple_of(wpp),
        };
        let agreed =
            resume::agree(worker, &*store, &place, &failure, control.as_deref_mut()).and_then(|plan| {
                let Some(plan) = plan else { return Ok(None) };
                let state = resume::route_state(
                    worker,
                    &*store,
                    &plan,
                    &place,
                    &step_ids,
                    &assignments,
                    config.drop_unmatched_state,
                    &failure,
                    control.as_deref_mut(),
                )?;
                Ok(state.map(|state| (plan, state)))
            });
        match agreed {
            Ok(Some((plan, state))) => {
                config = Arc::new(ExecConfig {
                    start_epoch: plan.point.epoch,
                    ..(*config).clone()
                });
                resume = Resume {
                    writers: resume::writers(&plan, wpp),
                    plan: Some(plan),
                    state,
                };
            }
            // Another process stopped the execution meanwhile.
            Ok(None) => return Ok(()),
            Err(err) => {
                failure.fail(err.clone());
                return Err(err);
            }
        }
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
            std::mem::take(&mut resume.state),
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
        if let (Some(store), Some(plan), Some((handle, stream))) = (&config.recovery, &resume.plan, feedback)
        {
            let snapshots = std::mem::take(&mut ctx.snapshots);
            let durable = built.clone().and_then(|()| {
                durability::attach(&ctx, snapshots, stream, store.clone(), plan, &resume.writers)
            });
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
    failure::worker_running();
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

/// What a worker resumes with: the agreed plan, which worker writes each recovery
/// partition, and the stored states routed to this worker.
#[derive(Default)]
struct Resume {
    plan: Option<crate::recovery::ResumePlan>,
    writers: Vec<usize>,
    state: WorkerResume,
}

/// A partitioned step's index, one of its partitions, and a worker that can reach it.
type Reach = (usize, String, usize);

/// Every worker lists the partitions it can reach; all of them learn every list. `None`
/// when the execution was aborted meanwhile (see [`resume::exchange_once`]).
fn discover_parts(
    worker: &mut Worker,
    listed: Vec<(usize, String)>,
    failure: &Failure,
    control: Option<&mut Control>,
) -> Result<Option<Vec<Reach>>, FlowError> {
    let index = worker.index();
    let items = listed
        .into_iter()
        .map(|(step, part)| (Dest::All, (step, part, index)))
        .collect();
    exchange_once(worker, "bwx.partition-discovery", items, failure, control)
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
