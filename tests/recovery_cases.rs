//! Resume is right or refuses: the cases that resumed silently wrong before the epoch
//! protocol of one writer per partition, and the two-phase sink contract.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bwx::connectors::files::{DirSource, FileSink, FileSource};
use bwx::inputs::{ConnectorError, DynamicSource, StatelessSourcePartition};
use bwx::outputs::{DynamicSink, StatelessSinkPartition};
use bwx::prelude::*;
use bwx::recovery::{
    PartitionWriter, Progress, RecoveryError, RecoveryStore, ResumePlan, Snapshot, SqliteRecovery, init_dir,
    inspect,
};
use bwx::testing::{MemoryStore, TestingEvent, TestingSink, TestingSource};

/// An error and its causes, as the command line prints them.
fn report(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

fn sqlite(dir: &Path, flow: &str) -> Arc<dyn bwx::recovery::RecoveryStore> {
    SqliteRecovery::open(dir, Duration::from_secs(3600), flow).unwrap()
}

#[test]
fn a_testing_source_continues_after_each_eof_on_any_worker_count() {
    for workers in 1..=4 {
        let dir = tempfile::tempdir().unwrap();
        init_dir(dir.path(), 2).unwrap();
        let mut outputs = Vec::new();
        for _ in 0..3 {
            let flow = Dataflow::new("cont");
            let out = TestingSink::new();
            let events = vec![
                TestingEvent::Item(0u32),
                TestingEvent::Eof,
                TestingEvent::Item(1),
                TestingEvent::Eof,
                TestingEvent::Item(2),
            ];
            flow.input("inp", TestingSource::from_events(events))
                .output("out", out.clone());
            let config = RunConfig::default().recovery(sqlite(dir.path(), "cont"));
            bwx::run_workers(&flow, workers, config).unwrap();
            outputs.push(out.take());
        }
        assert_eq!(outputs, vec![vec![0], vec![1], vec![2]], "{workers} workers");
    }
}

/// Three partitions of `(key, value)` items, one segment per execution.
struct Segmented(Vec<Vec<Vec<(u32, u64)>>>);

struct SegmentedPart {
    segments: Vec<Vec<(u32, u64)>>,
    at: (usize, usize),
}

impl FixedPartitionedSource for Segmented {
    type Item = (u32, u64);
    type State = (usize, usize);
    type Partition = SegmentedPart;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok((0..self.0.len()).map(|p| format!("p{p}")).collect())
    }

    fn build_part(
        &self,
        _: &StepId,
        part: &str,
        at: Option<(usize, usize)>,
    ) -> Result<SegmentedPart, ConnectorError> {
        Ok(SegmentedPart {
            segments: self.0[part[1..].parse::<usize>()?].clone(),
            at: at.unwrap_or((0, 0)),
        })
    }
}

impl StatefulSourcePartition for SegmentedPart {
    type Item = (u32, u64);
    type State = (usize, usize);

    fn next_batch(&mut self, batch: &mut Vec<(u32, u64)>) -> Result<BatchStatus, ConnectorError> {
        let (segment, item) = self.at;
        let Some(items) = self.segments.get(segment) else {
            return Ok(BatchStatus::Eof);
        };
        batch.extend(items.get(item).copied());
        self.at = if item + 1 >= items.len() {
            (segment + 1, 0)
        } else {
            (segment, item + 1)
        };
        Ok(if self.at.0 > segment {
            BatchStatus::Eof
        } else {
            BatchStatus::Active
        })
    }

    fn snapshot(&self) -> (usize, usize) {
        self.at
    }
}

