//! The resume calculation: which execution comes next, from which epoch, with which state.
//!
//! Every process computes it from the same files before any worker writes (a new
//! execution's rows are written at its first snapshot, which needs every worker of the
//! cluster to have started), so all processes agree without talking to each other.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::failpoint::{self, Point};
use super::store::{self, PartIdentity, checksum, sql_err};
use super::{RecoveryError, StoredStates};
use crate::flow::StepId;

/// Stored state to resume from: step → encoded key → encoded state.
pub(crate) type ResumeState = HashMap<StepId, StoredStates>;

/// An opened, checked set of partitions.
pub(crate) struct OpenSet {
    /// The partition files, by index.
    pub(crate) files: Vec<PathBuf>,
    /// One connection per partition, by index.
    pub(crate) conns: Vec<Connection>,
}

/// Opens every partition in `dir`, checks each file and that they form one set (of
/// `flow_id`, when given).
pub(crate) fn open_set(dir: &Path, flow_id: Option<&str>) -> Result<OpenSet, RecoveryError> {
    let listed = store::list_partitions(dir)?;
    if listed.is_empty() {
        return Err(RecoveryError::NoPartitions {
            dir: dir.to_path_buf(),
        });
    }
    // The structural check reads every page: partitions are checked in parallel.
    let paths: Vec<PathBuf> = listed.into_iter().map(|(_, path)| path).collect();
    let mut opened: Vec<(PathBuf, Connection, PartIdentity)> = Vec::with_capacity(paths.len());
    for (path, result) in paths.iter().zip(in_parallel(&paths, |path: &PathBuf| {
        let (conn, identity) = store::open_partition(path)?;
        store::quick_check(&conn, path)?;
        Ok((conn, identity))
    })) {
        let (conn, identity) = result?;
        opened.push((path.clone(), conn, identity));
    }
    let ids: Vec<(PathBuf, PartIdentity)> = opened.iter().map(|(p, _, i)| (p.clone(), i.clone())).collect();
    store::check_set(dir, &ids, flow_id)?;
    opened.sort_by_key(|(_, _, id)| id.index);
    let (files, conns) = opened.into_iter().map(|(p, c, _)| (p, c)).unzip();
    Ok(OpenSet { files, conns })
}

/// The last execution recorded in a set of partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LastExecution {
    pub(crate) ex_num: u64,
    pub(crate) worker_count: usize,
    pub(crate) resume_epoch: u64,
    /// Per worker, the first epoch it has not made durable (`None`: it made none durable).
    pub(crate) frontiers: Vec<Option<u64>>,
}

/// Where the next execution starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResumePlan {
    /// The number of the next execution.
    pub(crate) ex_num: u64,
    /// The epoch it starts at: the smallest frontier of the last execution.
    pub(crate) resume_epoch: u64,
    /// The last execution, if any.
    pub(crate) last: Option<LastExecution>,
}

