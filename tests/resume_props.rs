//! Resume is right on any worker and process count: random flows over a scripted source run
//! as a sequence of executions (input ends and aborts at random points, a random number of
//! processes and workers each time) and their concatenated output equals the output of the
//! same executions run without aborts on one worker: exactly for the file sink, and as the
//! same set of items for an at-least-once sink.
//!
//! An execution on several processes re-runs this test binary as a [`LocalCluster`]: each
//! child reads the execution from [`EXECUTION_ENV`], runs its part, and prints what its
//! at-least-once sink saw and whether its input aborted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bwx::connectors::files::FileSink;
use bwx::inputs::ConnectorError;
use bwx::prelude::*;
use bwx::recovery::{SqliteRecovery, init_dir};
use bwx::testing::{LocalCluster, TestingSink};
use bwx::windowing::{EventClock, TumblingWindower};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// The environment variable that hands a cluster member its [`Execution`], as JSON.
const EXECUTION_ENV: &str = "BWX_RESUME_PROPS_EXECUTION";
/// This test, as the children of a [`LocalCluster`] run it.
const TEST_NAME: &str = "any_sequence_of_resumes_gives_the_output_of_one_uninterrupted_sequence";
/// A child's line for an item its at-least-once sink saw.
const SEEN: &str = "seen: ";
/// A child's line when its input aborted the execution.
const ABORTED: &str = "aborted";

/// Items of one partition, in segments: an execution reads one segment, then its input ends.
type Segments = Vec<Vec<(u32, u64)>>;

/// A fixed-partitioned source whose partitions replay their segments; the position is
/// (segment, item), and the end of a segment is an EOF the next execution continues after.
/// `abort_after` aborts the execution once, when that many items have been read in it.
struct Script {
    parts: Arc<Vec<Segments>>,
    abort_after: Option<usize>,
    read: Arc<AtomicUsize>,
    aborted: Arc<AtomicBool>,
}

struct ScriptPart {
    segments: Segments,
    segment: usize,
    item: usize,
    abort_after: Option<usize>,
    read: Arc<AtomicUsize>,
    aborted: Arc<AtomicBool>,
}

impl FixedPartitionedSource for Script {
    type Item = (u32, u64);
    type State = (usize, usize);
    type Partition = ScriptPart;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok((0..self.parts.len()).map(|p| format!("p{p}")).collect())
    }

    fn build_part(
        &self,
        _: &StepId,
        part: &str,
        resume: Option<(usize, usize)>,
    ) -> Result<ScriptPart, ConnectorError> {
        let index: usize = part[1..].parse()?;
        let (segment, item) = resume.unwrap_or((0, 0));
        Ok(ScriptPart {
            segments: self.parts[index].clone(),
            segment,
            item,
            abort_after: self.abort_after,
            read: self.read.clone(),
            aborted: self.aborted.clone(),
        })
    }
}

impl StatefulSourcePartition for ScriptPart {
    type Item = (u32, u64);
    type State = (usize, usize);

    fn next_batch(&mut self, batch: &mut Vec<(u32, u64)>) -> Result<BatchStatus, ConnectorError> {
        let (abort_after, read, aborted) = (&self.abort_after, &self.read, &self.aborted);
        let Some(items) = self.segments.get(self.segment) else {
            return Ok(BatchStatus::Eof);
        };
        if let Some(at) = abort_after
            && read.load(Ordering::SeqCst) >= *at
            && !aborted.swap(true, Ordering::SeqCst)
        {
            return Ok(BatchStatus::Abort);
        }
        let end = (self.item + 2).min(items.len());
        batch.extend_from_slice(&items[self.item..end]);
        read.fetch_add(end - self.item, Ordering::SeqCst);
        self.item = end;
        if self.item == items.len() {
            // The input ends here; a resumed execution starts at the next segment.
            self.segment += 1;
            self.item = 0;
            return Ok(BatchStatus::Eof);
        }
        Ok(BatchStatus::Active)
    }

    fn snapshot(&self) -> (usize, usize) {
        (self.segment, self.item)
    }
}

/// The flows under test; every key's items come from one partition, in order.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
enum Kind {
    /// A running sum per key.
    RunningSum,
    /// A sum per key, emitted at the end of each execution's input.
    FoldAtEof,
    /// A count per key in tumbling event-time windows of 10 (the value is the time).
    Windows,
    /// The last even and the last odd value per key, joined at the end of the input.
    Join,
}

