//! Recovery end to end: resume, rescaling, GC, graceful stop, and every bad-directory case
//! with its own message.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bwx_runtime::prelude::*;
use bwx_runtime::recovery::{self, RecoveryError, RecoveryStore, SqliteRecovery, init_dir, inspect};
use bwx_runtime::testing::{TestingEvent, TestingSink, TestingSource};

type Out = TestingSink<(String, u64)>;

/// Items `(key, 1)` over 8 keys, with EOFs after every `chunk` items.
fn events(total: usize, chunk: usize) -> Vec<TestingEvent<(String, u64)>> {
    let mut out = Vec::new();
    for i in 0..total {
        out.push(TestingEvent::Item((format!("k{}", i % 8), (i as u64) + 1)));
        if (i + 1) % chunk == 0 {
            out.push(TestingEvent::Eof);
        }
    }
    out
}

/// A running sum per key.
fn sum_flow(flow_id: &str, step: &str, events: Vec<TestingEvent<(String, u64)>>) -> (Dataflow, Out) {
    let flow = Dataflow::new(flow_id);
    let out = TestingSink::new();
    flow.input("inp", TestingSource::from_events(events).batch_size(3))
        .stateful_map(step, |s: Option<u64>, v: u64| {
            let t = s.unwrap_or(0) + v;
            (Some(t), t)
        })
        .output("out", out.clone());
    (flow, out)
}

fn run(flow: &Dataflow, dir: &Path, workers: usize) -> Result<(), FlowError> {
    let hook = SqliteRecovery::open(dir, Duration::ZERO, "sums")?;
    let config = RunConfig::default()
        .epoch_interval(Duration::from_millis(2))
        .recovery(hook);
    bwx_runtime::run_workers(flow, workers, config)
}

fn last_per_key(items: Vec<(String, u64)>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (k, v) in items {
        let e = out.entry(k).or_insert(0);
        *e = (*e).max(v);
    }
    out
}

fn expected_sums(upto: usize) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for i in 0..upto {
        *out.entry(format!("k{}", i % 8)).or_insert(0) += (i as u64) + 1;
    }
    out
}

#[test]
fn resume_rescales_two_to_one_to_three_workers() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), 4).unwrap();
    let all = events(600, 200);
    let mut seen = 0;
    for (round, workers) in [2usize, 1, 3].into_iter().enumerate() {
        let (flow, out) = sum_flow("sums", "sum", all.clone());
        run(&flow, dir.path(), workers).unwrap();
        let got = out.take();
        seen += got.len();
        // Each execution reads exactly the next chunk and continues every key's sum.
        assert_eq!(got.len(), 200, "round {round}");
        let last = last_per_key(got);
        let expected = expected_sums(200 * (round + 1));
        assert_eq!(last, expected, "round {round} with {workers} workers");
    }
    assert_eq!(seen, 600);
    let found = inspect(dir.path()).unwrap();
    let counts: Vec<usize> = found.executions.iter().map(|e| e.worker_count).collect();
    assert_eq!(counts, vec![2, 1, 3]);
    assert_eq!(found.steps.iter().find(|s| s.step == "sums.sum").unwrap().keys, 8);
    // Every partition recorded that the last execution completed.
    assert!(
        found
            .partition_progress
            .iter()
            .all(|p| p.last_execution == Some(2) && p.complete),
        "{:?}",
        found.partition_progress
    );
}

#[test]
fn an_abort_resumes_at_the_least_frontier_of_any_partition() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), 3).unwrap();
    let mut evs = Vec::new();
    for i in 0..30 {
        evs.push(TestingEvent::Item((format!("k{}", i % 5), 1)));
        evs.push(TestingEvent::Pause(Duration::from_millis(3)));
    }
    evs.push(TestingEvent::Abort);
    let (flow, _) = sum_flow("sums", "sum", evs);
    let hook = SqliteRecovery::open(dir.path(), Duration::ZERO, "sums").unwrap();
    let config = RunConfig::default()
        .epoch_interval(Duration::from_millis(1))
        .recovery(hook);
    bwx_runtime::run_workers(&flow, 2, config).unwrap();
    let found = inspect(dir.path()).unwrap();
    let fronts: Vec<u64> = found
        .partition_progress
        .iter()
        .map(|p| {
            assert!(!p.complete, "an aborted execution is not complete: {p:?}");
            p.frontier.unwrap()
        })
        .collect();
    assert!(fronts.iter().all(|f| *f > 5), "{fronts:?}");
    assert_eq!(found.resume_epoch, fronts.iter().min().copied());
}

