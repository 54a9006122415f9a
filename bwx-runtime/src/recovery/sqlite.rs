//! [`SqliteRecovery`]: the recovery hook backed by a directory of SQLite partitions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::resume::{self, ResumePlan};
use super::writer::{Shared, WorkerWriter};
use super::{RecoveryError, RecoveryHook, Snapshot, StoredStates};
use crate::errors::FlowError;
use crate::flow::StepId;

/// Recovery to a directory of SQLite partition files (see the [module docs](super)).
///
/// Opening reads every partition, checks that they form one consistent set of this flow,
/// and computes where the execution resumes; nothing is written until the first snapshot.
///
/// ```
/// use std::time::Duration;
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::recovery::{SqliteRecovery, init_dir};
/// use bwx_runtime::testing::{TestingSink, TestingSource};
///
/// let dir = tempfile::tempdir().unwrap();
/// init_dir(dir.path(), 2).unwrap();
/// let run = |items: Vec<(String, u64)>| {
///     let flow = Dataflow::new("sums");
///     let out = TestingSink::new();
///     flow.input("inp", TestingSource::new(items))
///         .stateful_map("sum", |s: Option<u64>, v: u64| {
///             let t = s.unwrap_or(0) + v;
///             (Some(t), t)
///         })
///         .output("out", out.clone());
///     let hook = SqliteRecovery::open(dir.path(), Duration::ZERO, 1, "sums").unwrap();
///     bwx_runtime::run_main_with(&flow, RunConfig::default().recovery(hook)).unwrap();
///     out.take()
/// };
/// assert_eq!(run(vec![("a".into(), 1), ("a".into(), 2)]), vec![("a".to_string(), 1), ("a".to_string(), 3)]);
/// // The source resumes after its last position and the sum goes on from 3.
/// assert_eq!(run(vec![("a".into(), 1), ("a".into(), 2), ("a".into(), 10)]), vec![("a".to_string(), 13)]);
/// ```
pub struct SqliteRecovery {
    shared: Shared,
    /// Each step's stored state, shared by the workers until the first epoch closes.
    resume: Mutex<Option<HashMap<StepId, Arc<StoredStates>>>>,
    workers: AtomicUsize,
    writers: Mutex<HashMap<usize, Arc<Mutex<WorkerWriter>>>>,
    orphans: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SqliteRecovery {
    /// Opens the partitions in `dir` for flow `flow_id`.
    ///
    /// `backup_interval` is how long superseded snapshots are kept (so that backups of
    /// partitions taken at different times still form a consistent set); `snapshot_every`
    /// writes snapshots every that many epochs (1: every epoch), independently of the epoch
    /// interval.
    pub fn open(
        dir: impl AsRef<Path>,
        backup_interval: Duration,
        snapshot_every: u64,
        flow_id: &str,
    ) -> Result<Arc<dyn RecoveryHook>, FlowError> {
        Ok(Arc::new(Self::open_store(
            dir,
            backup_interval,
            snapshot_every,
            flow_id,
        )?))
    }

    /// As [`SqliteRecovery::open`], returning the concrete type (to ask for
    /// [`SqliteRecovery::resume_epoch`] or [`SqliteRecovery::orphaned_steps`]).
    pub fn open_store(
        dir: impl AsRef<Path>,
        backup_interval: Duration,
        snapshot_every: u64,
        flow_id: &str,
    ) -> Result<SqliteRecovery, RecoveryError> {
        let dir = dir.as_ref();
        let mut set = resume::open_set(dir, Some(flow_id))?;
        let plan = resume::plan(&set)?;
        let state = resume::load(&mut set, plan.resume_epoch)?;
        Ok(SqliteRecovery {
            shared: Shared {
                files: set.files.clone(),
                flow_id: flow_id.to_string(),
                plan,
                backup_interval,
                snapshot_every: snapshot_every.max(1),
            },
            resume: Mutex::new(Some(
                state
                    .into_iter()
                    .map(|(step, keys)| (step, Arc::new(keys)))
                    .collect(),
            )),
            workers: AtomicUsize::new(0),
            writers: Mutex::new(HashMap::new()),
            orphans: Mutex::new(Vec::new()),
        })
    }

    /// How many epochs make one snapshot interval: `snapshot_interval / epoch_interval`,
    /// rounded up, at least 1. With Bytewax's flags, `-s 5` alone means epochs of 5 s and a
    /// snapshot every epoch; a shorter epoch interval (for lower latency of epoch-driven
    /// operators) keeps snapshots at the requested interval (Bytewax #353).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bwx_runtime::recovery::SqliteRecovery;
    ///
    /// let s = |ms| Duration::from_millis(ms);
    /// assert_eq!(SqliteRecovery::epochs_per_snapshot(s(1000), s(5000)), 5);
    /// assert_eq!(SqliteRecovery::epochs_per_snapshot(s(300), s(1000)), 4);
    /// assert_eq!(SqliteRecovery::epochs_per_snapshot(s(5000), s(1000)), 1);
    /// ```
    pub fn epochs_per_snapshot(epoch_interval: Duration, snapshot_interval: Duration) -> u64 {
        let epoch = epoch_interval.as_nanos().max(1);
        (snapshot_interval.as_nanos().div_ceil(epoch) as u64).max(1)
    }

    /// The partition files, by index.
    pub fn files(&self) -> &[PathBuf] {
        &self.shared.files
    }

    /// The number of this execution (0 for the first).
    pub fn execution(&self) -> u64 {
        self.shared.plan.ex_num
    }

    /// Stored steps that match no step of the flow (found when the flow starts): their
    /// state is not resumed. A renamed step looks like this.
    pub fn orphaned_steps(&self) -> Vec<String> {
        lock(&self.orphans).clone()
    }

    fn plan(&self) -> &ResumePlan {
        &self.shared.plan
    }

    fn writer(&self, worker: usize) -> Arc<Mutex<WorkerWriter>> {
        lock(&self.writers)
            .entry(worker)
            .or_insert_with(|| Arc::new(Mutex::new(WorkerWriter::new(worker, &self.shared))))
            .clone()
    }

    fn worker_count(&self) -> Result<usize, FlowError> {
        match self.workers.load(Ordering::SeqCst) {
            0 => Err(
                RecoveryError::Usage("the engine reported a snapshot before the worker count".into()).into(),
            ),
            n => Ok(n),
        }
    }
}

impl RecoveryHook for SqliteRecovery {
    fn execution(&self) -> Option<u64> {
        Some(self.plan().ex_num)
    }