/// Builds the flow writing `key,value` lines to a file sink at `out` and to `collected`.
fn build(kind: Kind, source: Script, out: &Path, collected: &TestingSink<String>) -> Dataflow {
    let flow = Dataflow::new("props");
    let items = flow.input("inp", source);
    let lines: Stream<(u32, String)> = match kind {
        Kind::RunningSum => items
            .stateful_map("sum", |s: Option<u64>, v: u64| {
                let t = s.unwrap_or(0) + v;
                (Some(t), t)
            })
            .map("fmt", |(k, v): (u32, u64)| (k, format!("{k},{v}"))),
        Kind::FoldAtEof => items
            .fold_final("fold", || 0u64, |acc: u64, v: u64| acc + v)
            .map("fmt", |(k, v): (u32, u64)| (k, format!("{k},{v}"))),
        Kind::Windows => items
            .count_window(
                "win",
                EventClock::replay(|(_, v): &(u32, u64)| *v as i64, Duration::from_millis(3)),
                TumblingWindower::new(Duration::from_millis(10), 0).unwrap(),
                |(k, _): &(u32, u64)| *k,
            )
            .down
            .map("fmt", |(k, (w, n)): (u32, (i64, u64))| {
                (k, format!("{k},{w}:{n}"))
            }),
        Kind::Join => {
            let split = items.branch("parity", |(_, v): &(u32, u64)| v % 2 == 0);
            flow.join(
                "join",
                (&split.trues, &split.falses),
                JoinInsertMode::Last,
                JoinEmitMode::Final,
            )
            .map("fmt", |(k, row): (u32, (Option<u64>, Option<u64>))| {
                (k, format!("{k},{row:?}"))
            })
        }
    };
    lines
        .map("line", |(_, line): (u32, String)| line)
        .output("collect", collected.clone());
    lines.output("file", FileSink::new(out));
    flow
}

/// What one sequence of executions wrote: the file's lines per key, in order, and the
/// lines the at-least-once sink saw.
struct Outcome {
    file: BTreeMap<u32, Vec<String>>,
    seen: BTreeSet<String>,
}

/// One execution: the flow, its input, where it keeps its state and output, and its shape.
#[derive(Serialize, Deserialize)]
struct Execution {
    kind: Kind,
    parts: Vec<Segments>,
    abort_after: Option<usize>,
    epoch: Duration,
    db: std::path::PathBuf,
    out: std::path::PathBuf,
}

/// How one execution runs: processes, worker threads in each, and the abort point.
#[derive(Clone, Copy, Debug)]
struct Shape {
    processes: usize,
    workers: usize,
    abort_after: Option<usize>,
}

impl Execution {
    /// Builds this execution's flow and the config it runs with; `aborted` is set if its
    /// input aborts.
    fn flow(&self, collected: &TestingSink<String>, aborted: &Arc<AtomicBool>) -> (Dataflow, RunConfig) {
        let source = Script {
            parts: Arc::new(self.parts.clone()),
            abort_after: self.abort_after,
            read: Arc::default(),
            aborted: aborted.clone(),
        };
        let flow = build(self.kind, source, &self.out, collected);
        let store = SqliteRecovery::open(&self.db, Duration::ZERO, "props").unwrap();
        (
            flow,
            RunConfig::default().epoch_interval(self.epoch).recovery(store),
        )
    }

    /// Runs in this process on `workers` threads; returns whether the input aborted.
    fn run_here(&self, workers: usize, collected: &TestingSink<String>) -> bool {
        let aborted = Arc::new(AtomicBool::new(false));
        let (flow, config) = self.flow(collected, &aborted);
        bwx::run_workers(&flow, workers, config).unwrap();
        aborted.load(Ordering::SeqCst)
    }

    /// Runs as a cluster of `processes` children with `workers` threads each, adding what
    /// their at-least-once sinks saw to `seen`; returns whether the input aborted in any.
    fn run_as_cluster(&self, processes: usize, workers: usize, seen: &mut BTreeSet<String>) -> bool {
        let outcomes = LocalCluster::new(TEST_NAME, processes)
            .workers_per_process(workers)
            .timeout(Duration::from_secs(60))
            .env(EXECUTION_ENV, &serde_json::to_string(self).unwrap())
            .run()
            .unwrap();
        let mut aborted = false;
        for outcome in &outcomes {
            assert!(outcome.status.success(), "{outcome}");
            seen.extend(outcome.lines(SEEN).map(String::from));
            aborted |= outcome.stdout.lines().any(|l| l == ABORTED);
        }
        aborted
    }
}