/// Rows stored for one step, straight from the files.
fn rows(dir: &Path, step: &str) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sqlite3") {
            let conn = rusqlite::Connection::open(&path).unwrap();
            let c: i64 = conn
                .query_row("SELECT COUNT(*) FROM snaps WHERE step_id = ?1", [step], |r| {
                    r.get(0)
                })
                .unwrap();
            n += c as usize;
        }
    }
    n
}

fn paced(n: usize) -> Vec<TestingEvent<(String, u64)>> {
    let mut evs = Vec::new();
    for _ in 0..n {
        evs.push(TestingEvent::Item(("k".to_string(), 1)));
        evs.push(TestingEvent::Pause(Duration::from_millis(2)));
    }
    evs
}

#[test]
fn gc_keeps_superseded_snapshots_for_the_backup_interval_only() {
    for (backup, few) in [(Duration::ZERO, true), (Duration::from_secs(3600), false)] {
        let dir = tempfile::tempdir().unwrap();
        init_dir(dir.path(), 2).unwrap();
        let (flow, _) = sum_flow("sums", "sum", paced(40));
        let hook = SqliteRecovery::open(dir.path(), backup, "sums").unwrap();
        let config = RunConfig::default()
            .epoch_interval(Duration::from_millis(1))
            .recovery(hook);
        bwx_runtime::run_main_with(&flow, config).unwrap();
        let n = rows(dir.path(), "sums.sum");
        if few {
            assert!(n <= 3, "{n} rows of one key kept with no backup interval");
        } else {
            assert!(n >= 10, "only {n} rows kept within the backup interval");
        }
        // Either way the state resumes intact.
        let (flow, out) = sum_flow("sums", "sum", {
            let mut e = paced(40);
            e.push(TestingEvent::Item(("k".to_string(), 2)));
            e
        });
        run(&flow, dir.path(), 1).unwrap();
        assert_eq!(out.take(), vec![("k".to_string(), 42)]);
    }
}

#[test]
fn discarded_keys_are_deleted_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), 2).unwrap();
    let flow = Dataflow::new("sums");
    let out: Out = TestingSink::new();
    let items = vec![
        ("a".to_string(), 1u64),
        ("b".to_string(), 1),
        ("a".to_string(), 0),
    ];
    flow.input("inp", TestingSource::new(items))
        // A zero discards the key's state.
        .stateful_map("sum", |s: Option<u64>, v: u64| {
            if v == 0 {
                (None, 0)
            } else {
                (Some(s.unwrap_or(0) + v), v)
            }
        })
        .output("out", out.clone());
    run(&flow, dir.path(), 2).unwrap();
    let found = inspect(dir.path()).unwrap();
    let sums = found.steps.iter().find(|s| s.step == "sums.sum").unwrap();
    assert_eq!(sums.keys, 1);
    assert!(
        recovery::inspect::key_state(dir.path(), "sums.sum", "a")
            .unwrap()
            .is_none()
    );
    let b = recovery::inspect::key_state(dir.path(), "sums.sum", "b")
        .unwrap()
        .unwrap();
    assert_eq!(b.state, serde_json::json!(1));
}

