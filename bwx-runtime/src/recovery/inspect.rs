//! `recovery inspect DIR`: what a recovery directory holds, checked as a resume would.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::RecoveryError;
use super::codec::{hex, to_json};
use super::sqlite::plan;

/// One execution recorded in the partitions.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ExecutionInfo {
    /// The execution number (0 for the first).
    pub execution: u64,
    /// How many workers it ran with.
    pub worker_count: usize,
    /// The epoch it started at.
    pub resume_epoch: u64,
}

/// How far one partition is complete.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition file's name.
    pub file: String,
    /// The last execution that wrote to it, if any.
    pub last_execution: Option<u64>,
    /// In that execution, it holds every snapshot of the epochs before this one...
    pub frontier: Option<u64>,
    /// ... or every snapshot of the execution, which completed.
    pub complete: bool,
    /// Its garbage-collection point: no resume may start before it.
    pub gc_epoch: u64,
}

/// The stored state of one step, as a resume would load it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StepSummary {
    /// The dotted step id.
    pub step: String,
    /// Keys with state at the resume epoch.
    pub keys: usize,
}

/// What [`inspect()`] found.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// The number of partitions.
    pub partitions: usize,
    /// The flow that wrote them, if any has.
    pub flow_id: Option<String>,
    /// Every execution, oldest first.
    pub executions: Vec<ExecutionInfo>,
    /// The progress of every partition in the directory, by index.
    pub partition_progress: Vec<PartitionInfo>,
    /// Where the next execution would resume; `None` when the directory holds only some
    /// partitions of the set (one host's), as the resume needs all of them.
    pub resume_epoch: Option<u64>,
    /// Steps with stored state, by id.
    pub steps: Vec<StepSummary>,
}

/// One key's state, decoded to JSON (MessagePack is self-describing).
#[derive(Clone, Debug, Serialize)]
pub struct KeyState {
    /// The key.
    pub key: serde_json::Value,
    /// The state at the resume epoch.
    pub state: serde_json::Value,
}

/// Reads and checks a recovery directory: every file, the set, the resume calculation and
/// every row's checksum, as a resume would. A directory that holds some partitions of the
/// set (one host's) is checked file by file, without a resume epoch.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// bwx::recovery::init_dir(dir.path(), 2).unwrap();
/// let found = bwx::recovery::inspect(dir.path()).unwrap();
/// assert_eq!((found.partitions, found.executions.len(), found.resume_epoch), (2, 0, Some(1)));
/// ```
pub fn inspect(dir: impl AsRef<Path>) -> Result<Inspection, RecoveryError> {
    let dir = dir.as_ref();
    let mut set = plan::open_set(dir, None, false)?;
    let progress = plan::progress(&set)?;
    let count = set.ids.first().map_or(0, |id| id.count);
    let resume = if set.files.len() == count {
        Some(plan::plan(&set.files, &progress)?.resume_epoch)
    } else {
        None
    };
    let mut executions: BTreeMap<u64, ExecutionInfo> = BTreeMap::new();
    for ex in progress.iter().flat_map(|p| &p.executions) {
        executions.entry(ex.ex_num).or_insert(ExecutionInfo {
            execution: ex.ex_num,
            worker_count: ex.worker_count,
            resume_epoch: ex.resume_epoch,
        });
    }
    let partition_progress = set
        .files
        .iter()
        .zip(&progress)
        .map(|(file, p)| {
            let last = p.executions.last();
            PartitionInfo {
                file: file.file_name().map_or_else(
                    || file.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                ),
                last_execution: last.map(|e| e.ex_num),
                frontier: last.map(|e| e.frontier),
                complete: last.is_some_and(|e| e.complete),
                gc_epoch: p.gc_epoch,
            }
        })
        .collect();
    let flow_id = set.conns.iter().find_map(|conn| {
        conn.query_row("SELECT value FROM meta WHERE name = 'flow_id'", [], |r| r.get(0))
            .ok()
    });
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(epoch) = resume {
        for row in plan::load(&mut set, epoch, |_| true)? {
            *keys.entry(row.step_id.to_string()).or_default() += 1;
        }
    }
    Ok(Inspection {
        partitions: count,
        flow_id,
        executions: executions.into_values().collect(),
        partition_progress,
        resume_epoch: resume,
        steps: keys
            .into_iter()
            .map(|(step, keys)| StepSummary { step, keys })
            .collect(),
    })
}

/// The state of the key of `step` whose JSON form is `key` (a string key may be given
/// without quotes), as a resume would load it; `None` if the key has no state.
pub fn key_state(dir: impl AsRef<Path>, step: &str, key: &str) -> Result<Option<KeyState>, RecoveryError> {
    let dir = dir.as_ref();
    let mut set = plan::open_set(dir, None, true)?;
    let progress = plan::progress(&set)?;
    let resume = plan::plan(&set.files, &progress)?;
    let rows = plan::load(&mut set, resume.resume_epoch, |_| true)?;
    let wanted = serde_json::from_str::<serde_json::Value>(key).ok();
    for row in rows.into_iter().filter(|r| r.step_id.as_str() == step) {
        let decoded = to_json(&row.key);
        let matches = wanted.as_ref() == Some(&decoded) || decoded.as_str() == Some(key);
        if let (true, Some(blob)) = (matches, row.state) {
            let state = match blob.split_first() {
                Some((&super::codec::TAG_MSGPACK_NAMED, rest)) => to_json(rest),
                _ => serde_json::Value::String(hex(&blob)),
            };
            return Ok(Some(KeyState { key: decoded, state }));
        }
    }
    Ok(None)
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} partitions, flow {}",
            self.partitions,
            self.flow_id.as_deref().unwrap_or("(none yet)")
        )?;
        writeln!(f, "executions:")?;
        if self.executions.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for ex in &self.executions {
            writeln!(
                f,
                "  #{}: {} workers, resumed at epoch {}",
                ex.execution, ex.worker_count, ex.resume_epoch
            )?;
        }
        writeln!(f, "partitions:")?;
        for p in &self.partition_progress {
            let progress = match (p.last_execution, p.frontier, p.complete) {
                (None, _, _) => "never written".to_string(),
                (Some(ex), _, true) => format!("complete in execution #{ex}"),
                (Some(ex), Some(f), false) => format!("holds epochs before {f} in execution #{ex}"),
                (Some(ex), None, false) => format!("written in execution #{ex}"),
            };
            writeln!(
                f,
                "  {}: {progress}; garbage-collected through epoch {}",
                p.file, p.gc_epoch
            )?;
        }
        match self.resume_epoch {
            Some(epoch) => writeln!(f, "next resume epoch: {epoch}")?,
            None => writeln!(
                f,
                "next resume epoch: unknown here (this directory holds {} of the {} partitions; the resume needs all of them)",
                self.partition_progress.len(),
                self.partitions
            )?,
        }
        writeln!(f, "steps:")?;
        if self.steps.is_empty() {
            writeln!(f, "  (no stored state)")?;
        }
        for s in &self.steps {
            writeln!(f, "  {}: {} keys", s.step, s.keys)?;
        }
        Ok(())
    }
}
