//! Garbage collection of superseded snapshots on a thread of its own, one per worker that
//! looks after partitions, so that snapshot writes never wait for it.
//!
//! After each of the worker's frontier writes the thread reads the cluster frontier; the
//! GC point is the newest cluster frontier at least a backup interval old. A pass up to
//! GC point `P` deletes, for every key written since the last complete pass, every
//! snapshot older than the key's latest one below `P`, and that one too if it is a
//! discard (an absent key means "no state" as a discard does).
//!
//! A pass works in chunks of [`CHUNK`] rows of the epoch index, one transaction each, so
//! that writers of the same file wait for one chunk at most. Before deleting anything it
//! records `P` as the file's GC point (`commits`): a resume before `P` would miss state,
//! and the GC point is what refuses it. Where the next pass starts (`meta.gc_done`) moves
//! to `P` only once the pass is complete, so a crash mid-pass makes the next pass redo the
//! keys of the unfinished one instead of skipping them.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::RecoveryError;
use super::failpoint::{self, Point};
use super::store::{self, sql_err};

/// Rows of the epoch index per GC transaction.
const CHUNK: i64 = 4096;

/// What the GC thread of one worker needs to know.
pub(crate) struct GcConfig {
    /// Every partition file, by index (the cluster frontier is read from all of them).
    pub(crate) files: Vec<PathBuf>,
    /// The partitions this worker collects.
    pub(crate) owned: Vec<usize>,
    /// The current execution, its resume epoch and its worker count.
    pub(crate) ex_num: u64,
    pub(crate) resume_epoch: u64,
    pub(crate) workers: usize,
    /// How long superseded snapshots are kept.
    pub(crate) backup_interval: Duration,
}

/// The handle of a GC thread. Dropping it lets the thread finish the requested passes
/// and waits for it.
pub(crate) struct Collector {
    wake: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    failed: Arc<Mutex<Option<RecoveryError>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Collector {
    pub(crate) fn spawn(config: GcConfig) -> Result<Self, RecoveryError> {
        let (wake, rx) = mpsc::channel();
        let failed = Arc::new(Mutex::new(None));
        let report = failed.clone();
        let first = config.files.first().cloned().unwrap_or_default();
        let thread = std::thread::Builder::new()
            .name("bwx-recovery-gc".into())
            .spawn(move || {
                let mut gc = Gc {
                    conns: (0..config.files.len()).map(|_| None).collect(),
                    history: VecDeque::new(),
                    config,
                };
                if let Err(e) = gc.run(rx) {
                    *lock(&report) = Some(e);
                }
            })
            .map_err(|e| RecoveryError::Io {
                file: first,
                why: format!("cannot start the garbage collection thread: {e}"),
            })?;
        Ok(Collector {
            wake: Some(wake),
            thread: Some(thread),
            failed,
        })
    }

    /// The worker wrote a frontier: the thread looks for a new GC point. Returns the error
    /// that stopped the thread, if one did.
    pub(crate) fn frontier_written(&mut self) -> Result<(), RecoveryError> {
        if let Some(e) = lock(&self.failed).take() {
            self.wake = None;
            return Err(e);
        }
        if let Some(wake) = &self.wake {
            // A send fails only when the thread has stopped, with an error reported next time.
            let _ = wake.send(());
        }
        Ok(())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.wake = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("recovery: the garbage collection thread panicked");
        }
        if let Some(e) = lock(&self.failed).take() {
            tracing::error!(error = %e, "recovery: garbage collection stopped");
        }
    }
}

struct Gc {
    config: GcConfig,
    conns: Vec<Option<Connection>>,
    /// Cluster frontiers seen, with when, to find the GC point a backup interval ago.
    history: VecDeque<(Instant, u64)>,
}

impl Gc {
    fn conn(&mut self, part: usize) -> Result<&mut Connection, RecoveryError> {
        let file = &self.config.files[part];
        let slot = &mut self.conns[part];
        if slot.is_none() {
            let (conn, _) = store::open_partition(file)?;
            *slot = Some(conn);
        }
        slot.as_mut()
            .ok_or_else(|| RecoveryError::Usage("partition connection vanished".into()))
    }

    fn run(&mut self, wake: Receiver<()>) -> Result<(), RecoveryError> {
        while wake.recv().is_ok() {
            // Wake-ups that arrived during the last pass are answered by one look.
            while wake.try_recv().is_ok() {}
            let Some(point) = self.gc_point()? else {
                continue;
            };
            for part in self.config.owned.clone() {
                self.pass(part, point)?;
            }
        }
        Ok(())
    }