#[test]
fn graceful_stop_writes_a_final_snapshot_without_eof() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), 2).unwrap();
    let build = || {
        let flow = Dataflow::new("counts");
        let out: Out = TestingSink::new();
        let mut evs = Vec::new();
        for i in 0..400u64 {
            evs.push(TestingEvent::Item((format!("k{}", i % 4), 1)));
            evs.push(TestingEvent::Pause(Duration::from_millis(1)));
        }
        flow.input("inp", TestingSource::from_events(evs))
            .count_final("count", |(k, _): &(String, u64)| k.clone())
            .output("out", out.clone());
        (flow, out)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (flow, out) = build();
    let trigger = stop.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        trigger.store(true, Ordering::SeqCst);
    });
    let hook = SqliteRecovery::open(dir.path(), Duration::ZERO, "counts").unwrap();
    let config = RunConfig::default()
        .epoch_interval(Duration::from_millis(20))
        .recovery(hook)
        .stop_flag(stop);
    bwx_runtime::run_workers(&flow, 2, config).unwrap();
    stopper.join().unwrap();
    // A stop is not EOF: count_final emitted nothing, and the counts are stored.
    assert!(out.take().is_empty());
    let found = inspect(dir.path()).unwrap();
    let stored = found.steps.iter().find(|s| s.step == "counts.count").unwrap();
    assert_eq!(stored.keys, 4);
    // The resumed run finishes the input; the counts cover every item exactly once.
    let (flow, out) = build();
    let hook = SqliteRecovery::open(dir.path(), Duration::ZERO, "counts").unwrap();
    let config = RunConfig::default()
        .epoch_interval(Duration::from_millis(20))
        .recovery(hook);
    bwx_runtime::run_workers(&flow, 2, config).unwrap();
    let mut got = out.take();
    got.sort();
    let expected: Vec<(String, u64)> = (0..4).map(|k| (format!("k{k}"), 100)).collect();
    assert_eq!(got, expected);
}

#[test]
fn sigterm_stops_the_flow_gracefully() {
    let flow = Dataflow::new("sig");
    let out: TestingSink<u64> = TestingSink::new();
    let mut evs = Vec::new();
    for i in 0..100_000u64 {
        evs.push(TestingEvent::Item(i));
        evs.push(TestingEvent::Pause(Duration::from_millis(1)));
    }
    flow.input("inp", TestingSource::from_events(evs))
        .output("out", out.clone());
    let config = RunConfig::default()
        .epoch_interval(Duration::from_millis(10))
        .stop_on_signals()
        .unwrap();
    let signaller = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: raising a signal whose handler only stores to an atomic.
        unsafe { libc::raise(libc::SIGTERM) };
    });
    let started = std::time::Instant::now();
    bwx_runtime::run_main_with(&flow, config).unwrap();
    signaller.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    let n = out.take().len();
    assert!(n > 0 && n < 100_000, "{n} items");
}

/// An error and its causes, as the command line prints them.
fn message(err: impl std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// Opens a directory, plans the resume (as one process) and loads its state: the error of
/// the first step that refuses it.
fn open_err(dir: &Path, flow: &str) -> String {
    let opened = SqliteRecovery::open_store(dir, Duration::ZERO, flow).and_then(|store| {
        let plan = store.plan(&[store.local_summary()?])?;
        store.load(&plan, 0)
    });
    match opened {
        Ok(_) => panic!("opened a bad recovery directory"),
        Err(e) => message(e),
    }
}

/// A directory with one completed run of the sums flow.
fn written_dir(parts: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), parts).unwrap();
    let (flow, _) = sum_flow("sums", "sum", events(40, 40));
    run(&flow, dir.path(), 2).unwrap();
    dir
}

fn sql(dir: &Path, part: usize, statement: &str) {
    let conn = rusqlite::Connection::open(dir.join(format!("part-{part}.sqlite3"))).unwrap();
    conn.execute_batch(statement).unwrap();
}

#[test]
fn no_partitions_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = open_err(dir.path(), "sums");
    assert!(m.contains("no recovery partitions in"), "{m}");
    assert!(m.contains("recovery init"), "{m}");
    let m = open_err(&dir.path().join("absent"), "sums");
    assert!(m.contains("no recovery partitions in"), "{m}");
}

#[test]
fn missing_partitions_are_named() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), 3).unwrap();
    std::fs::remove_file(dir.path().join("part-1.sqlite3")).unwrap();
    let m = open_err(dir.path(), "sums");
    assert!(m.contains("missing recovery partitions"), "{m}");
    assert!(m.contains("part-1.sqlite3"), "{m}");
}

#[test]
fn partitions_of_another_flow_are_refused() {
    let dir = written_dir(2);
    let m = open_err(dir.path(), "other");
    assert!(m.contains("belongs to flow 'sums', not to flow 'other'"), "{m}");
}

