//! The resume calculation: which execution comes next, from which epoch, with which state.
//!
//! Every process computes it from the same files before any worker writes (a new
//! execution's rows are written once its first epoch closed everywhere, which needs every
//! worker of the cluster to have started), so all processes agree without talking.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::file::{self as store, PartIdentity, sql_err};
use super::schema::{checksum, route_from};
use crate::cause::Cause;
use crate::recovery::codec::hex;
use crate::recovery::failpoint::{self, Point};
use crate::recovery::{RecoveryError, Snapshot};
use crate::step_id::StepId;

/// Opened, checked partitions of one set (all of it, or the part one host holds).
pub(crate) struct OpenSet {
    /// The partition files, by index.
    pub(crate) files: Vec<PathBuf>,
    /// One connection per partition, by index.
    pub(crate) conns: Vec<Connection>,
    /// Each partition's identity, by index.
    pub(crate) ids: Vec<PartIdentity>,
}

/// Opens the partitions in `dir` and checks each file and that they belong to one set (of
/// `flow_id`, when given); `complete` also asks that every partition of the set is there.
pub(crate) fn open_set(dir: &Path, flow_id: Option<&str>, complete: bool) -> Result<OpenSet, RecoveryError> {
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
    store::check_set(dir, &ids, flow_id, complete)?;
    opened.sort_by_key(|(_, _, id)| id.index);
    let mut set = OpenSet {
        files: Vec::new(),
        conns: Vec::new(),
        ids: Vec::new(),
    };
    for (file, conn, id) in opened {
        set.files.push(file);
        set.conns.push(conn);
        set.ids.push(id);
    }
    Ok(set)
}

/// One execution as a partition recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Recorded {
    pub(crate) ex_num: u64,
    pub(crate) worker_count: usize,
    pub(crate) resume_epoch: u64,
    /// The partition holds every snapshot of the epochs before this one...
    pub(crate) frontier: u64,
    /// ... or every snapshot of the execution.
    pub(crate) complete: bool,
}

/// What one partition says about its progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartProgress {
    /// Every execution that wrote to the partition, oldest first.
    pub(crate) executions: Vec<Recorded>,
    /// Its garbage-collection point: no resume may start before it.
    pub(crate) gc_epoch: u64,
    /// One past the newest epoch of any snapshot it holds (0 when it holds none).
    pub(crate) after_last_snapshot: u64,
}

/// Where the next execution starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resume {
    /// The number of the next execution.
    pub(crate) ex_num: u64,
    /// The epoch it starts at.
    pub(crate) resume_epoch: u64,
    /// Per partition, the epoch before which it holds a consistent state.
    pub(crate) complete_until: Vec<Option<u64>>,
}

