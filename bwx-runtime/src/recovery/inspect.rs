//! `recovery inspect DIR`: what a recovery directory holds, checked as a resume would.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::RecoveryError;
use super::resume::{self, hex};
use super::store::sql_err;

/// One execution recorded in the partitions.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ExecutionInfo {
    /// The execution number (0 for the first).
    pub execution: u64,
    /// How many workers it ran with.
    pub worker_count: usize,
    /// The epoch it started at.
    pub resume_epoch: u64,
    /// Per worker, the first epoch it had not made durable (`None`: none durable).
    pub frontiers: Vec<Option<u64>>,
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
    /// Where the next execution would resume.
    pub resume_epoch: u64,
    /// Per partition, the GC point.
    pub gc_epochs: Vec<u64>,
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

/// Every row of a query that selects three integer columns.
fn three_ints(
    conn: &rusqlite::Connection,
    sql: &str,
    err: &impl Fn(rusqlite::Error) -> RecoveryError,
) -> Result<Vec<(i64, i64, i64)>, RecoveryError> {
    let mut stmt = conn.prepare(sql).map_err(err)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(err)?;
    rows.collect::<Result<_, _>>().map_err(err)
}

/// Reads and checks a recovery directory: every file, the set, the resume calculation and
/// every row's checksum, as a resume would.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// bwx_runtime::recovery::init_dir(dir.path(), 2).unwrap();
/// let found = bwx_runtime::recovery::inspect(dir.path()).unwrap();
/// assert_eq!((found.partitions, found.executions.len(), found.resume_epoch), (2, 0, 0));
/// ```
pub fn inspect(dir: impl AsRef<Path>) -> Result<Inspection, RecoveryError> {
    let dir = dir.as_ref();
    let mut set = resume::open_set(dir, None)?;
    let plan = resume::plan(&set)?;
    let mut executions: BTreeMap<u64, ExecutionInfo> = BTreeMap::new();
    let mut flow_id = None;
    let mut gc_epochs = Vec::new();
    for (conn, file) in set.conns.iter().zip(&set.files) {
        let err = sql_err(file);
        for (ex, workers, resume) in
            three_ints(conn, "SELECT ex_num, worker_count, resume_epoch FROM exs", &err)?
        {
            executions.entry(ex as u64).or_insert(ExecutionInfo {
                execution: ex as u64,
                worker_count: workers as usize,
                resume_epoch: resume as u64,
                frontiers: vec![None; workers as usize],
            });
        }
        for (ex, worker, frontier) in three_ints(
            conn,
            "SELECT ex_num, worker_index, worker_frontier FROM fronts",
            &err,
        )? {
            if let Some(slot) = executions
                .get_mut(&(ex as u64))
                .and_then(|e| e.frontiers.get_mut(worker as usize))
            {
                *slot = Some(slot.unwrap_or(0).max(frontier as u64));
            }
        }
        let gc: i64 = conn
            .query_row("SELECT COALESCE(MAX(commit_epoch), 0) FROM commits", [], |r| {
                r.get(0)
            })
            .map_err(&err)?;
        gc_epochs.push(gc as u64);
        if flow_id.is_none() {
            flow_id = conn
                .query_row("SELECT value FROM meta WHERE name = 'flow_id'", [], |r| r.get(0))
                .ok();
        }
    }
    let state = resume::load(&mut set, plan.resume_epoch)?;
    let mut steps: Vec<StepSummary> = state
        .iter()
        .map(|(step, keys)| StepSummary {
            step: step.to_string(),
            keys: keys.len(),
        })
        .collect();
    steps.sort_by(|a, b| a.step.cmp(&b.step));
    Ok(Inspection {
        partitions: set.files.len(),
        flow_id,
        executions: executions.into_values().collect(),
        resume_epoch: plan.resume_epoch,
        gc_epochs,
        steps,
    })
}

/// The state of the key of `step` whose JSON form is `key` (a string key may be given
/// without quotes), as a resume would load it; `None` if the key has no state.
pub fn key_state(dir: impl AsRef<Path>, step: &str, key: &str) -> Result<Option<KeyState>, RecoveryError> {
    let dir = dir.as_ref();
    let mut set = resume::open_set(dir, None)?;
    let plan = resume::plan(&set)?;
    let state = resume::load(&mut set, plan.resume_epoch)?;
    let Some(keys) = state
        .into_iter()
        .find(|(s, _)| s.as_str() == step)
        .map(|(_, k)| k)
    else {
        return Ok(None);
    };
    let wanted = serde_json::from_str::<serde_json::Value>(key).ok();
    for (stored_key, blob) in keys {
        let decoded = to_json(&stored_key);
        let matches = wanted.as_ref() == Some(&decoded) || decoded.as_str() == Some(key);
        if matches {
            let state = match blob.split_first() {
                Some((&super::codec::TAG_MSGPACK_NAMED, rest)) => to_json(rest),
                _ => serde_json::Value::String(hex(&blob)),
            };
            return Ok(Some(KeyState { key: decoded, state }));
        }
    }
    Ok(None)
}

/// MessagePack to JSON; bytes that are not MessagePack show as hex.
fn to_json(bytes: &[u8]) -> serde_json::Value {
    rmp_serde::from_slice::<serde_json::Value>(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(hex(bytes)))
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
            let fronts: Vec<String> = ex
                .frontiers
                .iter()
                .map(|f| f.map_or("-".to_string(), |e| e.to_string()))
                .collect();
            writeln!(
                f,
                "  #{}: {} workers, resumed at epoch {}, worker frontiers [{}]",
                ex.execution,
                ex.worker_count,
                ex.resume_epoch,
                fronts.join(", ")
            )?;
        }
        writeln!(f, "next resume epoch: {}", self.resume_epoch)?;
        writeln!(f, "GC points per partition: {:?}", self.gc_epochs)?;
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