    fn resume_epoch(&self) -> u64 {
        self.plan().resume_epoch
    }

    fn begin(&self, _worker: usize, worker_count: usize, steps: &[StepId]) -> Result<(), FlowError> {
        self.workers.store(worker_count, Ordering::SeqCst);
        let resume = lock(&self.resume);
        let Some(state) = resume.as_ref() else {
            return Ok(());
        };
        let mut orphans: Vec<String> = state
            .keys()
            .filter(|s| !steps.contains(s))
            .map(|s| s.to_string())
            .collect();
        orphans.sort();
        let mut known = lock(&self.orphans);
        if !orphans.is_empty() && *known != orphans {
            tracing::warn!(
                steps = ?orphans,
                "recovery: stored state of steps that are not in the flow is ignored (renamed or removed steps?): {}",
                orphans.join(", ")
            );
            *known = orphans;
        }
        Ok(())
    }

    fn resume_states(&self, step: &StepId) -> Result<Arc<StoredStates>, FlowError> {
        Ok(lock(&self.resume)
            .as_ref()
            .and_then(|s| s.get(step).cloned())
            .unwrap_or_default())
    }

    fn epoch_closed(&self, worker: usize, epoch: u64, snapshots: Vec<Snapshot>) -> Result<(), FlowError> {
        // Every step has taken its resume state by the time an epoch closes.
        lock(&self.resume).take();
        let workers = self.worker_count()?;
        let writer = self.writer(worker);
        let mut writer = lock(&writer);
        Ok(writer.epoch_closed(&self.shared, workers, epoch, snapshots)?)
    }

    fn finished(&self, worker: usize) -> Result<(), FlowError> {
        let workers = self.worker_count()?;
        let writer = self.writer(worker);
        let mut writer = lock(&writer);
        Ok(writer.finish(&self.shared, workers)?)
    }
}