/// Reads what every partition opened says about its progress.
pub(crate) fn progress(set: &OpenSet) -> Result<Vec<PartProgress>, RecoveryError> {
    set.conns
        .iter()
        .zip(&set.files)
        .map(|(conn, file)| {
            let err = sql_err(file);
            let mut stmt = conn
                .prepare(
                    "SELECT ex_num, worker_count, resume_epoch, frontier, complete FROM exs ORDER BY ex_num",
                )
                .map_err(&err)?;
            let executions = stmt
                .query_map([], |r| {
                    Ok(Recorded {
                        ex_num: r.get::<_, i64>(0)? as u64,
                        worker_count: r.get::<_, i64>(1)? as usize,
                        resume_epoch: r.get::<_, i64>(2)? as u64,
                        frontier: r.get::<_, i64>(3)? as u64,
                        complete: r.get::<_, i64>(4)? != 0,
                    })
                })
                .map_err(&err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(&err)?;
            let (gc_epoch, last): (i64, Option<i64>) = conn
                .query_row(
                    "SELECT (SELECT COALESCE(MAX(gc_epoch), 0) FROM gc), (SELECT MAX(snap_epoch) FROM snaps)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(&err)?;
            Ok(PartProgress {
                executions,
                gc_epoch: gc_epoch as u64,
                after_last_snapshot: last.map_or(0, |l| l as u64 + 1),
            })
        })
        .collect()
}

/// The resume calculation over all partitions.
///
/// A partition holds a consistent state up to its frontier in the last execution that
/// wrote to it, but no further than where any later execution started: the later one
/// replaced what came after. The next execution starts at the least of these over all
/// partitions, so that every partition holds the state before it; when every partition
/// completed the last execution, it starts after everything stored. A partition that was
/// garbage-collected past that epoch no longer holds the state there: the set is refused.
pub(crate) fn plan(files: &[PathBuf], parts: &[PartProgress]) -> Result<Resume, RecoveryError> {
    let mut starts: BTreeMap<u64, u64> = BTreeMap::new();
    for ex in parts.iter().flat_map(|p| &p.executions) {
        starts.insert(ex.ex_num, ex.resume_epoch);
    }
    let complete_until: Vec<Option<u64>> = parts
        .iter()
        .map(|p| {
            let (latest, own) = match p.executions.last() {
                None => (None, Some(crate::recovery::FIRST_EPOCH)),
                Some(ex) => (Some(ex.ex_num), (!ex.complete).then_some(ex.frontier)),
            };
            let later = starts
                .range(latest.map_or(0, |l| l + 1)..)
                .map(|(_, start)| *start)
                .min();
            match (own, later) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        })
        .collect();
    let resume_epoch = match complete_until.iter().flatten().min() {
        Some(epoch) => *epoch,
        // Every partition completed the last execution: after everything it reached.
        None => parts
            .iter()
            .flat_map(|p| {
                let reached = p.executions.iter().map(|e| e.frontier);
                reached.chain([p.after_last_snapshot])
            })
            .chain(starts.values().copied())
            .max()
            .unwrap_or(crate::recovery::FIRST_EPOCH),
    };
    if let Some((collected, part)) = files.iter().zip(parts).find(|(_, p)| p.gc_epoch > resume_epoch) {
        let behind = files
            .iter()
            .zip(&complete_until)
            .filter(|(_, until)| **until == Some(resume_epoch))
            .map(|(f, _)| f.clone())
            .collect();
        return Err(RecoveryError::BackupsTooFarApart {
            behind,
            resume_epoch,
            collected: collected.clone(),
            gc_epoch: part.gc_epoch,
        });
    }
    Ok(Resume {
        ex_num: starts.keys().next_back().map_or(0, |l| l + 1),
        resume_epoch,
        complete_until,
    })
}

/// Loads the state current at `resume_epoch` from the partitions `which` picks: per
/// (step, key), the latest snapshot of an earlier epoch, unless it is a discard. Every row
/// read is checked against its checksum. Partitions are read in parallel.
pub(crate) fn load(
    set: &mut OpenSet,
    resume_epoch: u64,
    which: impl Fn(usize) -> bool,
) -> Result<Vec<Snapshot>, RecoveryError> {
    let picked: Vec<(&mut Connection, &PathBuf)> = set
        .conns
        .iter_mut()
        .zip(&set.files)
        .zip(&set.ids)
        .filter(|(_, id)| which(id.index))
        .map(|(c, _)| c)
        .collect();
    let files: Vec<PathBuf> = picked.iter().map(|(_, f)| (*f).clone()).collect();
    let loaded = in_parallel_owned(picked, &files, |(conn, file)| load_part(conn, file, resume_epoch));
    let mut rows = Vec::new();
    for part in loaded {
        rows.extend(part?);
    }
    Ok(rows)
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
                let failed = |doing: &str, cause: Cause| RecoveryError::Io {
                    file: file.clone(),
                    doing: doing.into(),
                    cause,
                };
                handle
                    .map_err(|e| failed("cannot start a thread to read this partition", Cause::new(e)))?
                    .join()
                    .unwrap_or_else(|_| {
                        Err(failed(
                            "cannot read this partition",
                            Cause::new("the thread reading it panicked"),
                        ))
                    })
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
fn load_part(conn: &mut Connection, file: &Path, resume_epoch: u64) -> Result<Vec<Snapshot>, RecoveryError> {
    let err = sql_err(file);
    let mut out = Vec::new();
    // In primary-key order (no sort): a key's rows are adjacent, oldest first, so the last
    // one seen before the key changes is its state at the resume epoch.
    let mut stmt = conn
        .prepare(
            "SELECT step_id, state_key, snap_epoch, route_kind, route_hash, ser_change, checksum FROM snaps \
             WHERE snap_epoch < ?1 ORDER BY step_id, state_key, snap_epoch",
        )
        .map_err(&err)?;
    let mut rows = stmt.query([resume_epoch as i64]).map_err(&err)?;
    let malformed = |why: String| RecoveryError::Corrupt {
        file: file.to_path_buf(),
        why: format!("a snapshot row is malformed: {why}"),
    };
    // The step being read (its id is shared by its rows), and the latest row of the key
    // being read.
    let mut step = StepId::new(String::new());
    let mut latest: Option<Snapshot> = None;
    while let Some(row) = rows.next().map_err(&err)? {
        let row_step = row
            .get_ref(0)
            .map_err(&err)?
            .as_str()
            .map_err(|e| malformed(e.to_string()))?;
        let key = row
            .get_ref(1)
            .map_err(&err)?
            .as_blob()
            .map_err(|e| malformed(e.to_string()))?;
        let epoch = row.get::<_, i64>(2).map_err(&err)? as u64;
        let route = route_from(row.get(3).map_err(&err)?, row.get(4).map_err(&err)?)
            .ok_or_else(|| malformed("unknown route kind".into()))?;
        let state: Option<Vec<u8>> = row.get(5).map_err(&err)?;
        let sum: i64 = row.get(6).map_err(&err)?;
        if checksum(row_step, key, epoch, route, state.as_deref()) != sum {
            return Err(RecoveryError::Checksum {
                file: file.to_path_buf(),
                step: row_step.to_string(),
                key: hex(key),
                epoch,
            });
        }
        if step.as_str() != row_step {
            step = StepId::new(row_step.to_string());
        }
        // A newer snapshot of the same key supersedes the one held.
        if let Some(held) = &mut latest
            && held.step_id == step
            && held.key == key
        {
            held.epoch = epoch;
            held.route = route;
            held.state = state;
            continue;
        }
        if let Some(done) = latest.take().filter(|l| l.state.is_some()) {
            out.push(done);
        }
        latest = Some(Snapshot {
            step_id: step.clone(),
            key: key.to_vec(),
            route,
            epoch,
            state,
        });
    }
    if let Some(done) = latest.take().filter(|l| l.state.is_some()) {
        out.push(done);
    }
    failpoint::hit(Point::DuringResume);
    Ok(out)
}