    /// The newest cluster frontier at least a backup interval old: a backup of any
    /// partition taken since then resumes at or after it.
    fn gc_point(&mut self) -> Result<Option<u64>, RecoveryError> {
        let now = Instant::now();
        let frontier = self.cluster_frontier()?;
        self.history.push_back((now, frontier));
        let mut oldest_enough = None;
        while let Some(&(at, f)) = self.history.front() {
            if now.duration_since(at) < self.config.backup_interval {
                break;
            }
            oldest_enough = Some((at, f));
            self.history.pop_front();
        }
        // Keep the point for the next round: it stays the newest one old enough.
        if let Some(kept) = oldest_enough {
            self.history.push_front(kept);
        }
        Ok(oldest_enough.map(|(_, point)| point))
    }

    /// The smallest frontier of this execution's workers.
    fn cluster_frontier(&mut self) -> Result<u64, RecoveryError> {
        let ex = self.config.ex_num as i64;
        let resume = self.config.resume_epoch;
        let mut fronts: Vec<Option<u64>> = vec![None; self.config.workers];
        for part in 0..self.config.files.len() {
            let file = self.config.files[part].clone();
            let conn = self.conn(part)?;
            let mut stmt = conn
                .prepare_cached("SELECT worker_index, worker_frontier FROM fronts WHERE ex_num = ?1")
                .map_err(sql_err(&file))?;
            let rows = stmt
                .query_map([ex], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql_err(&file))?;
            for row in rows {
                let (w, f) = row.map_err(sql_err(&file))?;
                if let Some(slot) = fronts.get_mut(w as usize) {
                    *slot = Some(f as u64);
                }
            }
        }
        Ok(fronts
            .into_iter()
            .map(|f| f.unwrap_or(resume))
            .min()
            .unwrap_or(resume))
    }