/// Reads the last execution of a set, if any.
pub(crate) fn last_execution(set: &OpenSet) -> Result<Option<LastExecution>, RecoveryError> {
    let mut last: Option<(u64, usize, u64)> = None;
    for (conn, file) in set.conns.iter().zip(&set.files) {
        let row: Option<(i64, i64, i64)> = conn
            .query_row(
                "SELECT ex_num, worker_count, resume_epoch FROM exs ORDER BY ex_num DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(sql_err(file)(e)),
            })?;
        if let Some((ex, workers, resume)) = row
            && last.is_none_or(|(l, _, _)| ex as u64 > l)
        {
            last = Some((ex as u64, workers as usize, resume as u64));
        }
    }
    let Some((ex_num, worker_count, resume_epoch)) = last else {
        return Ok(None);
    };
    let mut frontiers = vec![None; worker_count];
    for (conn, file) in set.conns.iter().zip(&set.files) {
        let mut stmt = conn
            .prepare("SELECT worker_index, worker_frontier FROM fronts WHERE ex_num = ?1")
            .map_err(sql_err(file))?;
        let rows = stmt
            .query_map([ex_num as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(sql_err(file))?;
        for row in rows {
            let (worker, frontier) = row.map_err(sql_err(file))?;
            if let Some(slot) = frontiers.get_mut(worker as usize) {
                *slot = Some(slot.unwrap_or(0).max(frontier as u64));
            }
        }
    }
    Ok(Some(LastExecution {
        ex_num,
        worker_count,
        resume_epoch,
        frontiers,
    }))
}

/// The resume calculation over all partitions, with the GC check.
pub(crate) fn plan(set: &OpenSet) -> Result<ResumePlan, RecoveryError> {
    let last = last_execution(set)?;
    let (ex_num, resume_epoch) = match &last {
        None => (0, 0),
        Some(l) => {
            let resume = l
                .frontiers
                .iter()
                .map(|f| f.unwrap_or(l.resume_epoch))
                .min()
                .unwrap_or(l.resume_epoch);
            (l.ex_num + 1, resume)
        }
    };
    for (conn, file) in set.conns.iter().zip(&set.files) {
        let gc: i64 = conn
            .query_row("SELECT COALESCE(MAX(commit_epoch), 0) FROM commits", [], |r| {
                r.get(0)
            })
            .map_err(sql_err(file))?;
        if gc as u64 > resume_epoch {
            return Err(RecoveryError::GcPastResume {
                file: file.clone(),
                gc_epoch: gc as u64,
                resume_epoch,
            });
        }
    }
    Ok(ResumePlan {
        ex_num,
        resume_epoch,
        last,
    })
}

/// Loads the state current at `resume_epoch`: per (step, key), the latest snapshot of an
/// earlier epoch, unless it is a discard. Every row read is checked against its checksum.
/// Partitions are read in parallel (their keys are disjoint).
pub(crate) fn load(set: &mut OpenSet, resume_epoch: u64) -> Result<ResumeState, RecoveryError> {
    let files = set.files.clone();
    let work: Vec<(&mut Connection, &PathBuf)> = set.conns.iter_mut().zip(&files).collect();
    let loaded = in_parallel_owned(work, &files, |(conn, file)| load_part(conn, file, resume_epoch));
    let parts: Vec<ResumeState> = loaded.into_iter().collect::<Result<_, _>>()?;
    let mut out: ResumeState = HashMap::new();
    for part in parts {
        for (step, mut keys) in part {
            match out.get_mut(&step) {
                None => {
                    out.insert(step, keys);
                }
                Some(into) => {
                    // Move the smaller map into the larger one.
                    if into.len() < keys.len() {
                        std::mem::swap(into, &mut keys);
                    }
                    into.reserve(keys.len());
                    into.extend(keys);
                }
            }
        }
    }
    Ok(out)
}

/// Runs `f` on every item on a thread each; results in item order. A thread that cannot
/// be started or panics is an error naming the item's file.
fn in_parallel_owned<I: Send, T: Send>(
    items: Vec<I>,
    files: &[PathBuf],
    f: impl Fn(I) -> Result<T, RecoveryError> + Sync,
) -> Vec<Result<T, RecoveryError>> {
    let f = &f;
    std::thread::scope(|scope| {
        let spawned: Vec<_> = items
            .into_iter()
            .map(|item| {
                std::thread::Builder::new()
                    .name("bwx-recovery-load".into())
                    .spawn_scoped(scope, move || f(item))
            })
            .collect();
        spawned
            .into_iter()
            .zip(files)
            .map(|(handle, file)| {
                let failed = |why: String| RecoveryError::Io {
                    file: file.clone(),
                    why,
                };
                handle
                    .map_err(|e| failed(format!("cannot start a thread to read this partition: {e}")))?
                    .join()
                    .unwrap_or_else(|_| Err(failed("the thread reading this partition panicked".into())))
            })
            .collect()
    })
}

/// [`in_parallel_owned`] over borrowed paths.
fn in_parallel<T: Send>(
    paths: &[PathBuf],
    f: impl Fn(&PathBuf) -> Result<T, RecoveryError> + Sync,
) -> Vec<Result<T, RecoveryError>> {
    in_parallel_owned(paths.iter().collect(), paths, f)
}

/// [`load`] for one partition.
fn load_part(conn: &mut Connection, file: &Path, resume_epoch: u64) -> Result<ResumeState, RecoveryError> {
    let err = sql_err(file);
    let mut out: ResumeState = HashMap::new();
    // In primary-key order (no sort): a key's rows are adjacent, oldest first, so the last
    // one seen before the key changes is its state at the resume epoch.
    let mut stmt = conn
        .prepare(
            "SELECT step_id, state_key, snap_epoch, ser_change, checksum FROM snaps \
             WHERE snap_epoch < ?1 ORDER BY step_id, state_key, snap_epoch",
        )
        .map_err(&err)?;
    let mut rows = stmt.query([resume_epoch as i64]).map_err(&err)?;
    let not_text = |e: rusqlite::types::FromSqlError| RecoveryError::Corrupt {
        file: file.to_path_buf(),
        why: format!("a snapshot row has a malformed step id or key: {e}"),
    };
    // Rows come grouped by step: the step being read, its keys so far, and the latest row
    // of the key being read (key, state).
    let mut step = String::new();
    let mut keys = StoredStates::new();
    let mut latest: Option<(Vec<u8>, Option<Vec<u8>>)> = None;
    while let Some(row) = rows.next().map_err(&err)? {
        let row_step = row.get_ref(0).map_err(&err)?.as_str().map_err(not_text)?;
        let key = row.get_ref(1).map_err(&err)?.as_blob().map_err(not_text)?;
        let epoch = row.get::<_, i64>(2).map_err(&err)? as u64;
        let state: Option<Vec<u8>> = row.get(3).map_err(&err)?;
        let sum: i64 = row.get(4).map_err(&err)?;
        if checksum(row_step, key, epoch, state.as_deref()) != sum {
            return Err(RecoveryError::Checksum {
                file: file.to_path_buf(),
                step: row_step.to_string(),
                key: hex(key),
                epoch,
            });
        }
        let same_step = row_step == step;
        // A newer snapshot of the same key supersedes the one held.
        if let Some((k, held)) = &mut latest
            && same_step
            && k.as_slice() == key
        {
            *held = state;
            continue;
        }
        if let Some((k, Some(held))) = latest.take() {
            keys.insert(k, held);
        }
        if !same_step {
            if !keys.is_empty() {
                out.insert(StepId::new(std::mem::take(&mut step)), std::mem::take(&mut keys));
            }
            step = row_step.to_string();
        }
        latest = Some((key.to_vec(), state));
    }
    if let Some((k, Some(held))) = latest.take() {
        keys.insert(k, held);
    }
    if !keys.is_empty() {
        out.insert(StepId::new(step), keys);
    }
    failpoint::hit(Point::DuringResume);
    Ok(out)
}

/// Lower-case hex of bytes, for messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