/// Keeps the maximum per key over three partitions, one execution per worker count.
fn keep_max(workers: &[usize]) -> Vec<Vec<(u32, u64)>> {
    let parts: Vec<Vec<Vec<(u32, u64)>>> = (0..3u32)
        .map(|p| {
            (0..3u64)
                .map(|s| {
                    (0..5u64)
                        .map(|i| (p, s * 100 + (i * 37 + u64::from(p)) % 50))
                        .collect()
                })
                .collect()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), 3).unwrap();
    workers
        .iter()
        .map(|&w| {
            let flow = Dataflow::new("max");
            let out = TestingSink::new();
            flow.input("inp", Segmented(parts.clone()))
                .stateful_map("max", |s: Option<u64>, v: u64| {
                    let m = s.unwrap_or(0).max(v);
                    (Some(m), m)
                })
                .output("out", out.clone());
            let config = RunConfig::default()
                .epoch_interval(Duration::from_millis(1))
                .recovery(sqlite(dir.path(), "max"));
            bwx::run_workers(&flow, w, config).unwrap();
            let mut got = out.take();
            got.sort();
            got
        })
        .collect()
}

#[test]
fn a_keep_the_maximum_flow_continues_on_changing_worker_counts() {
    let reference = keep_max(&[1, 1, 1]);
    assert_eq!(keep_max(&[3, 3, 3]), reference);
    assert_eq!(keep_max(&[1, 5, 1]), reference);
    assert_eq!(keep_max(&[2, 4, 3]), reference);
}

/// Lines `key,n` of a file sink, per key in order.
fn per_key(path: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let key = line.split(',').next().unwrap().to_string();
        out.entry(key).or_default().push(line.to_string());
    }
    out
}

/// Running sums of the lines of `input` (`key value`), to a file sink at `output`.
fn sums_flow(input: &Path, output: &Path) -> Dataflow {
    let flow = Dataflow::new("sums");
    flow.input("inp", FileSource::new(input).batch_size(5))
        .map("parse", |line: String| {
            let (k, v) = line.split_once(' ').unwrap();
            (k.to_string(), v.parse::<u64>().unwrap())
        })
        .stateful_map("sum", |s: Option<u64>, v: u64| {
            let t = s.unwrap_or(0) + v;
            (Some(t), t)
        })
        .map("fmt", |(k, t): (String, u64)| (k.clone(), format!("{k},{t}")))
        .output("out", FileSink::new(output));
    flow
}

/// Compares two file-sink outputs key by key, reporting the first difference only.
fn assert_same_lines(got: &Path, want: &Path, context: &str) {
    let (got, want) = (per_key(got), per_key(want));
    for (key, lines) in &want {
        let mine = got.get(key).cloned().unwrap_or_default();
        if let Some(at) = (0..lines.len().max(mine.len())).find(|i| lines.get(*i) != mine.get(*i)) {
            panic!(
                "{context}: key {key}: {} lines, {} expected; first difference at line {at}: {:?} instead of {:?}",
                mine.len(),
                lines.len(),
                mine.get(at),
                lines.get(at)
            );
        }
    }
    assert_eq!(got.len(), want.len(), "{context}: keys differ");
}

fn write_input(path: &Path, lines: usize) {
    let text: String = (0..lines).map(|i| format!("k{} {}\n", i % 7, i)).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_path_spelled_differently_resumes_the_same_file_partitions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let db = dir.path().join("db");
    init_dir(&db, 2).unwrap();
    let input = dir.path().join("in.txt");
    write_input(&input, 100_000);
    let output = dir.path().join("out.txt");
    // The reference: one run to the end.
    let clean = dir.path().join("clean.txt");
    bwx::run_main(&sums_flow(&input, &clean)).unwrap();

    // A first run, stopped partway ...
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(40));
            stop.store(true, Ordering::SeqCst);
        })
    };
    let config = RunConfig::default()
        .epoch_interval(Duration::from_millis(5))
        .recovery(sqlite(&db, "sums"))
        .stop_flag(stop);
    bwx::run_main_with(&sums_flow(&input, &output), config).unwrap();
    stopper.join().unwrap();
    // ... then resumed with both paths written another way: the same partitions.
    let input_again = dir.path().join("sub/../in.txt");
    let output_again = dir.path().join("./sub/../out.txt");
    let config = RunConfig::default().recovery(sqlite(&db, "sums"));
    bwx::run_main_with(&sums_flow(&input_again, &output_again), config).unwrap();
    assert_same_lines(&output, &clean, "resumed with other spellings");
}

