//! `MemoryStore`: a recovery store in memory, to test stateful steps and connectors
//! without files.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::recovery::{
    PartitionWriter, Progress, RecoveryError, RecoveryStore, ResumePlan, ResumePoint, Route, Snapshot,
};
use crate::step_id::StepId;

/// A recovery store that keeps its partitions in memory, with the same resume rule as the
/// SQLite store: an execution resumes at the least progress of any partition, with each
/// key's newest state before it. [`written`](Self::written) shows every snapshot written,
/// and [`resume`](Self::resume) opens the next execution over the same contents. It serves
/// the workers of one process.
///
/// ```
/// use bwx::prelude::*;
/// use bwx::testing::{MemoryStore, TestingEvent, TestingSink, TestingSource};
///
/// let run = |store| {
///     let flow = Dataflow::new("f");
///     let out = TestingSink::new();
///     let events = vec![
///         TestingEvent::Item(("a".to_string(), 1)),
///         TestingEvent::Eof,
///         TestingEvent::Item(("a".to_string(), 2)),
///     ];
///     flow.input("inp", TestingSource::from_events(events))
///         .stateful_map("sum", |s: Option<u64>, v: u64| (Some(s.unwrap_or(0) + v), s.unwrap_or(0) + v))
///         .output("out", out.clone());
///     bwx::run_workers(&flow, 2, RunConfig::default().recovery(store)).unwrap();
///     out.take()
/// };
/// let store = MemoryStore::new(3);
/// assert_eq!(run(store.clone()), vec![("a".to_string(), 1)]);
/// assert!(store.written().iter().any(|s| s.step_id.as_str() == "f.sum"));
/// // The next execution continues after the EOF, with the stored sum.
/// assert_eq!(run(store.resume()), vec![("a".to_string(), 3)]);
/// ```
pub struct MemoryStore {
    contents: Arc<Mutex<Contents>>,
    point: ResumePoint,
    /// The state at the resume point, until it is loaded.
    resume: Mutex<Option<Vec<Snapshot>>>,
}

/// What the partitions hold.
struct Contents {
    partitions: Vec<Partition>,
    /// Every snapshot written, in order.
    written: Vec<Snapshot>,
    /// The executions opened so far.
    executions: u64,
}

/// A key's stored states, by epoch, with their route (`None`: discarded).
type History = BTreeMap<u64, (Route, Option<Vec<u8>>)>;

#[derive(Default)]
struct Partition {
    /// Per (step, key), its history.
    rows: BTreeMap<(StepId, Vec<u8>), History>,
    /// The execution that last wrote, and its progress here.
    progress: Option<(u64, Progress)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryStore {
    /// An empty store of `partitions` partitions (at least 1).
    pub fn new(partitions: usize) -> Arc<MemoryStore> {
        let contents = Contents {
            partitions: (0..partitions.max(1)).map(|_| Partition::default()).collect(),
            written: Vec::new(),
            executions: 0,
        };
        Arc::new(MemoryStore::open(Arc::new(Mutex::new(contents))))
    }

    /// The next execution over the same contents: it resumes where this store's
    /// partitions say.
    pub fn resume(&self) -> Arc<MemoryStore> {
        Arc::new(MemoryStore::open(self.contents.clone()))
    }

    /// Stores `state` as the position of partition `part` of the source or sink `step`, as
    /// an execution that ended after epoch 0 would have, so that the next
    /// [`resume`](Self::resume) starts with it (to test a connector's resume).
    pub fn put_position(&self, step: &str, part: &str, state: Vec<u8>) {
        let key = crate::recovery::codec::part_key(part);
        let mut c = lock(&self.contents);
        let count = c.partitions.len();
        let part = crate::recovery::partition_of(step, &key, count);
        c.partitions[part]
            .rows
            .entry((StepId::new(step.to_string()), key))
            .or_default()
            .insert(0, (Route::Partition, Some(state)));
        for p in &mut c.partitions {
            if p.progress.is_none() {
                p.progress = Some((self.point.execution, Progress::Until(1)));
            }
        }
    }

    /// The epoch before which every partition holds every snapshot (the cluster's durable
    /// frontier), or `None` once every partition completed an execution.
    pub fn durable_until(&self) -> Option<u64> {
        lock(&self.contents)
            .partitions
            .iter()
            .filter_map(|p| match p.progress {
                None => Some(crate::recovery::FIRST_EPOCH),
                Some((_, Progress::Until(f))) => Some(f),
                Some((_, Progress::Complete { .. })) => None,
            })
            .min()
    }

    /// Where this execution starts.
    pub fn resume_point(&self) -> ResumePoint {
        self.point
    }

    /// Every snapshot written so far, in the order written.
    pub fn written(&self) -> Vec<Snapshot> {
        lock(&self.contents).written.clone()
    }

    fn open(contents: Arc<Mutex<Contents>>) -> MemoryStore {
        let (point, state) = {
            let mut c = lock(&contents);
            let epoch = c
                .partitions
                .iter()
                .filter_map(|p| match p.progress {
                    None => Some(crate::recovery::FIRST_EPOCH),
                    Some((_, Progress::Until(f))) => Some(f),
                    Some((_, Progress::Complete { .. })) => None,
                })
                .min()
                .unwrap_or_else(|| {
                    // Every partition completed: after everything it holds.
                    c.partitions
                        .iter()
                        .flat_map(|p| {
                            let done = match p.progress {
                                Some((_, Progress::Complete { until })) => until,
                                _ => crate::recovery::FIRST_EPOCH,
                            };
                            p.rows
                                .values()
                                .filter_map(|e| e.keys().next_back().map(|e| e + 1))
                                .chain([done])
                        })
                        .max()
                        .unwrap_or(crate::recovery::FIRST_EPOCH)
                });
            let mut state = Vec::new();
            for p in &c.partitions {
                for ((step, key), epochs) in &p.rows {
                    if let Some((at, (route, Some(value)))) = epochs.range(..epoch).next_back() {
                        state.push(Snapshot {
                            step_id: step.clone(),
                            key: key.clone(),
                            route: *route,
                            epoch: *at,
                            state: Some(value.clone()),
                        });
                    }
                }
            }
            let point = ResumePoint {
                execution: c.executions,
                epoch,
            };
            c.executions += 1;
            (point, state)
        };
        MemoryStore {
            contents,
            point,
            resume: Mutex::new(Some(state)),
        }
    }
}

impl RecoveryStore for MemoryStore {
    fn partitions(&self) -> usize {
        lock(&self.contents).partitions.len()
    }

