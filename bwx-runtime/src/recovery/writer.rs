//! One worker's writes: snapshots grouped into snapshot epochs, one transaction per
//! partition per snapshot epoch (the partitions in parallel for large epochs), then the
//! worker's frontier; garbage collection follows on a thread of its own ([`super::gc`]).
//!
//! Order matters for crashes: a worker's frontier is written only after every snapshot of
//! the epochs below it is committed, so a frontier never claims state that is not stored.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior, params};

use super::RecoveryError;
use super::failpoint::{self, Point};
use super::gc::{Collector, GcConfig};
use super::store::{self, checksum, partition_of, sql_err};
use super::{Snapshot, resume::ResumePlan};

/// What every worker's writer of one execution shares.
pub(crate) struct Shared {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) flow_id: String,
    pub(crate) plan: ResumePlan,
    pub(crate) backup_interval: Duration,
    pub(crate) snapshot_every: u64,
}

/// The writer of one worker.
pub(crate) struct WorkerWriter {
    worker: usize,
    conns: Vec<Option<Connection>>,
    /// Whether this worker has made sure every partition records this execution.
    registered: bool,
    /// Snapshots of closed epochs not yet written, by epoch.
    buffer: BTreeMap<u64, Vec<Snapshot>>,
    /// The last epoch this worker saw close.
    closed_through: Option<u64>,
    /// The frontier last written (first epoch not durable).
    frontier: u64,
    /// The GC thread for the partitions this worker looks after, once it has written.
    collector: Option<Collector>,
}

/// From this many rows in one snapshot epoch on, the partitions are written in parallel.
const PARALLEL_ROWS: usize = 20_000;

impl WorkerWriter {
    pub(crate) fn new(worker: usize, shared: &Shared) -> Self {
        WorkerWriter {
            worker,
            conns: (0..shared.files.len()).map(|_| None).collect(),
            registered: false,
            buffer: BTreeMap::new(),
            closed_through: None,
            frontier: shared.plan.resume_epoch,
            collector: None,
        }
    }

    fn conn(&mut self, shared: &Shared, part: usize) -> Result<&mut Connection, RecoveryError> {
        let slot = &mut self.conns[part];
        if slot.is_none() {
            let (conn, _) = store::open_partition(&shared.files[part])?;
            *slot = Some(conn);
        }
        slot.as_mut()
            .ok_or_else(|| RecoveryError::Usage("partition connection vanished".into()))
    }

    /// Epoch `epoch` closed on this worker with `snapshots`; writes when a snapshot epoch
    /// (every `snapshot_every`-th) has closed.
    pub(crate) fn epoch_closed(
        &mut self,
        shared: &Shared,
        workers: usize,
        epoch: u64,
        snapshots: Vec<Snapshot>,
    ) -> Result<(), RecoveryError> {
        for snap in snapshots {
            self.buffer.entry(snap.epoch).or_default().push(snap);
        }
        self.closed_through = Some(self.closed_through.map_or(epoch, |c| c.max(epoch)));
        // Snapshot epochs are fixed by number, the same on every worker, so that every
        // worker's durable state lines up at the frontier the resume picks.
        let every = shared.snapshot_every.max(1);
        let boundary = ((epoch + 1) / every * every).checked_sub(1);
        match boundary {
            Some(b) if b + 1 > self.frontier => self.flush(shared, workers, b),
            _ => Ok(()),
        }
    }

    /// The worker finished (EOF or a graceful stop): everything closed is written.
    pub(crate) fn finish(&mut self, shared: &Shared, workers: usize) -> Result<(), RecoveryError> {
        let last = self
            .buffer
            .last_key_value()
            .map(|(e, _)| *e)
            .max(self.closed_through);
        match last {
            Some(b) if b + 1 > self.frontier || !self.buffer.is_empty() => self.flush(shared, workers, b),
            _ => Ok(()),
        }
    }

