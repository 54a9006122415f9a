//! Instantiating a flow on one timely worker and stepping it to completion.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Input, Operator, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};
use timely::worker::Worker;

use crate::errors::FlowError;
use crate::execution::ExecConfig;
use crate::flow::{Dataflow, StepId};

use super::control::Control;
use super::ctx::{Assignments, BuildCtx};
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

    let listed: Vec<(usize, String)> = partitioned
        .iter()
        .enumerate()
        .flat_map(|(i, (_, lister))| lister.list_parts().into_iter().map(move |p| (i, p)))
        .collect();
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
    let assignments = Arc::new(assignments);
    if let Some(recovery) = &config.recovery
        && let Err(err) = recovery.begin(worker.index(), worker.peers(), &step_ids)
    {
        failure.fail(err.clone());
        return Err(err);
    }

    let built: Result<(), FlowError> = worker.dataflow_named::<u64, _, _>(flow.id().as_str(), |scope| {
        let mut ctx = BuildCtx::new(
            scope,
            &steps,
            streams,
            config.clone(),
            failure.clone(),
            assignments.clone(),
        );
        for (index, (info, build)) in steps.iter().zip(builders.iter()).enumerate() {
            ctx.step_index = index;
            failure::enter_step(index);
            build(&mut ctx, info)?;
        }
        if let Some(recovery) = &config.recovery {
            let snapshots = std::mem::take(&mut ctx.snapshots);
            super::sink::attach_snapshots(&ctx, snapshots, recovery.clone());
        }
        Ok(())
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
