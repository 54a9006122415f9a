//! The writer of the partitions one worker owns: one transaction per partition and write,
//! holding the partition's rows and its progress together, so that a partition never
//! claims snapshots it does not hold; garbage collection between writes ([`super::gc`]).

use std::cmp::Ordering;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior, params};

use super::file::{self as store, sql_err};
use super::gc::Collector;
use super::schema::checksum;
use super::schema::route_columns;
use crate::cause::Cause;
use crate::recovery::failpoint::{self, Point};
use crate::recovery::{PartitionWriter, Progress, RecoveryError, Snapshot, partition_of};

/// The execution a writer writes for.
pub(crate) struct Execution {
    pub(crate) flow_id: String,
    pub(crate) ex_num: u64,
    pub(crate) resume_epoch: u64,
    pub(crate) workers: usize,
}

/// One owned partition.
struct Part {
    index: usize,
    file: PathBuf,
    conn: Connection,
    /// Whether this execution is recorded in the partition yet.
    registered: bool,
}

/// Writes the partitions one worker owns (see the module docs).
pub(crate) struct Writer {
    parts: Vec<Part>,
    /// How many partitions the set has.
    count: usize,
    execution: Execution,
    gc: Collector,
}

/// From this many rows in one write on, the partitions are written in parallel.
const PARALLEL_ROWS: usize = 20_000;

impl Writer {
    /// Opens the owned partitions, `(index, file)`, of a set of `count`.
    pub(crate) fn open(
        owned: Vec<(usize, PathBuf)>,
        count: usize,
        execution: Execution,
        backup_interval: Duration,
    ) -> Result<Writer, RecoveryError> {
        let parts = owned
            .into_iter()
            .map(|(index, file)| {
                let (conn, _) = store::open_partition(&file)?;
                Ok(Part {
                    index,
                    file,
                    conn,
                    registered: false,
                })
            })
            .collect::<Result<Vec<_>, RecoveryError>>()?;
        Ok(Writer {
            parts,
            count,
            gc: Collector::new(backup_interval),
            execution,
        })
    }
}

impl PartitionWriter for Writer {
    fn write(&mut self, rows: Vec<Snapshot>, progress: Progress) -> Result<(), RecoveryError> {
        let mut by_part: Vec<Vec<Snapshot>> = self.parts.iter().map(|_| Vec::new()).collect();
        for row in rows {
            let index = partition_of(row.step_id.as_str(), &row.key, self.count);
            match self.parts.iter().position(|p| p.index == index) {
                Some(slot) => by_part[slot].push(row),
                None => {
                    return Err(RecoveryError::Usage(format!(
                        "a snapshot of step '{}' for partition {index} reached a worker that does not own it",
                        row.step_id
                    )));
                }
            }
        }
        let total: usize = by_part.iter().map(Vec::len).sum();
        let execution = &self.execution;
        let work: Vec<(&mut Part, Vec<Snapshot>)> = self.parts.iter_mut().zip(by_part).collect();
        if total >= PARALLEL_ROWS && work.len() > 1 {
            // One thread per partition: SQLite writes to different files do not contend.
            let results: Vec<Result<(), RecoveryError>> = std::thread::scope(|scope| {
                let spawned: Vec<_> = work
                    .into_iter()
                    .map(|(part, rows)| {
                        let file = part.file.clone();
                        std::thread::Builder::new()
                            .name("bwx-recovery-write".into())
                            .spawn_scoped(scope, move || write_part(part, execution, rows, progress))
                            .map_err(|e| RecoveryError::Io {
                                file,
                                doing: "cannot start a thread to write this partition".into(),
                                cause: Cause::new(e),
                            })
                    })
                    .collect();
                spawned
                    .into_iter()
                    .map(|handle| {
                        handle?.join().unwrap_or_else(|_| {
                            Err(RecoveryError::Usage("a partition writer thread panicked".into()))
                        })
                    })
                    .collect()
            });
            results.into_iter().collect::<Result<(), _>>()
        } else {
            for (part, rows) in work {
                write_part(part, execution, rows, progress)?;
            }
            Ok(())
        }
    }