#[test]
fn partitions_of_different_sets_are_inconsistent() {
    let a = tempfile::tempdir().unwrap();
    init_dir(a.path(), 2).unwrap();
    let b = tempfile::tempdir().unwrap();
    init_dir(b.path(), 3).unwrap();
    std::fs::copy(b.path().join("part-1.sqlite3"), a.path().join("part-1.sqlite3")).unwrap();
    let m = open_err(a.path(), "sums");
    assert!(m.contains("inconsistent recovery partitions"), "{m}");
}

#[test]
fn another_format_version_is_refused() {
    let dir = written_dir(2);
    sql(
        dir.path(),
        1,
        "UPDATE meta SET value = '99' WHERE name = 'format_version'",
    );
    let m = open_err(dir.path(), "sums");
    assert!(m.contains("part-1.sqlite3 has recovery format version 99"), "{m}");
}

#[test]
fn a_changed_value_fails_its_checksum() {
    let dir = written_dir(1);
    sql(
        dir.path(),
        0,
        "UPDATE snaps SET ser_change = X'0105' WHERE step_id = 'sums.sum'",
    );
    let m = open_err(dir.path(), "sums");
    assert!(m.contains("checksum mismatch in"), "{m}");
    assert!(m.contains("part-0.sqlite3"), "{m}");
}

#[test]
fn a_bit_flip_inside_a_stored_value_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), 1).unwrap();
    let flow = Dataflow::new("sums");
    let marker = "MARKER-0123456789-MARKER".to_string();
    let value = marker.clone();
    flow.input("inp", TestingSource::new(vec![("k".to_string(), 1u64)]))
        .stateful_map("keep", move |_s: Option<String>, _v: u64| {
            (Some(value.clone()), 0u64)
        })
        .output("out", TestingSink::new());
    run(&flow, dir.path(), 1).unwrap();
    // Checkpoint the WAL into the main file, then flip one bit of the stored string there.
    sql(dir.path(), 0, "PRAGMA wal_checkpoint(TRUNCATE);");
    let path = dir.path().join("part-0.sqlite3");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .expect("the stored value is in the file");
    bytes[at + 7] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let m = open_err(dir.path(), "sums");
    assert!(m.contains("checksum mismatch in"), "{m}");
    assert!(m.contains("step 'sums.keep'"), "{m}");
}

#[test]
fn a_zero_length_partition_is_refused() {
    let dir = written_dir(2);
    std::fs::write(dir.path().join("part-0.sqlite3"), b"").unwrap();
    let m = open_err(dir.path(), "sums");
    assert!(m.contains("part-0.sqlite3 is empty (zero-length)"), "{m}");
}

#[test]
fn a_truncated_partition_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), 1).unwrap();
    let (flow, _) = sum_flow("sums", "sum", events(3000, 3000));
    run(&flow, dir.path(), 1).unwrap();
    sql(dir.path(), 0, "PRAGMA wal_checkpoint(TRUNCATE);");
    let path = dir.path().join("part-0.sqlite3");
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 8192, "file of {len} bytes");
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    let m = open_err(dir.path(), "sums");
    assert!(m.contains("part-0.sqlite3 is truncated or corrupt"), "{m}");
}

#[test]
fn a_gc_point_past_the_resume_epoch_is_refused() {
    let dir = written_dir(2);
    sql(dir.path(), 1, "UPDATE gc SET gc_epoch = 1000000");
    let m = open_err(dir.path(), "sums");
    assert!(m.contains("the partitions hold no common resume epoch"), "{m}");
    assert!(
        m.contains("part-1.sqlite3 was garbage-collected through epoch 1000000"),
        "{m}"
    );
}

#[test]
fn a_renamed_step_is_refused_unless_its_state_may_be_dropped() {
    let dir = written_dir(2);
    let (flow, _) = sum_flow("sums", "total", events(40, 40));
    let open = || SqliteRecovery::open(dir.path(), Duration::ZERO, "sums").unwrap();
    let err = bwx_runtime::run_workers(&flow, 2, RunConfig::default().recovery(open())).unwrap_err();
    let m = message(err);
    assert!(m.contains("step 'sums.sum' is not in the flow"), "{m}");
    // Told to drop it, the renamed step starts from scratch.
    let mut more = events(40, 40);
    more.push(TestingEvent::Item(("k0".to_string(), 5)));
    let (flow, out) = sum_flow("sums", "total", more);
    let config = RunConfig::default().recovery(open()).drop_unmatched_state(true);
    bwx_runtime::run_workers(&flow, 2, config).unwrap();
    assert_eq!(out.take(), vec![("k0".to_string(), 5)]);
}

