//! One worker's writes: snapshots grouped into snapshot epochs, one transaction per
//! partition per snapshot epoch, then the worker's frontier, then garbage collection.
//!
//! Order matters for crashes: a worker's frontier is written only after every snapshot of
//! the epochs below it is committed, so a frontier never claims state that is not stored.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior, params};

use super::RecoveryError;
use super::failpoint::{self, Point};
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
    /// Cluster frontiers seen, with when, to find the GC point a backup interval ago.
    history: VecDeque<(Instant, u64)>,
    /// Per partition, the GC point already applied (read from the file on first use).
    gc_done: Vec<Option<u64>>,
}

impl WorkerWriter {
    pub(crate) fn new(worker: usize, shared: &Shared) -> Self {
        WorkerWriter {
            worker,
            conns: (0..shared.files.len()).map(|_| None).collect(),
            registered: false,
            buffer: BTreeMap::new(),
            closed_through: None,
            frontier: shared.plan.resume_epoch,
            history: VecDeque::new(),
            gc_done: vec![None; shared.files.len()],
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
        for (part, mut rows) in by_part.into_iter().enumerate() {
            if rows.is_empty() && !register {
                continue;
            }
            // In primary-key order, inserts append to the B-tree instead of touching
            // random pages: several times faster for large snapshots.
            rows.sort_unstable_by(|a, b| (a.step_id.as_str(), &a.key).cmp(&(b.step_id.as_str(), &b.key)));
            self.write_part(shared, workers, part, register, &rows)?;
            if register && part == 0 {
                failpoint::hit(Point::FirstEpoch);
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

    fn write_part(
        &mut self,
        shared: &Shared,
        workers: usize,
        part: usize,
        register: bool,
        rows: &[Snapshot],
    ) -> Result<(), RecoveryError> {
        let file = &shared.files[part];
        let err = sql_err(file);
        let plan = &shared.plan;
        let conn = self.conn(shared, part)?;
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
            for snap in rows {
                let step = snap.step_id.as_str();
                let sum = checksum(step, &snap.key, snap.epoch, snap.state.as_deref());
                insert
                    .execute(params![step, snap.key, snap.epoch as i64, snap.state, sum])
                    .map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)
    }

    /// The cluster frontier: the smallest frontier of this execution's workers.
    fn cluster_frontier(&mut self, shared: &Shared, workers: usize) -> Result<u64, RecoveryError> {
        let ex = shared.plan.ex_num as i64;
        let mut fronts: Vec<Option<u64>> = vec![None; workers];
        for part in 0..shared.files.len() {
            let file = &shared.files[part];
            let conn = self.conn(shared, part)?;
            let mut stmt = conn
                .prepare_cached("SELECT worker_index, worker_frontier FROM fronts WHERE ex_num = ?1")
                .map_err(sql_err(file))?;
            let rows = stmt
                .query_map([ex], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql_err(file))?;
            for row in rows {
                let (w, f) = row.map_err(sql_err(file))?;
                if let Some(slot) = fronts.get_mut(w as usize) {
                    *slot = Some(f as u64);
                }
            }
        }
        Ok(fronts
            .into_iter()
            .map(|f| f.unwrap_or(shared.plan.resume_epoch))
            .min()
            .unwrap_or(shared.plan.resume_epoch))
    }

    /// Deletes snapshots superseded before the cluster frontier of a backup interval ago,
    /// in the partitions this worker looks after (partition `p` by worker `p % workers`).
    fn collect_garbage(&mut self, shared: &Shared, workers: usize) -> Result<(), RecoveryError> {
        let owned: Vec<usize> = (0..shared.files.len())
            .filter(|p| p % workers.max(1) == self.worker)
            .collect();
        if owned.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let frontier = self.cluster_frontier(shared, workers)?;
        self.history.push_back((now, frontier));
        // The GC point: the newest cluster frontier at least a backup interval old. A
        // backup of any partition taken since then resumes at or after it.
        let mut oldest_enough = None;
        while let Some(&(at, f)) = self.history.front() {
            if now.duration_since(at) < shared.backup_interval {
                break;
            }
            oldest_enough = Some((at, f));
            self.history.pop_front();
        }
        let Some((at, point)) = oldest_enough else {
            return Ok(());
        };
        // Keep the point for the next round: it stays the newest one old enough.
        self.history.push_front((at, point));
        for part in owned {
            let file = &shared.files[part];
            let err = sql_err(file);
            let applied = self.gc_done[part];
            let conn = self.conn(shared, part)?;
            let done = match applied {
                Some(d) => d,
                None => conn
                    .query_row("SELECT COALESCE(MAX(commit_epoch), 0) FROM commits", [], |r| {
                        r.get::<_, i64>(0)
                    })
                    .map_err(&err)? as u64,
            };
            if point <= done {
                self.gc_done[part] = Some(done);
                continue;
            }
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&err)?;
            // A snapshot is superseded once a newer one of its key is below the point; only
            // keys written since the last GC point can have become superseded.
            tx.execute(
                "DELETE FROM snaps WHERE snap_epoch < ?2 \
                 AND (step_id, state_key) IN (SELECT step_id, state_key FROM snaps WHERE snap_epoch >= ?1 AND snap_epoch < ?2) \
                 AND EXISTS (SELECT 1 FROM snaps AS n WHERE n.step_id = snaps.step_id AND n.state_key = snaps.state_key \
                             AND n.snap_epoch > snaps.snap_epoch AND n.snap_epoch < ?2)",
                params![done as i64, point as i64],
            )
            .map_err(&err)?;
            // A discard that is its key's latest snapshot below the point means "no state",
            // as an absent key does.
            tx.execute(
                "DELETE FROM snaps WHERE ser_change IS NULL AND snap_epoch >= ?1 AND snap_epoch < ?2",
                params![done as i64, point as i64],
            )
            .map_err(&err)?;
            tx.execute(
                "INSERT OR REPLACE INTO commits(part_index, commit_epoch) VALUES (?1, ?2)",
                params![part as i64, point as i64],
            )
            .map_err(&err)?;
            tx.commit().map_err(&err)?;
            failpoint::hit(Point::DuringGc);
            self.gc_done[part] = Some(point);
        }
        Ok(())
    }
}