    fn durable(&mut self, frontier: u64) -> Result<(), RecoveryError> {
        self.gc
            .cluster_durable(frontier, self.parts.iter().map(|p| p.index));
        Ok(())
    }

    fn has_garbage(&self) -> bool {
        self.gc.has_work()
    }

    fn collect_garbage(&mut self) -> Result<(), RecoveryError> {
        let Some(index) = self.gc.next_part() else {
            return Ok(());
        };
        match self.parts.iter_mut().find(|p| p.index == index) {
            Some(part) => self.gc.step(&mut part.conn, &part.file),
            None => Ok(()),
        }
    }
}

/// Writes one partition's rows and its progress in one transaction; the first write of an
/// execution also records it, dropping what a crashed execution wrote past its resume epoch.
fn write_part(
    part: &mut Part,
    ex: &Execution,
    rows: Vec<Snapshot>,
    progress: Progress,
) -> Result<(), RecoveryError> {
    // In primary-key order, inserts append to the B-tree instead of touching random
    // pages: several times faster for large snapshots. References sort faster than rows.
    let mut sorted: Vec<&Snapshot> = rows.iter().collect();
    sorted.sort_unstable_by(|a, b| {
        let (sa, sb) = (a.step_id.as_str(), b.step_id.as_str());
        // The rows of a step share one id: no string comparison needed.
        let step = if std::ptr::eq(sa, sb) {
            Ordering::Equal
        } else {
            sa.cmp(sb)
        };
        step.then_with(|| a.key.cmp(&b.key))
            .then_with(|| a.epoch.cmp(&b.epoch))
    });
    let err = sql_err(&part.file);
    let register = !part.registered;
    let tx = part
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&err)?;
    if register {
        let new = tx
            .execute(
                "INSERT OR IGNORE INTO exs(ex_num, worker_count, resume_epoch, frontier, complete) \
                 VALUES (?1, ?2, ?3, ?3, 0)",
                params![ex.ex_num as i64, ex.workers as i64, ex.resume_epoch as i64],
            )
            .map_err(&err)?;
        if new == 1 {
            // What an earlier execution wrote from the resume epoch on was never part of
            // the state this one resumed from; a later resume must not take it for it.
            tx.execute(
                "DELETE FROM snaps WHERE snap_epoch >= ?1",
                [ex.resume_epoch as i64],
            )
            .map_err(&err)?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO meta(name, value) VALUES ('flow_id', ?1)",
            [&ex.flow_id],
        )
        .map_err(&err)?;
    }
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO snaps(step_id, state_key, snap_epoch, route_kind, route_hash, ser_change, checksum) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(&err)?;
        for snap in sorted {
            let step = snap.step_id.as_str();
            let sum = checksum(step, &snap.key, snap.epoch, snap.route, snap.state.as_deref());
            let (kind, hash) = route_columns(snap.route);
            insert
                .execute(params![
                    step,
                    snap.key,
                    snap.epoch as i64,
                    kind,
                    hash,
                    snap.state,
                    sum
                ])
                .map_err(&err)?;
        }
    }
    match progress {
        Progress::Until(frontier) => tx.execute(
            "UPDATE exs SET frontier = MAX(frontier, ?1) WHERE ex_num = ?2",
            params![frontier as i64, ex.ex_num as i64],
        ),
        Progress::Complete { until } => tx.execute(
            "UPDATE exs SET complete = 1, frontier = MAX(frontier, ?1) WHERE ex_num = ?2",
            params![until as i64, ex.ex_num as i64],
        ),
    }
    .map_err(&err)?;
    tx.commit().map_err(&err)?;
    part.registered = true;
    if register {
        failpoint::hit(Point::FirstEpoch);
    }
    failpoint::hit(Point::AfterSnapshotWrite);
    Ok(())
}