/// A source of `count` items per partition, read slowly, as `(key, value)` with the key
/// naming its partition.
struct Paced {
    parts: usize,
    count: u64,
}

struct PacedPart {
    part: u64,
    next: u64,
    count: u64,
}

impl FixedPartitionedSource for Paced {
    type Item = (String, u64);
    type State = u64;
    type Partition = PacedPart;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok((0..self.parts).map(|p| format!("p{p}")).collect())
    }

    fn build_part(&self, _: &StepId, part: &str, resume: Option<u64>) -> Result<PacedPart, ConnectorError> {
        Ok(PacedPart {
            part: part[1..].parse()?,
            next: resume.unwrap_or(0),
            count: self.count,
        })
    }
}

impl StatefulSourcePartition for PacedPart {
    type Item = (String, u64);
    type State = u64;

    fn next_batch(&mut self, batch: &mut Vec<(String, u64)>) -> Result<BatchStatus, ConnectorError> {
        if self.next >= self.count {
            return Ok(BatchStatus::Eof);
        }
        for i in self.next..(self.next + 3).min(self.count) {
            batch.push((format!("p{}-k{}", self.part, i % 5), i));
        }
        self.next = (self.next + 3).min(self.count);
        Ok(BatchStatus::Active)
    }

    fn next_awake(&self) -> Option<std::time::SystemTime> {
        Some(std::time::SystemTime::now() + Duration::from_millis(2))
    }

    fn snapshot(&self) -> u64 {
        self.next
    }
}

fn paced_flow(output: &Path, count: u64) -> Dataflow {
    let flow = Dataflow::new("paced");
    flow.input("inp", Paced { parts: 4, count })
        .stateful_map("sum", |s: Option<u64>, v: u64| {
            let t = s.unwrap_or(0) + v;
            (Some(t), t)
        })
        .map("fmt", |(k, t): (String, u64)| (k.clone(), format!("{k},{t}")))
        .output("out", FileSink::new(output));
    flow
}

/// Copies the partition files of `db` (a backup taken while the flow runs).
fn backup(db: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(db).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".sqlite3") {
            // A consistent copy of a live WAL database, as a backup tool would take it.
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute("VACUUM INTO ?1", [to.join(&name).to_string_lossy().as_ref()])
                .unwrap();
        }
    }
}

#[test]
fn partitions_restored_from_backups_taken_at_different_moments_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    init_dir(&db, 4).unwrap();
    let count = 600;
    let clean = dir.path().join("clean.txt");
    bwx::run_main(&paced_flow(&clean, count)).unwrap();

    // Run with two workers; take backups of every partition at two moments, then stop.
    let output = dir.path().join("out.txt");
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let (db, output, stop) = (db.clone(), output.clone(), stop.clone());
        std::thread::spawn(move || {
            let config = RunConfig::default()
                .epoch_interval(Duration::from_millis(5))
                .recovery(SqliteRecovery::open(&db, Duration::from_secs(60), "paced").unwrap())
                .stop_flag(stop);
            bwx::run_workers(&paced_flow(&output, count), 2, config).unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    let early = dir.path().join("early");
    backup(&db, &early);
    std::thread::sleep(Duration::from_millis(150));
    stop.store(true, Ordering::SeqCst);
    runner.join().unwrap();
    // Restore two of the four partitions from the earlier backup: the resume must go back
    // to where they end, for every partition.
    for name in ["part-1.sqlite3", "part-3.sqlite3"] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(db.join(format!("{name}{suffix}")));
        }
        std::fs::copy(early.join(name), db.join(name)).unwrap();
    }
    let found = inspect(&db).unwrap();
    let resumed_at = found.resume_epoch.expect("the directory holds the whole set");
    let config = RunConfig::default()
        .epoch_interval(Duration::from_millis(5))
        .recovery(SqliteRecovery::open(&db, Duration::from_secs(60), "paced").unwrap());
    bwx::run_workers(&paced_flow(&output, count), 2, config).unwrap();
    assert_same_lines(&output, &clean, &format!("resumed at epoch {resumed_at}"));
}