#[test]
fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = written_dir(2);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.path()), 0o700);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}

#[test]
fn init_is_idempotent_for_the_same_count_only() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), 2).unwrap();
    assert_eq!(init_dir(dir.path(), 2).unwrap().len(), 2);
    let err: RecoveryError = init_dir(dir.path(), 3).unwrap_err();
    assert!(message(err).contains("already holds a set of 2 partitions"));
    assert!(message(init_dir(dir.path(), 0).unwrap_err()).contains("at least 1"));
}

#[test]
fn a_join_resumes_its_sides_after_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), 2).unwrap();
    // Left values come before the stop, right values after it: the join can only
    // complete if the left side was stored and resumed.
    let build = || {
        let flow = Dataflow::new("joins");
        let out: TestingSink<(String, Vec<Option<u64>>)> = TestingSink::new();
        let mut left = Vec::new();
        // The right side waits long enough for the first run to be stopped first.
        let mut right = vec![TestingEvent::Pause(Duration::from_secs(30))];
        for k in 0..6u64 {
            left.push(TestingEvent::Item((format!("k{k}"), k)));
            right.push(TestingEvent::Item((format!("k{k}"), 100 + k)));
        }
        let l = flow.input("left", TestingSource::from_events(left));
        let r = flow.input("right", TestingSource::from_events(right));
        flow.join("join", [&l, &r], JoinInsertMode::Last, JoinEmitMode::Complete)
            .output("out", out.clone());
        (flow, out)
    };
    let (flow, out) = build();
    let stop = Arc::new(AtomicBool::new(false));
    let hook = SqliteRecovery::open(dir.path(), Duration::ZERO, "joins").unwrap();
    // Stop once the left side is in, while the right side still waits.
    let trigger = stop.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        trigger.store(true, Ordering::SeqCst);
    });
    let config = RunConfig::default()
        .epoch_interval(Duration::from_millis(10))
        .recovery(hook)
        .stop_flag(stop);
    bwx_runtime::run_workers(&flow, 2, config).unwrap();
    stopper.join().unwrap();
    assert!(out.take().is_empty());
    // The left source resumes after its 6 items, so only the stored left side can join.
    let (flow, out) = build();
    let hook = SqliteRecovery::open(dir.path(), Duration::ZERO, "joins").unwrap();
    bwx_runtime::run_workers(&flow, 2, RunConfig::default().recovery(hook)).unwrap();
    let mut got = out.take();
    got.sort();
    let expected: Vec<(String, Vec<Option<u64>>)> = (0..6)
        .map(|k| (format!("k{k}"), vec![Some(k), Some(100 + k)]))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn per_worker_windows_resume_with_their_watermark_and_queue_after_a_stop() {
    use bwx_runtime::windowing::{EventClock, PerWorker, TumblingWindower};
    use bwx_runtime::worker_for_key;

    type Down = TestingSink<(String, (i64, Vec<i64>))>;
    type Late = TestingSink<(String, (i64, i64))>;
    // Before the stop, k0's item at 25 moves the watermark to 20: every window 0 closes,
    // 12 is late, and 25 waits in the ordered queue. After it, 5 must still be late,
    // which only a restored watermark knows. Key `other` is on the other worker of two
    // than k0, the only key with stored state.
    let k0 = "k0".to_string();
    let other = (1..)
        .map(|i| format!("k{i}"))
        .find(|k| worker_for_key(k, 2) != worker_for_key(&k0, 2))
        .unwrap();
    let build = |pause: bool| {
        let flow = Dataflow::new("wins");
        let (down, late): (Down, Late) = (TestingSink::new(), TestingSink::new());
        let mut evs: Vec<_> = [
            ("k0", 1),
            (other.as_str(), 2),
            ("k7", 3),
            ("k8", 4),
            ("k0", 25),
            (other.as_str(), 12),
        ]
        .into_iter()
        .map(|(k, ts)| TestingEvent::Item((k.to_string(), ts)))
        .collect();
        if pause {
            evs.push(TestingEvent::Pause(Duration::from_secs(30)));
        }
        evs.extend(
            [(other.as_str(), 5), ("k7", 27), ("k8", 40)]
                .into_iter()
                .map(|(k, ts)| TestingEvent::Item((k.to_string(), ts))),
        );
        let clock = PerWorker::new(EventClock::replay(|ts: &i64| *ts, Duration::from_millis(5)));
        let win = TumblingWindower::new(Duration::from_millis(10), 0).unwrap();
        let w = flow
            .input("inp", TestingSource::from_events(evs))
            .collect_window("win", clock, win, true);
        w.down.output("down", down.clone());
        w.late.output("late", late.clone());
        (flow, down, late)
    };
    fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
        v.sort();
        v
    }

    // The reference: one worker, no stop.
    let (flow, down, late) = build(false);
    bwx_runtime::run_main(&flow).unwrap();
    let (want_down, want_late) = (sorted(down.take()), sorted(late.take()));
    assert!(want_late.contains(&(other.clone(), (0, 5))), "{want_late:?}");

    // Stopped during the pause on one worker, resumed on two.
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), 2).unwrap();
    let (flow, down, late) = build(true);
    let stop = Arc::new(AtomicBool::new(false));
    let trigger = stop.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        trigger.store(true, Ordering::SeqCst);
    });
    let hook = SqliteRecovery::open(dir.path(), Duration::ZERO, "wins").unwrap();
    let config = RunConfig::default()
        .epoch_interval(Duration::from_millis(10))
        .recovery(hook)
        .stop_flag(stop);
    bwx_runtime::run_workers(&flow, 1, config).unwrap();
    stopper.join().unwrap();
    let (mut got_down, mut got_late) = (down.take(), late.take());
    assert_eq!(
        got_down.len(),
        4,
        "every window 0 closed before the stop: {got_down:?}"
    );

    let (flow, down, late) = build(true);
    let hook = SqliteRecovery::open(dir.path(), Duration::ZERO, "wins").unwrap();
    bwx_runtime::run_workers(&flow, 2, RunConfig::default().recovery(hook)).unwrap();
    got_down.extend(down.take());
    got_late.extend(late.take());
    assert_eq!(sorted(got_down), want_down);
    assert_eq!(sorted(got_late), want_late);
}