/// In a cluster member: runs its part of the execution from [`EXECUTION_ENV`], prints what
/// it saw, and exits.
fn run_member() {
    let Some(member) = LocalCluster::member() else {
        return;
    };
    let execution: Execution = serde_json::from_str(&std::env::var(EXECUTION_ENV).unwrap()).unwrap();
    let collected = TestingSink::new();
    let aborted = Arc::new(AtomicBool::new(false));
    let (flow, config) = execution.flow(&collected, &aborted);
    if let Err(err) = member.cluster_main(&flow, config) {
        eprintln!("error: {}", err.report());
        std::process::exit(1);
    }
    for line in collected.take() {
        println!("{SEEN}{line}");
    }
    if aborted.load(Ordering::SeqCst) {
        println!("{ABORTED}");
    }
    std::process::exit(0);
}

/// Runs the segments as executions, the first ones with the shapes of `runs` in turn, then
/// on one worker without aborts; an aborted execution is run again until its input ends.
fn run_all(kind: Kind, parts: &[Segments], runs: &[Shape], epoch: Duration) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    init_dir(&db, 3).unwrap();
    let collected = TestingSink::new();
    let mut seen = BTreeSet::new();
    let segments = parts.iter().map(Vec::len).max().unwrap_or(0);
    let last = Shape {
        processes: 1,
        workers: 1,
        abort_after: None,
    };
    let mut plan = runs.iter();
    let mut completed = 0;
    let mut attempts = 0;
    let mut execution = Execution {
        kind,
        parts: parts.to_vec(),
        abort_after: None,
        epoch,
        db,
        out: dir.path().join("out.txt"),
    };
    while completed < segments {
        let shape = *plan.next().unwrap_or(&last);
        execution.abort_after = shape.abort_after;
        let aborted = if shape.processes > 1 {
            execution.run_as_cluster(shape.processes, shape.workers, &mut seen)
        } else {
            let aborted = execution.run_here(shape.workers, &collected);
            seen.extend(collected.take());
            aborted
        };
        if !aborted {
            completed += 1;
        }
        attempts += 1;
        assert!(attempts < 100, "no progress after {attempts} executions");
    }
    let mut file: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for line in std::fs::read_to_string(&execution.out)
        .unwrap_or_default()
        .lines()
    {
        let key: u32 = line.split(',').next().unwrap().parse().unwrap();
        file.entry(key).or_default().push(line.to_string());
    }
    Outcome { file, seen }
}

/// 1 or 2 processes of 1 to 4 workers in all, and maybe an abort point.
fn shape() -> impl Strategy<Value = Shape> {
    (1usize..3, 1usize..3, 1usize..5, prop::option::of(0usize..30)).prop_map(
        |(processes, per_process, single, abort_after)| Shape {
            processes,
            workers: if processes == 1 { single } else { per_process },
            abort_after,
        },
    )
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::RunningSum),
        Just(Kind::FoldAtEof),
        Just(Kind::Windows),
        Just(Kind::Join)
    ]
}

/// 1 to 3 partitions, each with 1 to 3 segments of up to 12 items; partition `p` owns keys
/// `p * 10 ..`, and values grow within a key, so that windows see times in order.
fn partitions() -> impl Strategy<Value = Vec<Segments>> {
    prop::collection::vec(
        prop::collection::vec(prop::collection::vec((0u32..3, 0u64..8), 0..12), 1..4),
        1..4,
    )
    .prop_map(|parts| {
        parts
            .into_iter()
            .enumerate()
            .map(|(p, segments)| {
                let mut clock = 0u64;
                segments
                    .into_iter()
                    .map(|items| {
                        items
                            .into_iter()
                            .map(|(k, step)| {
                                clock += step;
                                (p as u32 * 10 + k, clock)
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_of_resumes_gives_the_output_of_one_uninterrupted_sequence(
        kind in kind(),
        parts in partitions(),
        runs in prop::collection::vec(shape(), 1..6),
        epoch_ms in prop_oneof![Just(0u64), Just(1), Just(4)],
    ) {
        run_member();
        let epoch = Duration::from_millis(epoch_ms);
        let single = Shape { processes: 1, workers: 1, abort_after: None };
        let reference = run_all(kind, &parts, &[single], epoch);
        let got = run_all(kind, &parts, &runs, epoch);
        prop_assert_eq!(&got.file, &reference.file, "file sink, {:?}, runs {:?}", kind, runs);
        prop_assert_eq!(&got.seen, &reference.seen, "at-least-once sink, {:?}", kind);
    }
}
