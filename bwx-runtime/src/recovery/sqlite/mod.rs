//! [`SqliteRecovery`]: the recovery store backed by directories of SQLite partition files.
//!
//! Each partition file (`part-N.sqlite3`) holds the snapshots routed to it and, per
//! execution, how far it is complete (see `schema.rs`). Every process opens the partitions
//! in its own directory: all of the set on storage every process shares, or the part of it
//! one host keeps on its own disk. The processes then agree on a plan from what each
//! holds (every partition present once, one store, one flow, a common resume epoch), and each
//! loads and writes only the partitions it holds. Nothing is written until the first epoch of
//! the execution closes everywhere.

mod file;
mod gc;
mod init;
pub(crate) mod plan;
mod schema;
mod writer;

pub use init::{init_dir, init_parts, new_store_id, parse_parts, store_id_of};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use writer::Writer;

use self::plan::{OpenSet, PartProgress};
use crate::recovery::codec;
use crate::recovery::{PartitionWriter, RecoveryError, RecoveryStore, ResumePlan, ResumePoint, Snapshot};

/// Recovery to directories of SQLite partition files (see the [module docs](crate::recovery)).
///
/// Opening reads and checks every partition in the directory; nothing is written until the
/// first epoch of the execution closes everywhere.
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
    /// The partitions of this directory, until the state is loaded.
    set: Mutex<Option<OpenSet>>,
    summary: Summary,
    /// The files of this directory, by partition index.
    files: BTreeMap<usize, PathBuf>,
    flow_id: String,
    backup_interval: Duration,
}

/// What one process's directory holds, as every process of the cluster learns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Summary {
    /// Host and directory, to name where a partition is.
    place: String,
    /// How many partitions the set has.
    count: usize,
    /// The set's store id.
    store_id: String,
    /// The partitions here, with their progress.
    parts: Vec<(usize, PartProgress)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SqliteRecovery {
    /// Opens the partitions in `dir` for flow `flow_id`: every partition of the set, or the
    /// ones this host holds when each host keeps its own.
    ///
    /// `backup_interval` is how long superseded snapshots are kept, so that partitions
    /// backed up at different moments within it still resume at an epoch they all hold.
    pub fn open(
        dir: impl AsRef<Path>,
        backup_interval: Duration,
        flow_id: &str,
    ) -> Result<std::sync::Arc<dyn RecoveryStore>, RecoveryError> {
        Ok(std::sync::Arc::new(Self::open_store(
            dir,
            backup_interval,
            flow_id,
        )?))
    }

    /// As [`SqliteRecovery::open`], returning the concrete type.
    pub fn open_store(
        dir: impl AsRef<Path>,
        backup_interval: Duration,
        flow_id: &str,
    ) -> Result<SqliteRecovery, RecoveryError> {
        let dir = dir.as_ref();
        let set = plan::open_set(dir, Some(flow_id), false)?;
        let progress = plan::progress(&set)?;
        let first = &set.ids[0];
        let summary = Summary {
            place: format!("{}:{}", host_name(), dir.display()),
            count: first.count,
            store_id: first.store_id.clone(),
            parts: set.ids.iter().map(|id| id.index).zip(progress).collect(),
        };
        let files = set
            .ids
            .iter()
            .map(|id| id.index)
            .zip(set.files.iter().cloned())
            .collect();
        Ok(SqliteRecovery {
            set: Mutex::new(Some(set)),
            summary,
            files,
            flow_id: flow_id.to_string(),
            backup_interval,
        })
    }

    /// The partition files of this directory, by index.
    pub fn files(&self) -> Vec<PathBuf> {
        self.files.values().cloned().collect()
    }
}

/// This machine's name, for messages that say where a partition is.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if ok && !name.is_empty() => name.to_string(),
        _ => "localhost".to_string(),
    }
}

impl RecoveryStore for SqliteRecovery {
    fn partitions(&self) -> usize {
        self.summary.count
    }

    fn local_summary(&self) -> Result<Vec<u8>, RecoveryError> {
        codec::encode(&self.summary)
            .map_err(|e| RecoveryError::Usage(format!("cannot encode the partitions' summary: {e}")))
    }