#[test]
fn a_partition_copied_from_another_store_of_the_same_flow_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for db in [&a, &b] {
        init_dir(db, 2).unwrap();
        let out = dir.path().join("out.txt");
        let config = RunConfig::default().recovery(sqlite(db, "paced"));
        bwx::run_main_with(&paced_flow(&out, 30), config).unwrap();
    }
    std::fs::copy(b.join("part-1.sqlite3"), a.join("part-1.sqlite3")).unwrap();
    let err = SqliteRecovery::open(&a, Duration::ZERO, "paced").err().unwrap();
    let m = report(&err);
    assert!(
        m.contains("part-1.sqlite3 belongs to another recovery store"),
        "{m}"
    );
}

#[test]
fn a_stored_file_that_is_no_longer_listed_is_refused_unless_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (db, input) = (dir.path().join("db"), dir.path().join("in"));
    init_dir(&db, 2).unwrap();
    std::fs::create_dir(&input).unwrap();
    for f in ["a.log", "b.log"] {
        std::fs::write(input.join(f), "x\ny\n").unwrap();
    }
    let run = |drop: bool| {
        let flow = Dataflow::new("dirs");
        let out = TestingSink::new();
        flow.input("inp", DirSource::new(&input, "*.log").unwrap())
            .output("out", out.clone());
        let config = RunConfig::default()
            .recovery(sqlite(&db, "dirs"))
            .drop_unmatched_state(drop);
        bwx::run_workers(&flow, 2, config).map(|()| out.take())
    };
    assert_eq!(run(false).unwrap().len(), 4);
    std::fs::remove_file(input.join("b.log")).unwrap();
    let err = run(false).unwrap_err();
    let m = report(&err);
    assert!(
        m.contains("step 'dirs.inp' has stored partitions it no longer lists: 'b.log'"),
        "{m}"
    );
    // Told to drop it, the run goes on: a.log was read to its end before.
    assert_eq!(run(true).unwrap(), Vec::<String>::new());
}

#[test]
fn an_epoch_per_batch_snapshots_after_every_batch() {
    let store = MemoryStore::new(1);
    let flow = Dataflow::new("batches");
    let events: Vec<TestingEvent<(String, u64)>> = (0..10)
        .map(|i| TestingEvent::Item((format!("k{}", i % 2), i)))
        .collect();
    flow.input("inp", TestingSource::from_events(events))
        .stateful_map("sum", |s: Option<u64>, v: u64| (Some(s.unwrap_or(0) + v), v))
        .output("out", TestingSink::new());
    let config = RunConfig::default()
        .epoch_interval(Duration::ZERO)
        .recovery(store.clone());
    bwx::run_main_with(&flow, config).unwrap();
    let positions: Vec<(u64, u64)> = store
        .written()
        .into_iter()
        .filter(|s| s.step_id.as_str() == "batches.inp")
        .map(|s| {
            (
                s.epoch,
                bwx::recovery::codec::decode::<u64>(&s.state.unwrap()).unwrap(),
            )
        })
        .collect();
    // One item per batch: the tenth batch closed the tenth epoch, with the position after
    // it (writes that wait behind each other store only the newest position).
    assert_eq!(positions.last(), Some(&(9, 10)), "{positions:?}");
    assert!(
        positions.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
        "{positions:?}"
    );
    assert_eq!(store.resume().resume_point().epoch, 10);
}

