//! [`SqliteRecovery`]: the recovery store backed by a directory of SQLite partition files.
//!
//! Each partition file (`part-N.sqlite3`) holds the snapshots routed to it and, per
//! execution, how far it is complete (see `schema.rs`). Opening the store reads every
//! partition, checks that they form one consistent set of this store and flow, computes
//! the resume point and loads the state there; nothing is written until the first epoch
//! of the execution closes everywhere.

mod file;
mod gc;
mod init;
pub(crate) mod plan;
mod schema;
mod writer;

pub use init::init_dir;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use plan::ResumePlan;
use writer::Writer;

use crate::recovery::{PartitionWriter, RecoveryError, RecoveryStore, ResumePoint, StoredStates};
use crate::step_id::StepId;

/// Recovery to a directory of SQLite partition files (see the [module docs](crate::recovery)).
///
/// Opening reads every partition, checks that they form one consistent set of this flow,
/// and computes where the execution resumes; nothing is written until the first snapshot.
///
/// ```
/// use std::time::Duration;
/// use bwx::prelude::*;
/// use bwx::recovery::{SqliteRecovery, init_dir};
/// use bwx::testing::{TestingSink, TestingSource};
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
///     let store = SqliteRecovery::open(dir.path(), Duration::ZERO, "sums").unwrap();
///     bwx::run_main_with(&flow, RunConfig::default().recovery(store)).unwrap();
///     out.take()
/// };
/// assert_eq!(run(vec![("a".into(), 1), ("a".into(), 2)]), vec![("a".to_string(), 1), ("a".to_string(), 3)]);
/// // The source resumes after its last position and the sum goes on from 3.
/// assert_eq!(run(vec![("a".into(), 1), ("a".into(), 2), ("a".into(), 10)]), vec![("a".to_string(), 13)]);
/// ```
pub struct SqliteRecovery {
    files: Vec<PathBuf>,
    flow_id: String,
    plan: ResumePlan,
    backup_interval: Duration,
    stored_steps: Vec<StepId>,
    /// Each step's stored state, shared by the workers until they have all taken theirs.
    resume: Mutex<Option<HashMap<StepId, Arc<StoredStates>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SqliteRecovery {
    /// Opens the partitions in `dir` for flow `flow_id`.
    ///
    /// `backup_interval` is how long superseded snapshots are kept, so that partitions
    /// backed up at different moments within it still resume at an epoch they all hold.
    pub fn open(
        dir: impl AsRef<Path>,
        backup_interval: Duration,
        flow_id: &str,
    ) -> Result<Arc<dyn RecoveryStore>, RecoveryError> {
        Ok(Arc::new(Self::open_store(dir, backup_interval, flow_id)?))
    }

    /// As [`SqliteRecovery::open`], returning the concrete type (to ask for
    /// [`SqliteRecovery::execution`] or [`SqliteRecovery::files`]).
    pub fn open_store(
        dir: impl AsRef<Path>,
        backup_interval: Duration,
        flow_id: &str,
    ) -> Result<SqliteRecovery, RecoveryError> {
        let mut set = plan::open_set(dir.as_ref(), Some(flow_id))?;
        let progress = plan::progress(&set)?;
        let plan = plan::plan(&set.files, &progress)?;
        let state = plan::load(&mut set, plan.resume_epoch)?;
        let mut stored_steps: Vec<StepId> = state.keys().cloned().collect();
        stored_steps.sort();
        Ok(SqliteRecovery {
            files: set.files.clone(),
            flow_id: flow_id.to_string(),
            plan,
            backup_interval,
            stored_steps,
            resume: Mutex::new(Some(
                state
                    .into_iter()
                    .map(|(step, keys)| (step, Arc::new(keys)))
                    .collect(),
            )),
        })
    }

    /// The partition files, by index.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The number of this execution (0 for the first).
    pub fn execution(&self) -> u64 {
        self.plan.ex_num
    }
}

impl RecoveryStore for SqliteRecovery {
    fn resume_point(&self) -> ResumePoint {
        ResumePoint {
            execution: self.plan.ex_num,
            epoch: self.plan.resume_epoch,
        }
    }

    fn partitions(&self) -> usize {
        self.files.len()
    }

    fn stored_steps(&self) -> Vec<StepId> {
        self.stored_steps.clone()
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
        Ok(Box::new(Writer::open(
            self.files.clone(),
            parts,
            writer::Execution {
                flow_id: self.flow_id.clone(),
                ex_num: self.plan.ex_num,
                resume_epoch: self.plan.resume_epoch,
                workers,
            },
            self.backup_interval,
        )?))
    }
}