    fn plan(&self, summaries: &[Vec<u8>]) -> Result<ResumePlan, RecoveryError> {
        let summaries = summaries
            .iter()
            .enumerate()
            .map(|(process, bytes)| {
                codec::decode::<Summary>(bytes).map_err(|e| {
                    RecoveryError::Usage(format!(
                        "cannot read the partitions' summary of process {process}: {e}"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        agree(&summaries)
    }

    fn load(&self, plan: &ResumePlan, process: usize) -> Result<Vec<Snapshot>, RecoveryError> {
        let mut set = lock(&self.set).take().ok_or_else(|| {
            RecoveryError::Usage("the recovery state of this process was loaded already".into())
        })?;
        plan::load(&mut set, plan.point.epoch, |index| {
            plan.holders.get(index) == Some(&process)
        })
    }

    fn open_writer(
        &self,
        plan: &ResumePlan,
        parts: Vec<usize>,
        workers: usize,
    ) -> Result<Box<dyn PartitionWriter>, RecoveryError> {
        let files = parts
            .into_iter()
            .map(|p| {
                self.files.get(&p).map(|f| (p, f.clone())).ok_or_else(|| {
                    RecoveryError::Usage(format!(
                        "partition {p} is to be written here but is not in {}",
                        self.summary.place
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(Writer::open(
            files,
            self.summary.count,
            writer::Execution {
                flow_id: self.flow_id.clone(),
                ex_num: plan.point.execution,
                resume_epoch: plan.point.epoch,
                workers,
            },
            self.backup_interval,
        )?))
    }
}

/// The plan from every process's summary: the set must be complete and of one store; a
/// partition several processes report (storage they share) must read the same in each,
/// and is held by one of them; the resume point is computed over all partitions.
fn agree(summaries: &[Summary]) -> Result<ResumePlan, RecoveryError> {
    let Some(first) = summaries.first() else {
        return Err(RecoveryError::Usage("no process reported its partitions".into()));
    };
    let place_of = |s: &Summary, index: usize| PathBuf::from(format!("{}/part-{index}.sqlite3", s.place));
    let mut by_index: BTreeMap<usize, Vec<(usize, &PartProgress)>> = BTreeMap::new();
    for (process, s) in summaries.iter().enumerate() {
        if s.count != first.count {
            return Err(RecoveryError::Inconsistent {
                dir: PathBuf::from(&s.place),
                why: format!(
                    "its partitions belong to a set of {} partitions, those in {} to a set of {}",
                    s.count, first.place, first.count
                ),
            });
        }
        if s.store_id != first.store_id
            && let Some((index, _)) = s.parts.first()
        {
            return Err(RecoveryError::ForeignStore {
                file: place_of(s, *index),
                other: first
                    .parts
                    .first()
                    .map_or_else(|| PathBuf::from(&first.place), |(i, _)| place_of(first, *i)),
            });
        }
        for (index, progress) in &s.parts {
            by_index.entry(*index).or_default().push((process, progress));
        }
    }
    let missing: Vec<usize> = (0..first.count).filter(|i| !by_index.contains_key(i)).collect();
    if !missing.is_empty() {
        let places: Vec<&str> = summaries.iter().map(|s| s.place.as_str()).collect();
        return Err(RecoveryError::MissingPartitions {
            dir: PathBuf::from(places.join(", ")),
            count: first.count,
            missing,
        });
    }
    let mut holders = Vec::with_capacity(first.count);
    let mut progress = Vec::with_capacity(first.count);
    let mut names = Vec::with_capacity(first.count);
    for (index, reports) in by_index {
        let (process, held) = reports[0];
        if let Some((other, _)) = reports.iter().find(|(_, p)| *p != held) {
            return Err(RecoveryError::HeldTwice {
                partition: index,
                places: vec![
                    place_of(&summaries[process], index),
                    place_of(&summaries[*other], index),
                ],
            });
        }
        // Storage every reporter shares: spread the partitions over them.
        let holder = reports[index % reports.len()].0;
        holders.push(holder);
        progress.push(held.clone());
        names.push(place_of(&summaries[holder], index));
    }
    let resume = plan::plan(&names, &progress)?;
    Ok(ResumePlan {
        point: ResumePoint {
            execution: resume.ex_num,
            epoch: resume.resume_epoch,
        },
        holders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> PartProgress {
        PartProgress {
            executions: Vec::new(),
            gc_epoch: 0,
            after_last_snapshot: 0,
        }
    }

    fn summary(place: &str, store: &str, parts: &[usize]) -> Summary {
        Summary {
            place: place.into(),
            count: 4,
            store_id: store.into(),
            parts: parts.iter().map(|p| (*p, fresh())).collect(),
        }
    }

    #[test]
    fn hosts_holding_disjoint_partitions_each_hold_their_own() {
        let plan = agree(&[summary("a:/s", "x", &[0, 2]), summary("b:/s", "x", &[1, 3])]).unwrap();
        assert_eq!(plan.holders, vec![0, 1, 0, 1]);
        // Fresh partitions: the first epoch, as without recovery.
        assert_eq!(plan.point.epoch, crate::recovery::FIRST_EPOCH);
    }

    #[test]
    fn shared_storage_spreads_the_partitions_over_the_processes() {
        let all = [0, 1, 2, 3];
        let plan = agree(&[summary("a:/s", "x", &all), summary("a:/s", "x", &all)]).unwrap();
        assert_eq!(plan.holders, vec![0, 1, 0, 1]);
    }

    #[test]
    fn a_set_that_does_not_hold_together_is_refused_naming_where() {
        let err = agree(&[summary("a:/s", "x", &[0, 1]), summary("b:/s", "x", &[3])]).unwrap_err();
        let m = err.to_string();
        assert!(m.contains("part-2.sqlite3") && m.contains("a:/s, b:/s"), "{m}");

        let mut b = summary("b:/s", "x", &[1, 2, 3]);
        b.parts[0].1.gc_epoch = 5;
        let err = agree(&[summary("a:/s", "x", &[0, 1]), b]).unwrap_err();
        assert!(
            matches!(err, RecoveryError::HeldTwice { partition: 1, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("a:/s/part-1.sqlite3 and b:/s/part-1.sqlite3"),
            "{err}"
        );

        let err = agree(&[summary("a:/s", "x", &[0, 1]), summary("b:/s", "y", &[2, 3])]).unwrap_err();
        assert!(matches!(err, RecoveryError::ForeignStore { .. }), "{err}");
        assert!(err.to_string().contains("b:/s/part-2.sqlite3"), "{err}");
    }
}