#[test]
fn a_state_that_no_longer_decodes_is_an_error_naming_step_and_key() {
    let store = MemoryStore::new(2);
    let run = |store: Arc<MemoryStore>, text: bool| {
        let flow = Dataflow::new("dec");
        let inp = flow.input("inp", TestingSource::new(vec![("a".to_string(), 1u64)]));
        if text {
            inp.stateful_map("sum", |s: Option<String>, v: u64| (Some(format!("{s:?}{v}")), v))
                .output("out", TestingSink::new());
        } else {
            inp.stateful_map("sum", |s: Option<u64>, v: u64| (Some(s.unwrap_or(0) + v), v))
                .output("out", TestingSink::new());
        }
        bwx::run_workers(&flow, 2, RunConfig::default().recovery(store))
    };
    run(store.clone(), false).unwrap();
    let err = run(store.resume(), true).unwrap_err();
    assert!(matches!(err, FlowError::StateDecode { .. }), "{err:?}");
    let m = report(&err);
    assert!(
        m.contains("step 'dec.sum' on worker ") && m.contains("cannot decode the stored state of key \"a\""),
        "{m}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "the decoder's error is kept"
    );
}

/// A state whose serialization fails.
#[derive(Clone, Debug, serde::Deserialize)]
struct Unwritable;

impl serde::Serialize for Unwritable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this state cannot be written"))
    }
}

#[test]
fn a_state_that_cannot_be_encoded_stops_the_flow_naming_step_and_key() {
    let flow = Dataflow::new("enc");
    flow.input("inp", TestingSource::new(vec![("a".to_string(), 1u64)]))
        .stateful_map("keep", |_: Option<Unwritable>, v: u64| (Some(Unwritable), v))
        .output("out", TestingSink::new());
    let err = bwx::run_main_with(&flow, RunConfig::default().recovery(MemoryStore::new(1))).unwrap_err();
    let m = report(&err);
    assert!(matches!(err, FlowError::StateEncode { .. }), "{err:?}");
    assert!(
        m.contains("step 'enc.keep' on worker 0: cannot encode the state of key \"a\"")
            && m.contains("this state cannot be written"),
        "{m}"
    );
}

/// What the two-phase sink saw, in order, across workers.
#[derive(Default)]
struct Log {
    events: Vec<(usize, &'static str, u64)>,
    /// Violations: a commit before the epoch was durable, or before every worker's
    /// pre-commit of it.
    wrong: Vec<String>,
}

struct TwoPhase {
    log: Arc<Mutex<Log>>,
    store: Arc<MemoryStore>,
    fail_pre_commit_at: Option<u64>,
}

struct TwoPhasePart {
    worker: usize,
    log: Arc<Mutex<Log>>,
    store: Arc<MemoryStore>,
    fail_pre_commit_at: Option<u64>,
}

impl DynamicSink for TwoPhase {
    type Item = u64;
    type Partition = TwoPhasePart;

    fn build(&self, _: &StepId, worker: usize, _: usize) -> Result<TwoPhasePart, ConnectorError> {
        Ok(TwoPhasePart {
            worker,
            log: self.log.clone(),
            store: self.store.clone(),
            fail_pre_commit_at: self.fail_pre_commit_at,
        })
    }
}

impl StatelessSinkPartition for TwoPhasePart {
    type Item = u64;