    /// One pass over partition `part` up to GC point `point` (see the module docs).
    fn pass(&mut self, part: usize, point: u64) -> Result<(), RecoveryError> {
        let file = self.config.files[part].clone();
        let err = sql_err(&file);
        let conn = self.conn(part)?;
        let recorded: i64 = conn
            .query_row("SELECT COALESCE(MAX(commit_epoch), 0) FROM commits", [], |r| {
                r.get(0)
            })
            .map_err(&err)?;
        // Files whose passes all completed before `gc_done` existed start at their GC point.
        let done: i64 = conn
            .query_row("SELECT value FROM meta WHERE name = 'gc_done'", [], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(&err)?
            .map(|v| {
                v.parse::<i64>().map_err(|_| RecoveryError::Corrupt {
                    file: file.clone(),
                    why: format!("the garbage collection progress '{v}' is not an epoch"),
                })
            })
            .transpose()?
            .unwrap_or(recorded);
        let point = point as i64;
        if point <= done {
            return Ok(());
        }
        if point > recorded {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&err)?;
            tx.execute(
                "INSERT OR REPLACE INTO meta(name, value) VALUES ('gc_done', ?1)",
                [done.to_string()],
            )
            .map_err(&err)?;
            tx.execute(
                "INSERT OR REPLACE INTO commits(part_index, commit_epoch) VALUES (?1, ?2)",
                params![part as i64, point],
            )
            .map_err(&err)?;
            tx.commit().map_err(&err)?;
        }
        // Chunks are ranges of the epoch index (snap_epoch, step_id, state_key) over the
        // rows written in [done, point); each deletes the superseded rows of its keys.
        let mut low: (i64, String, Vec<u8>) = (done, String::new(), Vec::new());
        loop {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&err)?;
            let next: Option<(i64, String, Vec<u8>)> = tx
                .prepare_cached(
                    "SELECT snap_epoch, step_id, state_key FROM snaps \
                     WHERE (snap_epoch, step_id, state_key) >= (?1, ?2, ?3) AND snap_epoch < ?4 \
                     ORDER BY snap_epoch, step_id, state_key LIMIT 1 OFFSET ?5",
                )
                .map_err(&err)?
                .query_row(params![low.0, low.1, low.2, point, CHUNK], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
                .map_err(&err)?;
            // Every row below the point sorts before (point, '', x'').
            let high = next.clone().unwrap_or((point, String::new(), Vec::new()));
            tx.prepare_cached(
                "DELETE FROM snaps WHERE (step_id, state_key) IN \
                   (SELECT step_id, state_key FROM snaps \
                    WHERE (snap_epoch, step_id, state_key) >= (?1, ?2, ?3) \
                    AND (snap_epoch, step_id, state_key) < (?5, ?6, ?7) AND snap_epoch < ?4) \
                 AND snap_epoch < ?4 \
                 AND (ser_change IS NULL OR EXISTS (SELECT 1 FROM snaps AS n \
                      WHERE n.step_id = snaps.step_id AND n.state_key = snaps.state_key \
                      AND n.snap_epoch > snaps.snap_epoch AND n.snap_epoch < ?4))",
            )
            .map_err(&err)?
            .execute(params![low.0, low.1, low.2, point, high.0, high.1, high.2])
            .map_err(&err)?;
            tx.commit().map_err(&err)?;
            failpoint::hit(Point::DuringGc);
            match next {
                Some(n) => low = n,
                None => break,
            }
        }
        conn.execute(
            "INSERT OR REPLACE INTO meta(name, value) VALUES ('gc_done', ?1)",
            [point.to_string()],
        )
        .map_err(&err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::store::checksum;

    fn gc_of(file: PathBuf) -> Gc {
        Gc {
            config: GcConfig {
                files: vec![file],
                owned: vec![0],
                ex_num: 0,
                resume_epoch: 0,
                workers: 1,
                backup_interval: Duration::ZERO,
            },
            conns: vec![None],
            history: VecDeque::new(),
        }
    }

    fn put(conn: &Connection, key: u32, epoch: i64, state: Option<&[u8]>) {
        let key = key.to_be_bytes().to_vec();
        let sum = checksum("f.s", &key, epoch as u64, state);
        conn.execute(
            "INSERT OR REPLACE INTO snaps VALUES ('f.s', ?1, ?2, ?3, ?4)",
            params![key, epoch, state, sum],
        )
        .unwrap();
    }

    /// Epochs of the rows of each key, by key.
    fn epochs(conn: &Connection) -> std::collections::BTreeMap<u32, Vec<i64>> {
        let mut out = std::collections::BTreeMap::<u32, Vec<i64>>::new();
        let mut stmt = conn
            .prepare("SELECT state_key, snap_epoch FROM snaps ORDER BY state_key, snap_epoch")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
            .unwrap();
        for row in rows {
            let (k, e) = row.unwrap();
            out.entry(u32::from_be_bytes(k.try_into().unwrap()))
                .or_default()
                .push(e);
        }
        out
    }

    #[test]
    fn a_chunked_pass_keeps_each_keys_latest_state_below_the_point() {
        let dir = tempfile::tempdir().unwrap();
        store::create_partition(dir.path(), 0, 1).unwrap();
        let file = store::part_path(dir.path(), 0);
        let (mut conn, _) = store::open_partition(&file).unwrap();
        // More keys than one chunk, so that the pass takes several transactions.
        let keys = 3 * CHUNK as u32 + 7;
        let tx = conn.transaction().unwrap();
        for k in 0..keys {
            put(&tx, k, 0, Some(b"a"));
            put(&tx, k, 1, Some(b"b"));
            if k % 3 == 0 {
                put(&tx, k, 2, None);
            }
            if k % 5 == 0 {
                put(&tx, k, 5, Some(b"c"));
            }
        }
        tx.commit().unwrap();
        let mut gc = gc_of(file.clone());
        gc.pass(0, 4).unwrap();
        let after = epochs(&conn);
        for k in 0..keys {
            // A discard as the latest state below the point leaves nothing below it; rows
            // at or after the point are untouched.
            let mut want = if k % 3 == 0 { vec![] } else { vec![1] };
            if k % 5 == 0 {
                want.push(5);
            }
            assert_eq!(after.get(&k).cloned().unwrap_or_default(), want, "key {k}");
        }
        let (commit, done): (i64, String) = conn
            .query_row(
                "SELECT (SELECT commit_epoch FROM commits), (SELECT value FROM meta WHERE name = 'gc_done')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((commit, done.as_str()), (4, "4"));
    }

    #[test]
    fn an_interrupted_pass_is_redone_from_where_the_last_complete_one_ended() {
        let dir = tempfile::tempdir().unwrap();
        store::create_partition(dir.path(), 0, 1).unwrap();
        let file = store::part_path(dir.path(), 0);
        let (conn, _) = store::open_partition(&file).unwrap();
        for k in 0..10 {
            put(&conn, k, 1, Some(b"a"));
            put(&conn, k, 2, Some(b"b"));
        }
        // A pass to 3 recorded its GC point and died before finishing.
        conn.execute_batch("UPDATE commits SET commit_epoch = 3; INSERT INTO meta VALUES ('gc_done', '0');")
            .unwrap();
        gc_of(file.clone()).pass(0, 3).unwrap();
        assert!(epochs(&conn).values().all(|e| *e == vec![2]));
        // A point at or below the completed pass does nothing.
        put(&conn, 0, 0, Some(b"z"));
        gc_of(file).pass(0, 3).unwrap();
        assert_eq!(epochs(&conn)[&0], vec![0, 2]);
    }
}
