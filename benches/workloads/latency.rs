//! `latency`: the open-loop latency driver of WORKLOADS.md section 5, written with bwx's
//! public API.
//!
//! Record i (N = rate · (warm-up + measured seconds) of them) has key
//! `k = draw(601, 2i) % keys` and value `draw(601, 2i + 1) % 1000`, and is due at
//! `T0 + floor(i · 10⁹ / rate)` ns. Partition `k % 4` emits, whenever it is polled, every one
//! of its records that is due, none before; it asks to be polled again when the next record
//! is due (`next_awake`), so nothing paces the records but the clock. T0 is taken by the
//! first poll of any partition: a worker that starts later is behind from the start, which
//! counts as latency.
//!
//! Two flows: a running `(count, sum)` per key (`stateful_map`, one update per record) as the
//! section defines it, and `--window` a tumbling window of event time (the record's due
//! time; `fold_window` with a per-worker clock) whose results are emitted when the
//! watermark passes the window's end. The sink reads the clock once per batch: a record's
//! latency is that minus its due time; a window result's latency is that minus the due time
//! at which the watermark may pass the window (its end plus the clock's wait of 20 ms).
//! Results due in the warm-up are not counted; a late record is counted and reported (none
//! should be: it would change the digest). `--snapshots S` turns recovery on (SQLite in a temporary
//! directory) with an epoch, and so a snapshot of every key changed in it, every S seconds.
//!
//! The canonical rows are `k%05d,count,sum` per key over the whole run (for `--window`, the
//! sums over the key's windows), so both flows give the digest WORKLOADS.md lists.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bwx::StepId;
use bwx::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use bwx::outputs::{DynamicSink, StatelessSinkPartition};
use bwx::prelude::*;
use bwx::windowing::{EventClock, PerWorker, TumblingWindower};
use rustc_hash::FxHashMap;

use crate::events::draw;
use crate::histogram::Histogram;
use crate::{Outcome, args::Args};

const PARTS: u64 = 4;
/// The windows of `--window`.
const WINDOW: Duration = Duration::from_millis(100);
/// How long `--window`'s per-worker clock waits behind the latest due time it has seen: a
/// worker polls its partitions one after the other, so what one emits can be a little
/// older than what another emitted just before.
const WAIT: Duration = Duration::from_millis(20);

/// The run's start, shared by every partition and sink: set by the first poll.
#[derive(Clone, Default)]
struct Start(Arc<OnceLock<(Instant, SystemTime)>>);

impl Start {
    fn get(&self) -> (Instant, SystemTime) {
        *self.0.get_or_init(|| (Instant::now(), SystemTime::now()))
    }

    /// Nanoseconds since the start.
    fn now_ns(&self) -> u64 {
        self.get().0.elapsed().as_nanos() as u64
    }

    /// The start as ms since the Unix epoch (the event time of the records' due times).
    fn epoch_ms(&self) -> i64 {
        self.get()
            .1
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// The records of the run.
#[derive(Clone, Copy)]
struct Records {
    rate: u64,
    keys: u64,
    total: u64,
}

impl Records {
    #[inline]
    fn due_ns(&self, i: u64) -> u64 {
        (u128::from(i) * 1_000_000_000 / u128::from(self.rate)) as u64
    }

    #[inline]
    fn record(&self, i: u64) -> (u64, u64) {
        (draw(601, 2 * i) % self.keys, draw(601, 2 * i + 1) % 1000)
    }
}

/// (key, (value, due ns))
type Rec = (u64, (u64, u64));

#[derive(Clone)]
struct Source {
    records: Records,
    start: Start,
    emitted: Arc<AtomicU64>,
}

impl FixedPartitionedSource for Source {
    type Item = Rec;
    type State = u64;
    type Partition = Partition;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok((0..PARTS).map(|p| p.to_string()).collect())
    }

    fn build_part(
        &self,
        step: &StepId,
        part: &str,
        resume: Option<u64>,
    ) -> Result<Partition, ConnectorError> {
        let part: u64 = part
            .parse()
            .ok()
            .filter(|p| *p < PARTS)
            .ok_or_else(|| format!("{step}: unknown partition {part:?}"))?;
        Ok(Partition {
            source: self.clone(),
            part,
            next: resume.unwrap_or(0),
        })
    }
}

struct Partition {
    source: Source,
    part: u64,
    /// The next record to look at (this partition's or another's).
    next: u64,
}

impl StatefulSourcePartition for Partition {
    type Item = Rec;
    type State = u64;