    fn write_batch(&mut self, items: &mut Vec<u64>) -> Result<(), ConnectorError> {
        items.clear();
        Ok(())
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        if self.fail_pre_commit_at == Some(epoch) {
            return Err(std::io::Error::other("the disk is full").into());
        }
        self.log.lock().unwrap().events.push((self.worker, "pre", epoch));
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        let mut log = self.log.lock().unwrap();
        let store = &self.store;
        if store.durable_until().is_some_and(|d| d <= epoch) {
            log.wrong.push(format!(
                "worker {} committed epoch {epoch} before it was durable ({:?})",
                self.worker,
                store.durable_until()
            ));
        }
        log.events.push((self.worker, "commit", epoch));
        Ok(())
    }
}

#[test]
fn sinks_commit_an_epoch_only_once_it_is_durable_in_every_partition() {
    let store = MemoryStore::new(3);
    let log = Arc::new(Mutex::new(Log::default()));
    let flow = Dataflow::new("twophase");
    let mut events = Vec::new();
    for i in 0..60u64 {
        events.push(TestingEvent::Item(i));
        if i % 6 == 5 {
            events.push(TestingEvent::Pause(Duration::from_millis(15)));
        }
    }
    flow.input("inp", TestingSource::from_events(events))
        .redistribute("spread")
        .output(
            "out",
            TwoPhase {
                log: log.clone(),
                store: store.clone(),
                fail_pre_commit_at: None,
            },
        );
    let config = RunConfig::default()
        .epoch_interval(Duration::from_millis(5))
        .recovery(store.clone());
    bwx::run_workers(&flow, 3, config).unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.wrong, Vec::<String>::new());
    let commits: Vec<&(usize, &str, u64)> = log.events.iter().filter(|e| e.1 == "commit").collect();
    assert!(commits.len() >= 5, "{:?}", log.events);
    for (worker, _, epoch) in &commits {
        // Every pre-commit of the epoch, on every worker, came before any commit of it.
        let at = log
            .events
            .iter()
            .position(|e| e == &(*worker, "commit", *epoch))
            .unwrap();
        let late = log.events[at..].iter().any(|e| e.1 == "pre" && e.2 == *epoch);
        assert!(!late, "a pre-commit of epoch {epoch} came after a commit of it");
    }
    // Each worker commits exactly the epochs it pre-committed, in order.
    for w in 0..3 {
        let pre: Vec<u64> = log
            .events
            .iter()
            .filter(|e| e.0 == w && e.1 == "pre")
            .map(|e| e.2)
            .collect();
        let com: Vec<u64> = log
            .events
            .iter()
            .filter(|e| e.0 == w && e.1 == "commit")
            .map(|e| e.2)
            .collect();
        assert_eq!(pre, com, "worker {w}");
    }
}

#[test]
fn a_failed_pre_commit_stops_the_flow_and_its_epoch_never_becomes_durable() {
    let store = MemoryStore::new(1);
    let log = Arc::new(Mutex::new(Log::default()));
    let flow = Dataflow::new("fails");
    let mut events = Vec::new();
    for i in 0..40u64 {
        events.push(TestingEvent::Item(i));
        events.push(TestingEvent::Pause(Duration::from_millis(2)));
    }
    flow.input("inp", TestingSource::from_events(events)).output(
        "out",
        TwoPhase {
            log: log.clone(),
            store: store.clone(),
            fail_pre_commit_at: Some(3),
        },
    );
    let config = RunConfig::default()
        .epoch_interval(Duration::from_millis(10))
        .recovery(store.clone());
    let err = bwx::run_main_with(&flow, config).unwrap_err();
    assert!(!err.is_retriable());
    let m = report(&err);
    assert_eq!(
        m,
        "step 'fails.out' on worker 0: cannot pre-commit epoch 3: the disk is full"
    );
    // Nothing of epoch 3 or later is durable: a resume starts at 3 at the latest.
    assert!(
        store.durable_until().is_some_and(|d| d <= 3),
        "{:?}",
        store.durable_until()
    );
    assert!(log.lock().unwrap().events.iter().all(|e| e.2 < 3));
}

#[test]
fn a_missing_input_file_is_an_error_before_the_flow_starts() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.txt");
    let flow = Dataflow::new("missing");
    flow.input("inp", FileSource::new(&missing))
        .output("out", TestingSink::new());
    let err = bwx::run_main(&flow).unwrap_err();
    let m = report(&err);
    assert!(
        m.contains("step 'missing.inp'")
            && m.contains("cannot list the partitions")
            && m.contains(&format!("cannot find {}", missing.display())),
        "{m}"
    );
}