    /// Writes every buffered snapshot of epochs up to `boundary`, then frontier `boundary + 1`.
    fn flush(&mut self, shared: &Shared, workers: usize, boundary: u64) -> Result<(), RecoveryError> {
        let later = self.buffer.split_off(&(boundary + 1));
        let ready = std::mem::replace(&mut self.buffer, later);
        let parts = shared.files.len();
        let mut by_part: Vec<Vec<Snapshot>> = vec![Vec::new(); parts];
        if ready.len() <= 1 {
            for snap in ready.into_values().flatten() {
                by_part[partition_of(snap.step_id.as_str(), &snap.key, parts)].push(snap);
            }
        } else {
            // Several epochs in one snapshot epoch: only each key's latest state is kept.
            let mut latest: HashMap<(crate::flow::StepId, Vec<u8>), Snapshot> = HashMap::new();
            for snap in ready.into_values().flatten() {
                latest.insert((snap.step_id.clone(), snap.key.clone()), snap);
            }
            for snap in latest.into_values() {
                by_part[partition_of(snap.step_id.as_str(), &snap.key, parts)].push(snap);
            }
        }
        let register = !self.registered;
        // A registering write touches every partition, so that each records the execution.
        let mut jobs: Vec<(usize, Vec<Snapshot>)> = by_part
            .into_iter()
            .enumerate()
            .filter(|(_, rows)| register || !rows.is_empty())
            .collect();
        for (part, _) in &jobs {
            self.conn(shared, *part)?;
        }
        let rows: usize = jobs.iter().map(|(_, r)| r.len()).sum();
        let mut work: Vec<(usize, &mut Connection, Vec<Snapshot>)> = Vec::with_capacity(jobs.len());
        for (part, conn) in self.conns.iter_mut().enumerate() {
            if let Some(at) = jobs.iter().position(|(p, _)| *p == part) {
                let (_, snaps) = jobs.swap_remove(at);
                let conn = conn
                    .as_mut()
                    .ok_or_else(|| RecoveryError::Usage("partition connection vanished".into()))?;
                work.push((part, conn, snaps));
            }
        }
        if rows >= PARALLEL_ROWS && work.len() > 1 {
            // One thread per partition: SQLite writes to different files do not contend.
            let results: Vec<Result<(), RecoveryError>> = std::thread::scope(|scope| {
                let spawned: Vec<_> = work
                    .into_iter()
                    .map(|(part, conn, snaps)| {
                        std::thread::Builder::new()
                            .name("bwx-recovery-write".into())
                            .spawn_scoped(scope, move || {
                                write_part(conn, shared, workers, part, register, snaps)
                            })
                            .map_err(|e| RecoveryError::Io {
                                file: shared.files[part].clone(),
                                why: format!("cannot start a thread to write this partition: {e}"),
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
            results.into_iter().collect::<Result<(), _>>()?;
        } else {
            for (part, conn, snaps) in work {
                write_part(conn, shared, workers, part, register, snaps)?;
            }
        }
        self.registered = true;
        failpoint::hit(Point::AfterSnapshotWrite);
        let frontier = boundary + 1;
        let home = self.worker % parts;
        let worker = self.worker;
        let ex = shared.plan.ex_num;
        let file = &shared.files[home];
        let conn = self.conn(shared, home)?;
        conn.execute(
            "INSERT OR REPLACE INTO fronts(ex_num, worker_index, worker_frontier) VALUES (?1, ?2, ?3)",
            params![ex as i64, worker as i64, frontier as i64],
        )
        .map_err(sql_err(file))?;
        self.frontier = frontier;
        self.collect_garbage(shared, workers)
    }

    /// Hands garbage collection of the partitions this worker looks after (partition `p`
    /// by worker `p % workers`) to its GC thread.
    fn collect_garbage(&mut self, shared: &Shared, workers: usize) -> Result<(), RecoveryError> {
        if self.collector.is_none() {
            let owned: Vec<usize> = (0..shared.files.len())
                .filter(|p| p % workers.max(1) == self.worker)
                .collect();
            if owned.is_empty() {
                return Ok(());
            }
            self.collector = Some(Collector::spawn(GcConfig {
                files: shared.files.clone(),
                owned,
                ex_num: shared.plan.ex_num,
                resume_epoch: shared.plan.resume_epoch,
                workers,
                backup_interval: shared.backup_interval,
            })?);
        }
        match &mut self.collector {
            Some(collector) => collector.frontier_written(),
            None => Ok(()),
        }
    }
}

/// Writes one partition's rows of a snapshot epoch in one transaction; a registering write
/// also records the execution.
fn write_part(
    conn: &mut Connection,
    shared: &Shared,
    workers: usize,
    part: usize,
    register: bool,
    rows: Vec<Snapshot>,
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
    });
    let file = &shared.files[part];
    let err = sql_err(file);
    let plan = &shared.plan;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&err)?;
    if register {
        // The first writer of an execution in this partition drops what the crashed
        // execution wrote past the resume epoch: that state was never part of a
        // complete snapshot, and a later resume must not mistake it for one.
        let new = tx
            .execute(
                "INSERT OR IGNORE INTO exs(ex_num, worker_count, resume_epoch) VALUES (?1, ?2, ?3)",
                params![plan.ex_num as i64, workers as i64, plan.resume_epoch as i64],
            )
            .map_err(&err)?;
        if new == 1 {
            tx.execute(
                "DELETE FROM snaps WHERE snap_epoch >= ?1",
                [plan.resume_epoch as i64],
            )
            .map_err(&err)?;
            tx.execute("DELETE FROM fronts WHERE ex_num >= ?1", [plan.ex_num as i64])
                .map_err(&err)?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO meta(name, value) VALUES ('flow_id', ?1)",
            [&shared.flow_id],
        )
        .map_err(&err)?;
    }
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO snaps(step_id, state_key, snap_epoch, ser_change, checksum) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(&err)?;
        for snap in sorted {
            let step = snap.step_id.as_str();
            let sum = checksum(step, &snap.key, snap.epoch, snap.state.as_deref());
            insert
                .execute(params![step, snap.key, snap.epoch as i64, snap.state, sum])
                .map_err(&err)?;
        }
    }
    tx.commit().map_err(&err)?;
    if register && part == 0 {
        failpoint::hit(Point::FirstEpoch);
    }
    Ok(())
}