    fn next_batch(&mut self, batch: &mut Vec<Rec>) -> Result<BatchStatus, ConnectorError> {
        let r = self.source.records;
        let now = self.source.start.now_ns();
        while self.next < r.total && r.due_ns(self.next) <= now {
            let (key, value) = r.record(self.next);
            if key % PARTS == self.part {
                batch.push((key, (value, r.due_ns(self.next))));
            }
            self.next += 1;
        }
        self.source
            .emitted
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(if self.next >= r.total {
            BatchStatus::Eof
        } else {
            BatchStatus::Active
        })
    }

    /// When the next record (of any partition; this one's is no earlier) is due.
    fn next_awake(&self) -> Option<SystemTime> {
        let (_, wall) = self.source.start.get();
        Some(wall + Duration::from_nanos(self.source.records.due_ns(self.next)))
    }

    fn snapshot(&self) -> u64 {
        self.next
    }
}

/// What every sink partition adds to at the end: the latencies and the last `(count, sum)`
/// of every key.
#[derive(Default)]
struct Results {
    hist: Option<Histogram>,
    last: FxHashMap<u64, (u64, u64)>,
}

/// A result reaching the sink: (key, (count, sum, due ns it is measured from)).
type Out = (u64, (u64, u64, u64));

#[derive(Clone)]
struct Sink {
    start: Start,
    warm_ns: u64,
    /// Whether the counts are per window (added up per key) or running (the last is kept).
    windowed: bool,
    results: Arc<Mutex<Results>>,
}

impl DynamicSink for Sink {
    type Item = Out;
    type Partition = SinkPart;

    fn build(&self, _step: &StepId, _worker: usize, _workers: usize) -> Result<SinkPart, ConnectorError> {
        Ok(SinkPart {
            sink: self.clone(),
            hist: Histogram::new(),
            last: FxHashMap::default(),
        })
    }
}

struct SinkPart {
    sink: Sink,
    hist: Histogram,
    last: FxHashMap<u64, (u64, u64)>,
}

impl StatelessSinkPartition for SinkPart {
    type Item = Out;