/// What the partitions of [`Counted`] were told, in order.
#[derive(Clone, Debug, PartialEq)]
enum Told {
    /// `commit` of this position, with what was wrong about it.
    Commit(String, u64, Option<String>),
    Close(String),
}

/// Partitions `p0`, `p1`, ... each reading 1..=n, one a batch, the last with EOF; the
/// position is the last number read. With a store, every commit checks that its position
/// is stored for an epoch the store holds in every partition.
struct Counted {
    parts: usize,
    n: u64,
    store: Option<Arc<bwx_runtime::testing::MemoryStore>>,
    told: Arc<std::sync::Mutex<Vec<Told>>>,
}

struct CountedPart {
    name: String,
    at: u64,
    n: u64,
    store: Option<Arc<bwx_runtime::testing::MemoryStore>>,
    told: Arc<std::sync::Mutex<Vec<Told>>>,
}

impl bwx_runtime::inputs::FixedPartitionedSource for Counted {
    type Item = u64;
    type State = u64;
    type Partition = CountedPart;

    fn list_parts(&self) -> Result<Vec<String>, bwx_runtime::inputs::ConnectorError> {
        Ok((0..self.parts).map(|p| format!("p{p}")).collect())
    }

    fn build_part(
        &self,
        _: &StepId,
        for_part: &str,
        resume: Option<u64>,
    ) -> Result<CountedPart, bwx_runtime::inputs::ConnectorError> {
        Ok(CountedPart {
            name: for_part.to_string(),
            at: resume.unwrap_or(0),
            n: self.n,
            store: self.store.clone(),
            told: self.told.clone(),
        })
    }
}

