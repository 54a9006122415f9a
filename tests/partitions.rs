//! Partitioned sources and sinks across workers: primaries, routing by key, dynamic parts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use bwx::inputs::{BatchStatus, ConnectorError};
use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};

/// Per partition: the workers that wrote to it and the values written.
type Written = BTreeMap<String, (BTreeSet<usize>, Vec<u32>)>;

/// Records which worker opened each partition and which values reached it.
#[derive(Clone, Default)]
struct RecordingSink {
    parts: Arc<Mutex<Written>>,
}

struct RecordingPart {
    name: String,
    sink: RecordingSink,
    written: usize,
}

impl FixedPartitionedSink for RecordingSink {
    type Key = u32;
    type Value = u32;
    type State = usize;
    type Partition = RecordingPart;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok(vec!["p0".into(), "p1".into(), "p2".into()])
    }

    fn part_fn(&self, key: &u32) -> u64 {
        u64::from(*key)
    }

    fn build_part(
        &self,
        _step: &StepId,
        part: &str,
        resume: Option<usize>,
    ) -> Result<RecordingPart, ConnectorError> {
        assert!(resume.is_none());
        Ok(RecordingPart {
            name: part.to_string(),
            sink: self.clone(),
            written: 0,
        })
    }
}

thread_local! {
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

impl StatefulSinkPartition for RecordingPart {
    type Value = u32;
    type State = usize;

    fn write_batch(&mut self, values: &mut Vec<u32>) -> Result<(), ConnectorError> {
        self.written += values.len();
        let mut parts = self.sink.parts.lock().unwrap();
        let entry = parts.entry(self.name.clone()).or_default();
        entry.0.insert(WORKER.with(|w| w.get()));
        entry.1.append(values);
        Ok(())
    }

    fn snapshot(&self) -> usize {
        self.written
    }
}

#[test]
fn a_fixed_sink_routes_by_part_fn_and_each_part_has_one_writer() {
    let flow = Dataflow::new("route");
    let sink = RecordingSink::default();
    flow.input("inp", TestingSource::new(0..300u32).batch_size(7))
        .redistribute("spread")
        .inspect_debug("where", |_, _, _, worker| WORKER.with(|w| w.set(worker)))
        .key_on("key", |x| *x)
        .output("out", sink.clone());
    bwx::run_workers(&flow, 2, RunConfig::default()).unwrap();
    let parts = sink.parts.lock().unwrap();
    let mut all = Vec::new();
    for (i, name) in ["p0", "p1", "p2"].iter().enumerate() {
        let (writers, values) = &parts[*name];
        assert_eq!(writers.len(), 1, "partition {name} written by {writers:?}");
        assert!(values.iter().all(|v| *v as usize % 3 == i), "{name}: {values:?}");
        all.extend(values.iter().copied());
    }
    all.sort();
    assert_eq!(all, (0..300).collect::<Vec<_>>());
}

/// A dynamic source: every worker emits its own index a few times.
struct PerWorker;

struct PerWorkerPart {
    worker: usize,
    left: usize,
}

impl DynamicSource for PerWorker {
    type Item = usize;
    type Partition = PerWorkerPart;

    fn build(&self, _step: &StepId, worker: usize, _workers: usize) -> Result<PerWorkerPart, ConnectorError> {
        Ok(PerWorkerPart { worker, left: 3 })
    }
}

impl StatelessSourcePartition for PerWorkerPart {
    type Item = usize;

    fn next_batch(&mut self, batch: &mut Vec<usize>) -> Result<BatchStatus, ConnectorError> {
        batch.push(self.worker);
        self.left -= 1;
        Ok(if self.left == 0 {
            BatchStatus::Eof
        } else {
            BatchStatus::Active
        })
    }
}

#[test]
fn a_dynamic_source_runs_on_every_worker() {
    let flow = Dataflow::new("dyn");
    let out = TestingSink::new();
    flow.input("inp", PerWorker).output("out", out.clone());
    bwx::run_workers(&flow, 3, RunConfig::default()).unwrap();
    let mut got = out.take();
    got.sort();
    assert_eq!(got, vec![0, 0, 0, 1, 1, 1, 2, 2, 2]);
}

struct Failing;

impl DynamicSource for Failing {
    type Item = usize;
    type Partition = PerWorkerPart;

    fn build(&self, _step: &StepId, worker: usize, _workers: usize) -> Result<PerWorkerPart, ConnectorError> {
        if worker == 1 {
            Err("no such device".into())
        } else {
            Ok(PerWorkerPart { worker, left: 1 })
        }
    }
}

#[test]
fn a_connector_error_names_step_worker_and_partition() {
    let flow = Dataflow::new("bad");
    flow.input("inp", Failing)
        .map("m", |x: usize| x)
        .output("out", TestingSink::new());
    let err = bwx::run_workers(&flow, 2, RunConfig::default())
        .unwrap_err()
        .report();
    assert!(
        err.contains("'bad.inp'") && err.contains("worker 1") && err.contains("no such device"),
        "{err}"
    );
}

#[test]
fn flows_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Dataflow>();
    check::<Stream<(String, u64)>>();
}