    fn write_batch(&mut self, items: &mut Vec<Out>) -> Result<(), ConnectorError> {
        let now = self.sink.start.now_ns();
        for (key, (count, sum, due)) in items.drain(..) {
            if due >= self.sink.warm_ns {
                self.hist.add(now.saturating_sub(due));
            }
            if self.sink.windowed {
                let total = self.last.entry(key).or_default();
                *total = (total.0 + count, total.1 + sum);
            } else {
                self.last.insert(key, (count, sum));
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        let mut results = self.sink.results.lock().map_err(|_| "latency results poisoned")?;
        results.hist.get_or_insert_with(Histogram::new).merge(&self.hist);
        for (key, (count, sum)) in self.last.drain() {
            let total = results.last.entry(key).or_default();
            *total = if self.sink.windowed {
                (total.0 + count, total.1 + sum)
            } else {
                (count, sum)
            };
        }
        Ok(())
    }
}

pub fn run(args: &Args) -> Result<Outcome, String> {
    let l = &args.latency;
    if l.rate == 0 || args.keys == 0 || l.secs <= 0.0 || l.warmup_secs < 0.0 {
        return Err("--rate, --keys and --secs must be positive, --warmup-secs not negative".into());
    }
    let records = Records {
        rate: l.rate,
        keys: args.keys,
        total: (l.rate as f64 * (l.warmup_secs + l.secs)).round() as u64,
    };
    let start = Start::default();
    let emitted = Arc::new(AtomicU64::new(0));
    let source = Source {
        records,
        start: start.clone(),
        emitted: emitted.clone(),
    };
    let results = Arc::new(Mutex::new(Results::default()));
    let sink = Sink {
        start: start.clone(),
        warm_ns: (l.warmup_secs * 1e9) as u64,
        windowed: l.window,
        results: results.clone(),
    };
    let flow = Dataflow::new("latency");
    let recs = flow.input("records", source);
    let late = Arc::new(AtomicU64::new(0));
    if l.window {
        let clock_start = start.clone();
        let window_start = start.clone();
        let windows = recs.fold_window(
            "count_sum",
            PerWorker::new(EventClock::replay(
                move |(_, due): &(u64, u64)| clock_start.epoch_ms() + (*due / 1_000_000) as i64,
                WAIT,
            )),
            TumblingWindower::new(WINDOW, 0).map_err(|e| e.to_string())?,
            || (0u64, 0u64),
            |(n, sum), (v, _)| (n + 1, sum + v),
            |(n1, s1), (n2, s2)| (n1 + n2, s1 + s2),
            false,
        );
        let counted = late.clone();
        windows.late.inspect("late", move |_, _| {
            counted.fetch_add(1, Ordering::Relaxed);
        });
        windows
            .down
            .map("measure_from_close", move |(key, (window, (n, sum)))| {
                // When the window may close, as ns since the start: its end plus the wait.
                // The first record due after that moves the watermark past it.
                let close_ms = (window + 1) * WINDOW.as_millis() as i64 + WAIT.as_millis() as i64
                    - window_start.epoch_ms();
                (key, (n, sum, u64::try_from(close_ms).unwrap_or(0) * 1_000_000))
            })
            .output("out", sink);
    } else {
        recs.stateful_map("running", |state: Option<(u64, u64)>, (v, due): (u64, u64)| {
            let (n, sum) = state.unwrap_or((0, 0));
            let (n, sum) = (n + 1, sum + v);
            (Some((n, sum)), (n, sum, due))
        })
        .output("out", sink);
    }
    let _recovery_dir;
    let config = match l.snapshots {
        None => RunConfig::default(),
        Some(every) => {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            bwx::recovery::init_dir(dir.path(), 1).map_err(|e| e.to_string())?;
            let store = bwx::recovery::SqliteRecovery::open(dir.path(), Duration::ZERO, "latency")
                .map_err(|e| e.to_string())?;
            _recovery_dir = dir;
            RunConfig::default().epoch_interval(every).recovery(store)
        }
    };
    bwx::run_workers(&flow, args.workers, config).map_err(|e| e.report())?;
    let results = std::mem::take(&mut *results.lock().map_err(|_| "latency results poisoned")?);
    let hist = results.hist.unwrap_or_else(Histogram::new);
    let us = |ns: u64| ns as f64 / 1000.0;
    let extra = format!(
        "rate={} secs_measured={} warmup_s={} keys={} samples={} p50_us={:.1} p90_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} flow={} snapshots_s={} late={}",
        l.rate,
        l.secs,
        l.warmup_secs,
        args.keys,
        hist.total(),
        us(hist.quantile(0.5)),
        us(hist.quantile(0.9)),
        us(hist.quantile(0.99)),
        us(hist.quantile(0.999)),
        us(hist.max()),
        if l.window {
            "tumbling-window"
        } else {
            "running-aggregate"
        },
        l.snapshots
            .map_or("off".to_string(), |d| d.as_secs_f64().to_string()),
        late.load(Ordering::Relaxed),
    );
    let last = results.last;
    Ok(Outcome::new(emitted.load(Ordering::Relaxed), move || {
        last.into_iter()
            .map(|(k, (count, sum))| format!("k{k:05},{count},{sum}"))
            .collect()
    })
    .with_extra(extra))
}
