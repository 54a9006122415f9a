//! Measures what recovery costs.
//!
//! 1. Throughput of a keyed running mean (10 000 keys) with snapshots every 1 s
//!    (epoch interval 1 s, a snapshot every epoch) against recovery off.
//! 2. Snapshot and resume time for 1 000 000 keys.
//!
//! ```text
//! cargo run --release -p bwx-runtime --example recovery_bench [items]
//! ```
//!
//! `BWX_BENCH_RESUME_WORKERS=N` runs the resume on N worker threads (default 1);
//! `BWX_BENCH_BACKUP_SECS` keeps superseded snapshots that long (default 0).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bwx_runtime::inputs::ConnectorError;
use bwx_runtime::outputs::{DynamicSink, StatelessSinkPartition};
use bwx_runtime::prelude::*;
use bwx_runtime::recovery::{
    PartitionWriter, Progress, RecoveryError, RecoveryStore, ResumePlan, Snapshot, SqliteRecovery, init_dir,
};

/// `total` items `(key, value)` over `keys` keys, in batches of 1024.
struct Gen {
    total: u64,
    keys: u64,
}

struct GenPart {
    next: u64,
    total: u64,
    keys: u64,
}

impl FixedPartitionedSource for Gen {
    type Item = (u64, f64);
    type State = u64;
    type Partition = GenPart;
    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok(vec!["gen".into()])
    }
    fn build_part(&self, _: &StepId, _: &str, resume: Option<u64>) -> Result<GenPart, ConnectorError> {
        Ok(GenPart {
            next: resume.unwrap_or(0),
            total: self.total,
            keys: self.keys,
        })
    }
}

impl StatefulSourcePartition for GenPart {
    type Item = (u64, f64);
    type State = u64;
    fn next_batch(&mut self, batch: &mut Vec<(u64, f64)>) -> Result<BatchStatus, ConnectorError> {
        let end = (self.next + 1024).min(self.total);
        batch.extend((self.next..end).map(|i| (i.wrapping_mul(0x9e37_79b9) % self.keys, (i % 100) as f64)));
        self.next = end;
        Ok(if end == self.total {
            BatchStatus::Eof
        } else {
            BatchStatus::Active
        })
    }
    fn snapshot(&self) -> u64 {
        self.next
    }
}

/// Counts what reaches it.
#[derive(Clone, Default)]
struct Count(Arc<AtomicU64>);

struct CountPart(Arc<AtomicU64>);

impl DynamicSink for Count {
    type Item = (u64, f64);
    type Partition = CountPart;
    fn build(&self, _: &StepId, _: usize, _: usize) -> Result<CountPart, ConnectorError> {
        Ok(CountPart(self.0.clone()))
    }
}

impl StatelessSinkPartition for CountPart {
    type Item = (u64, f64);
    fn write_batch(&mut self, items: &mut Vec<(u64, f64)>) -> Result<(), ConnectorError> {
        self.0.fetch_add(items.len() as u64, Ordering::Relaxed);
        items.clear();
        Ok(())
    }
}

fn mean_flow(total: u64, keys: u64, out: Count) -> Dataflow {
    let flow = Dataflow::new("mean");
    flow.input("inp", Gen { total, keys })
        .stateful_map("mean", |s: Option<(u64, f64)>, v: f64| {
            let (n, sum) = s.unwrap_or((0, 0.0));
            let (n, sum) = (n + 1, sum + v);
            (Some((n, sum)), sum / n as f64)
        })
        .output("out", out);
    flow
}

/// CPU time (user + system) of the whole process so far: on a loaded machine wall times
/// mostly measure waiting for a core, so the bench reports both.
fn cpu() -> Duration {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time (user + system) of the calling thread so far.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Wall and CPU time spent writing snapshots, and when the last write ended.
#[derive(Default)]
struct Spent {
    wall: Duration,
    cpu: Duration,
    last: Option<Instant>,
}

/// A store whose writers time their writes (on the writer threads, off the workers).
struct Timed {
    inner: Arc<dyn RecoveryStore>,
    spent: Arc<std::sync::Mutex<Spent>>,
}

impl RecoveryStore for Timed {
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
        Ok(Box::new(TimedWriter {
            inner: self.inner.open_writer(plan, parts, workers)?,
            spent: self.spent.clone(),
        }))
    }
}

struct TimedWriter {
    inner: Box<dyn PartitionWriter>,
    spent: Arc<std::sync::Mutex<Spent>>,
}