    fn local_summary(&self) -> Result<Vec<u8>, RecoveryError> {
        Ok(Vec::new())
    }

    fn plan(&self, summaries: &[Vec<u8>]) -> Result<ResumePlan, RecoveryError> {
        if summaries.len() > 1 {
            return Err(RecoveryError::Usage(
                "a MemoryStore serves the workers of one process; use SqliteRecovery across processes".into(),
            ));
        }
        Ok(ResumePlan {
            point: self.point,
            holders: vec![0; self.partitions()],
        })
    }

    fn load(&self, _plan: &ResumePlan, _process: usize) -> Result<Vec<Snapshot>, RecoveryError> {
        lock(&self.resume)
            .take()
            .ok_or_else(|| RecoveryError::Usage("the state of this execution was loaded already".into()))
    }

    fn open_writer(
        &self,
        _plan: &ResumePlan,
        parts: Vec<usize>,
        _workers: usize,
    ) -> Result<Box<dyn PartitionWriter>, RecoveryError> {
        Ok(Box::new(MemoryWriter {
            contents: self.contents.clone(),
            parts,
            point: self.point,
            registered: false,
        }))
    }
}

/// Writes some partitions of a [`MemoryStore`].
struct MemoryWriter {
    contents: Arc<Mutex<Contents>>,
    parts: Vec<usize>,
    point: ResumePoint,
    registered: bool,
}

impl PartitionWriter for MemoryWriter {
    fn write(&mut self, rows: Vec<Snapshot>, progress: Progress) -> Result<(), RecoveryError> {
        let mut c = lock(&self.contents);
        let count = c.partitions.len();
        if !self.registered {
            // What an earlier execution wrote from the resume epoch on is dropped.
            for &p in &self.parts {
                for epochs in c.partitions[p].rows.values_mut() {
                    epochs.retain(|e, _| *e < self.point.epoch);
                }
            }
            self.registered = true;
        }
        for row in rows {
            let part = crate::recovery::partition_of(row.step_id.as_str(), &row.key, count);
            if !self.parts.contains(&part) {
                return Err(RecoveryError::Usage(format!(
                    "a snapshot of step '{}' for partition {part} reached a writer that does not own it",
                    row.step_id
                )));
            }
            c.written.push(row.clone());
            c.partitions[part]
                .rows
                .entry((row.step_id, row.key))
                .or_default()
                .insert(row.epoch, (row.route, row.state));
        }
        for &p in &self.parts {
            c.partitions[p].progress = Some((self.point.execution, progress));
        }
        Ok(())
    }

    fn durable(&mut self, _frontier: u64) -> Result<(), RecoveryError> {
        Ok(())
    }
}