impl CountedPart {
    /// What is wrong about committing `position` now, if anything.
    fn not_durable(&self, position: u64) -> Option<String> {
        let store = self.store.as_ref()?;
        let key = recovery::codec::part_key(&self.name);
        let state = recovery::codec::encode(&position).ok()?;
        let Some(epoch) = store
            .written()
            .iter()
            .find(|s| s.step_id.as_str() == "counted.inp" && s.key == key && s.state.as_ref() == Some(&state))
            .map(|s| s.epoch)
        else {
            return Some("never stored".into());
        };
        match store.durable_until() {
            Some(until) if until <= epoch => Some(format!("stored at epoch {epoch}, durable until {until}")),
            _ => None,
        }
    }
}

impl bwx_runtime::inputs::StatefulSourcePartition for CountedPart {
    type Item = u64;
    type State = u64;

    fn next_batch(
        &mut self,
        batch: &mut Vec<u64>,
    ) -> Result<BatchStatus, bwx_runtime::inputs::ConnectorError> {
        self.at += 1;
        batch.push(self.at);
        Ok(if self.at >= self.n {
            BatchStatus::Eof
        } else {
            BatchStatus::Active
        })
    }

    fn snapshot(&self) -> u64 {
        self.at
    }

    fn commit(&mut self, durable: &u64) -> Result<(), bwx_runtime::inputs::ConnectorError> {
        let wrong = self.not_durable(*durable);
        self.told
            .lock()
            .unwrap()
            .push(Told::Commit(self.name.clone(), *durable, wrong));
        Ok(())
    }

    fn close(&mut self) -> Result<(), bwx_runtime::inputs::ConnectorError> {
        self.told.lock().unwrap().push(Told::Close(self.name.clone()));
        Ok(())
    }
}

fn counted_flow(source: Counted) -> (Dataflow, TestingSink<u64>) {
    let flow = Dataflow::new("counted");
    let out = TestingSink::new();
    flow.input("inp", source).output("out", out.clone());
    (flow, out)
}

#[test]
fn source_positions_are_committed_once_durable_in_order_and_before_close() {
    let (parts, n) = (3, 40);
    let store = bwx_runtime::testing::MemoryStore::new(2);
    let told = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (flow, out) = counted_flow(Counted {
        parts,
        n,
        store: Some(store.clone()),
        told: told.clone(),
    });
    let config = RunConfig::default()
        .epoch_interval(Duration::ZERO)
        .recovery(store.clone());
    bwx_runtime::run_workers(&flow, 2, config).unwrap();
    assert_eq!(out.take().len(), parts * n as usize);
    let told = told.lock().unwrap().clone();
    for p in 0..parts {
        let name = format!("p{p}");
        let mine: Vec<&Told> = told
            .iter()
            .filter(|t| matches!(t, Told::Commit(x, ..) | Told::Close(x) if *x == name))
            .collect();
        let commits: Vec<u64> = mine
            .iter()
            .filter_map(|t| match t {
                Told::Commit(_, position, None) => Some(*position),
                Told::Commit(_, position, Some(wrong)) => panic!("{name} committed {position}: {wrong}"),
                Told::Close(_) => None,
            })
            .collect();
        assert!(
            commits.windows(2).all(|w| w[0] < w[1]),
            "{name} committed out of order: {commits:?}"
        );
        assert_eq!(
            commits.last(),
            Some(&n),
            "{name} did not commit its last position: {told:?}"
        );
        assert_eq!(
            mine.last(),
            Some(&&Told::Close(name.clone())),
            "{name} closed before its last commit"
        );
        assert_eq!(mine.iter().filter(|t| matches!(t, Told::Close(_))).count(), 1);
    }
}

#[test]
fn without_recovery_every_epochs_position_is_committed_at_its_end() {
    let told = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (flow, out) = counted_flow(Counted {
        parts: 1,
        n: 5,
        store: None,
        told: told.clone(),
    });
    bwx_runtime::run_workers(&flow, 1, RunConfig::default().epoch_interval(Duration::ZERO)).unwrap();
    assert_eq!(out.take(), vec![1, 2, 3, 4, 5]);
    let commit = |position| Told::Commit("p0".into(), position, None);
    assert_eq!(
        *told.lock().unwrap(),
        vec![
            commit(1),
            commit(2),
            commit(3),
            commit(4),
            commit(5),
            Told::Close("p0".into())
        ]
    );
}
