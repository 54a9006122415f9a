//! `MemoryStore`: a recovery store in memory, to test stateful steps and connectors
//! without files.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::recovery::{
    PartitionWriter, Progress, RecoveryError, RecoveryStore, ResumePoint, Snapshot, StoredStates,
};
use crate::step_id::StepId;

/// A recovery store that keeps its partitions in memory, with the same resume rule as the
/// SQLite store: an execution resumes at the least progress of any partition, with each
/// key's newest state before it. [`written`](Self::written) shows every snapshot written,
/// and [`resume`](Self::resume) opens the next execution over the same contents.
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
    resume: Mutex<Option<HashMap<StepId, Arc<StoredStates>>>>,
}

/// What the partitions hold.
struct Contents {
    partitions: Vec<Partition>,
    /// Every snapshot written, in order.
    written: Vec<Snapshot>,
    /// The executions opened so far.
    executions: u64,
}

/// A key's stored states, by epoch (`None`: discarded).
type History = BTreeMap<u64, Option<Vec<u8>>>;

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

    /// Stores `state` for `key` of `step` as an execution that ended after epoch 0 would
    /// have, so that the next [`resume`](Self::resume) starts with it (to test a connector's
    /// or a step's resume from a given position).
    pub fn put(&self, step: &str, key: Vec<u8>, state: Vec<u8>) {
        let mut c = lock(&self.contents);
        let count = c.partitions.len();
        let part = crate::recovery::partition_of(step, &key, count);
        c.partitions[part]
            .rows
            .entry((StepId::new(step.to_string()), key))
            .or_default()
            .insert(0, Some(state));
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
            let mut state: HashMap<StepId, StoredStates> = HashMap::new();
            for p in &c.partitions {
                for ((step, key), epochs) in &p.rows {
                    if let Some((_, Some(value))) = epochs.range(..epoch).next_back() {
                        state
                            .entry(step.clone())
                            .or_default()
                            .insert(key.clone(), value.clone());
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
            resume: Mutex::new(Some(state.into_iter().map(|(s, k)| (s, Arc::new(k))).collect())),
        }
    }
}

impl RecoveryStore for MemoryStore {
    fn resume_point(&self) -> ResumePoint {
        self.point
    }

    fn partitions(&self) -> usize {
        lock(&self.contents).partitions.len()
    }

    fn stored_steps(&self) -> Vec<StepId> {
        let mut steps: Vec<StepId> = lock(&self.resume)
            .as_ref()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        steps.sort();
        steps
    }

    fn resume_states(&self, step: &StepId) -> Result<Arc<StoredStates>, RecoveryError> {
        match lock(&self.resume).as_ref() {
            Some(state) => Ok(state.get(step).cloned().unwrap_or_default()),
            None => Err(RecoveryError::Usage(format!(
                "the resume state of step '{step}' was asked for after every worker had taken its own"
            ))),
        }
    }

    fn resume_taken(&self) {
        lock(&self.resume).take();
    }

    fn open_writer(
        &self,
        parts: Vec<usize>,
        workers: usize,
    ) -> Result<Box<dyn PartitionWriter>, RecoveryError> {
        let _ = workers;
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
                .insert(row.epoch, row.state);
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