impl PartitionWriter for TimedWriter {
    fn write(&mut self, rows: Vec<Snapshot>, progress: Progress) -> Result<(), RecoveryError> {
        let (t, c) = (Instant::now(), thread_cpu());
        let r = self.inner.write(rows, progress);
        let mut spent = self.spent.lock().unwrap();
        spent.wall += t.elapsed();
        spent.cpu += thread_cpu() - c;
        spent.last = Some(Instant::now());
        r
    }
    fn durable(&mut self, frontier: u64) -> Result<(), RecoveryError> {
        self.inner.durable(frontier)
    }
    fn has_garbage(&self) -> bool {
        self.inner.has_garbage()
    }
    fn collect_garbage(&mut self) -> Result<(), RecoveryError> {
        self.inner.collect_garbage()
    }
}

/// Items per second of wall time and per second of process CPU time.
fn throughput(items: u64, recovery: bool) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), 1).unwrap();
    let out = Count::default();
    let flow = mean_flow(items, 10_000, out.clone());
    let mut config = RunConfig::default().epoch_interval(Duration::from_secs(1));
    if recovery {
        config = config.recovery(SqliteRecovery::open(dir.path(), Duration::ZERO, "mean").unwrap());
    }
    let (t, c) = (Instant::now(), cpu());
    bwx_runtime::run_main_with(&flow, config).unwrap();
    let (secs, cpu_secs) = (t.elapsed().as_secs_f64(), (cpu() - c).as_secs_f64());
    assert_eq!(out.0.load(Ordering::Relaxed), items);
    (items as f64 / secs, items as f64 / cpu_secs)
}

fn main() {
    let items: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000_000);
    let off = throughput(items, false);
    let on = throughput(items, true);
    println!(
        "running mean, 10k keys, {items} items, 1 worker: recovery off {:.2} M items/s, snapshots every 1 s {:.2} M items/s ({:.2}x); per CPU second {:.2} vs {:.2} M items ({:.2}x)",
        off.0 / 1e6,
        on.0 / 1e6,
        on.0 / off.0,
        off.1 / 1e6,
        on.1 / 1e6,
        on.1 / off.1
    );

    // 1M keys, each touched once: one snapshot epoch with 1M rows, then a resume.
    let keys = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), 4).unwrap();
    let spent = Arc::new(std::sync::Mutex::new(Spent::default()));
    // BWX_BENCH_BACKUP_SECS > 0 keeps superseded snapshots (no GC work in the timing).
    let backup = Duration::from_secs(
        std::env::var("BWX_BENCH_BACKUP_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    );
    let hook = Timed {
        inner: SqliteRecovery::open(dir.path(), backup, "mean").unwrap(),
        spent: spent.clone(),
    };
    let flow = mean_flow(keys, keys, Count::default());
    let config = RunConfig::default()
        .epoch_interval(Duration::from_secs(3600))
        .recovery(Arc::new(hook));
    bwx_runtime::run_main_with(&flow, config).unwrap();
    // Garbage collection runs on the writer thread; the run ends once its pass is done.
    let (snapshot, gc_tail) = {
        let spent = spent.lock().unwrap();
        (
            (spent.wall, spent.cpu),
            spent.last.map(|l| l.elapsed()).unwrap_or_default(),
        )
    };
    let (t, c) = (Instant::now(), cpu());
    let store = SqliteRecovery::open(dir.path(), Duration::ZERO, "mean").unwrap();
    let plan = store.plan(&[store.local_summary().unwrap()]).unwrap();
    let rows = store.load(&plan, 0).unwrap();
    let (load, load_cpu) = (t.elapsed(), cpu() - c);
    let step = flow.steps()[1].id.clone();
    assert_eq!(rows.iter().filter(|r| r.step_id == step).count(), keys as usize);
    // A full resume: open, load, route to the worker and rebuild every key's logic.
    let (t, c) = (Instant::now(), cpu());
    let out = Count::default();
    let flow = mean_flow(keys, keys, out.clone());
    let config =
        RunConfig::default().recovery(SqliteRecovery::open(dir.path(), Duration::ZERO, "mean").unwrap());
    // BWX_BENCH_RESUME_WORKERS resumes on that many worker threads (a rescale from 1).
    let workers = std::env::var("BWX_BENCH_RESUME_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    bwx_runtime::run_workers(&flow, workers, config).unwrap();
    let (resume, resume_cpu) = (t.elapsed(), cpu() - c);
    println!(
        "1M keys, 4 partitions (wall / CPU): snapshot write {:.2} s / {:.2} s on the writer threads (GC pass done {:.2} s later), open+load+check {:.2} s / {:.2} s, full resume run on {workers} worker(s) {:.2} s / {:.2} s",
        snapshot.0.as_secs_f64(),
        snapshot.1.as_secs_f64(),
        gc_tail.as_secs_f64(),
        load.as_secs_f64(),
        load_cpu.as_secs_f64(),
        resume.as_secs_f64(),
        resume_cpu.as_secs_f64()
    );
}
