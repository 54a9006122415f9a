//! Garbage collection of superseded snapshots, run by a partition writer between writes in
//! steps of one transaction, so that a write never waits for more than one step.
//!
//! The writer hears the cluster's durable frontier (the least over all partitions); the
//! GC point is the newest such frontier at least a backup interval old, so that a backup of
//! any partition taken since still resumes at or after it. A pass up to GC point `P`
//! deletes, for every key written since the last complete pass, every snapshot older than
//! the key's latest one below `P`, and that one too if it is a discard (an absent key means
//! "no state" as a discard does).
//!
//! A pass works in chunks of [`CHUNK`] rows of the epoch index, one transaction each.
//! Before deleting anything it records `P` as the file's GC point (table `gc`): a resume
//! before `P` would miss state, and the GC point is what refuses it. Where the next pass
//! starts (`meta.gc_done`) moves to `P` only once the pass is complete, so a crash mid-pass
//! makes the next pass redo the keys of the unfinished one instead of skipping them.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::file::sql_err;
use crate::recovery::RecoveryError;
use crate::recovery::failpoint::{self, Point};

/// Rows of the epoch index per GC transaction.
const CHUNK: i64 = 4096;

/// Where a pass over one partition is.
struct Pass {
    part: usize,
    point: i64,
    /// The next chunk starts at this (epoch, step, key); `None` before the pass started.
    low: Option<(i64, String, Vec<u8>)>,
}

/// The garbage collection of one writer's partitions.
pub(crate) struct Collector {
    backup_interval: Duration,
    /// Cluster frontiers heard, with when, to find the GC point a backup interval ago.
    history: VecDeque<(Instant, u64)>,
    /// The last GC point passes were planned for.
    planned: u64,
    /// Passes still to run, the current one first.
    passes: VecDeque<Pass>,
}

impl Collector {
    pub(crate) fn new(backup_interval: Duration) -> Self {
        Collector {
            backup_interval,
            history: VecDeque::new(),
            planned: 0,
            passes: VecDeque::new(),
        }
    }

    /// The cluster's durable frontier is `frontier`: plans a pass over every partition in
    /// `parts` when the GC point moved.
    pub(crate) fn cluster_durable(&mut self, frontier: u64, parts: impl Iterator<Item = usize>) {
        let now = Instant::now();
        self.history.push_back((now, frontier));
        let mut oldest_enough = None;
        while let Some(&(at, f)) = self.history.front() {
            if now.duration_since(at) < self.backup_interval {
                break;
            }
            oldest_enough = Some((at, f));
            self.history.pop_front();
        }
        // Keep the point for the next round: it stays the newest one old enough.
        let Some(kept) = oldest_enough else { return };
        self.history.push_front(kept);
        let point = kept.1;
        if point <= self.planned {
            return;
        }
        self.planned = point;
        // A newer point replaces the passes not yet started.
        self.passes.retain(|p| p.low.is_some());
        for part in parts {
            self.passes.push_back(Pass {
                part,
                point: point as i64,
                low: None,
            });
        }
    }

    pub(crate) fn has_work(&self) -> bool {
        !self.passes.is_empty()
    }

    /// The partition the next step works on.
    pub(crate) fn next_part(&self) -> Option<usize> {
        self.passes.front().map(|p| p.part)
    }

    /// One step of the current pass: its start, or one chunk.
    pub(crate) fn step(&mut self, conn: &mut Connection, file: &Path) -> Result<(), RecoveryError> {
        let Some(pass) = self.passes.front_mut() else {
            return Ok(());
        };
        let done = match pass.low.take() {
            None => match begin(conn, file, pass.point)? {
                Some(done) => {
                    pass.low = Some((done, String::new(), Vec::new()));
                    false
                }
                None => true,
            },
            Some(low) => match chunk(conn, file, &low, pass.point)? {
                Some(next) => {
                    pass.low = Some(next);
                    false
                }
                None => {
                    conn.execute(
                        "INSERT OR REPLACE INTO meta(name, value) VALUES ('gc_done', ?1)",
                        [pass.point.to_string()],
                    )
                    .map_err(sql_err(file))?;
                    true
                }
            },
        };
        if done {
            self.passes.pop_front();
        }
        Ok(())
    }
}