/// A store whose writers take their time: `started` and `finished` count their writes.
struct SlowStore {
    inner: Arc<MemoryStore>,
    started: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
}

struct SlowWriter {
    inner: Box<dyn PartitionWriter>,
    started: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
}

impl RecoveryStore for SlowStore {
    fn partitions(&self) -> usize {
        self.inner.partitions()
    }
    fn local_summary(&self) -> Result<Vec<u8>, RecoveryError> {
        self.inner.local_summary()
    }
    fn plan(&self, summaries: &[Vec<u8>]) -> Result<ResumePlan, RecoveryError> {
        self.inner.plan(summaries)
    }
    fn load(&self, plan: &ResumePlan, process: usize) -> Result<Vec<Snapshot>, RecoveryError> {
        self.inner.load(plan, process)
    }
    fn open_writer(
        &self,
        plan: &ResumePlan,
        parts: Vec<usize>,
        workers: usize,
    ) -> Result<Box<dyn PartitionWriter>, RecoveryError> {
        Ok(Box::new(SlowWriter {
            inner: self.inner.open_writer(plan, parts, workers)?,
            started: self.started.clone(),
            finished: self.finished.clone(),
        }))
    }
}

impl PartitionWriter for SlowWriter {
    fn write(&mut self, rows: Vec<Snapshot>, progress: Progress) -> Result<(), RecoveryError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        let written = self.inner.write(rows, progress);
        self.finished.fetch_add(1, Ordering::SeqCst);
        written
    }
    fn durable(&mut self, frontier: u64) -> Result<(), RecoveryError> {
        self.inner.durable(frontier)
    }
}

/// Emits one item, then aborts the execution once a snapshot write has started.
struct AbortDuringWrite(Arc<AtomicUsize>);

struct AbortDuringWritePart {
    sent: bool,
    writes: Arc<AtomicUsize>,
}

impl DynamicSource for AbortDuringWrite {
    type Item = (String, u64);
    type Partition = AbortDuringWritePart;
    fn build(&self, _: &StepId, _: usize, _: usize) -> Result<AbortDuringWritePart, ConnectorError> {
        Ok(AbortDuringWritePart {
            sent: false,
            writes: self.0.clone(),
        })
    }
}

impl StatelessSourcePartition for AbortDuringWritePart {
    type Item = (String, u64);
    fn next_batch(&mut self, batch: &mut Vec<(String, u64)>) -> Result<BatchStatus, ConnectorError> {
        if !self.sent {
            self.sent = true;
            batch.push(("k".into(), 1));
        } else if self.writes.load(Ordering::SeqCst) > 0 {
            return Ok(BatchStatus::Abort);
        }
        Ok(BatchStatus::Active)
    }
}

#[test]
fn an_execution_that_stops_early_returns_only_after_its_snapshot_writes() {
    // A write still running after the run returned would race the next execution, which
    // plans its resume from what the partitions hold (in this process, or in another one
    // sharing the directory).
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let store = SlowStore {
        inner: MemoryStore::new(1),
        started: started.clone(),
        finished: finished.clone(),
    };
    let flow = Dataflow::new("early");
    flow.input("inp", AbortDuringWrite(started.clone()))
        .stateful_map("sum", |s: Option<u64>, v: u64| {
            let t = s.unwrap_or(0) + v;
            (Some(t), t)
        })
        .output("out", TestingSink::new());
    let config = RunConfig::default()
        .epoch_interval(Duration::ZERO)
        .recovery(Arc::new(store));
    bwx::run_main_with(&flow, config).unwrap();
    let started = started.load(Ordering::SeqCst);
    assert!(started > 0, "the source aborts only once a write started");
    assert_eq!(
        finished.load(Ordering::SeqCst),
        started,
        "a write was still running when the run returned"
    );
}