/// Starts a pass up to `point`: records the GC point before anything is deleted. Returns
/// where the pass starts, or `None` when an earlier pass already reached the point.
fn begin(conn: &mut Connection, file: &Path, point: i64) -> Result<Option<i64>, RecoveryError> {
    let err = sql_err(file);
    let recorded: i64 = conn
        .query_row("SELECT COALESCE(MAX(gc_epoch), 0) FROM gc", [], |r| r.get(0))
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
                file: file.to_path_buf(),
                why: format!("the garbage collection progress '{v}' is not an epoch"),
            })
        })
        .transpose()?
        .unwrap_or(recorded);
    if point <= done {
        return Ok(None);
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
        tx.execute("DELETE FROM gc", []).map_err(&err)?;
        tx.execute("INSERT INTO gc(gc_epoch) VALUES (?1)", [point])
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
    }
    Ok(Some(done))
}

/// Deletes the superseded rows of the keys in one chunk of the epoch index from `low`
/// (rows written in [done, point)); returns where the next chunk starts.
fn chunk(
    conn: &mut Connection,
    file: &Path,
    low: &(i64, String, Vec<u8>),
    point: i64,
) -> Result<Option<(i64, String, Vec<u8>)>, RecoveryError> {
    let err = sql_err(file);
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
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::sqlite::file as store;
    use crate::recovery::sqlite::schema::checksum;

    /// Runs a whole pass up to `point` over partition 0.
    fn pass(conn: &mut Connection, file: &Path, point: u64) {
        let mut gc = Collector::new(Duration::ZERO);
        gc.cluster_durable(point, [0].into_iter());
        while gc.has_work() {
            gc.step(conn, file).unwrap();
        }
    }

    fn put(conn: &Connection, key: u32, epoch: i64, state: Option<&[u8]>) {
        let key = key.to_be_bytes().to_vec();
        let sum = checksum("f.s", &key, epoch as u64, crate::recovery::Route::Key(9), state);
        conn.execute(
            "INSERT OR REPLACE INTO snaps VALUES ('f.s', ?1, ?2, 1, 9, ?3, ?4)",
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
        store::create_partition(dir.path(), 0, 1, "s").unwrap();
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
        pass(&mut conn, &file, 4);
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
                "SELECT (SELECT gc_epoch FROM gc), (SELECT value FROM meta WHERE name = 'gc_done')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((commit, done.as_str()), (4, "4"));
    }

    #[test]
    fn an_interrupted_pass_is_redone_from_where_the_last_complete_one_ended() {
        let dir = tempfile::tempdir().unwrap();
        store::create_partition(dir.path(), 0, 1, "s").unwrap();
        let file = store::part_path(dir.path(), 0);
        let (mut conn, _) = store::open_partition(&file).unwrap();
        for k in 0..10 {
            put(&conn, k, 1, Some(b"a"));
            put(&conn, k, 2, Some(b"b"));
        }
        // A pass to 3 recorded its GC point and died before finishing.
        conn.execute_batch("UPDATE gc SET gc_epoch = 3; INSERT INTO meta VALUES ('gc_done', '0');")
            .unwrap();
        pass(&mut conn, &file, 3);
        assert!(epochs(&conn).values().all(|e| *e == vec![2]));
        // A point at or below the completed pass does nothing.
        put(&conn, 0, 0, Some(b"z"));
        pass(&mut conn, &file, 3);
        assert_eq!(epochs(&conn)[&0], vec![0, 2]);
    }
}

#[cfg(test)]
mod point_tests {
    use super::*;

    #[test]
    fn the_gc_point_is_the_newest_frontier_a_backup_interval_old() {
        let mut gc = Collector::new(Duration::from_millis(200));
        gc.cluster_durable(5, [0].into_iter());
        assert!(!gc.has_work(), "nothing is a backup interval old yet");
        std::thread::sleep(Duration::from_millis(250));
        gc.cluster_durable(9, [0].into_iter());
        assert_eq!(gc.passes.front().map(|p| p.point), Some(5));
    }
}
