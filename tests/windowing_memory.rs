//! Memory per key of a windowing step while its windows are open (issue 5 asks for it to be
//! reported): 100,000 keys with 1 tumbling window, 2 and 5 sliding windows, and 10
//! tumbling windows open per key, measured with a counting global allocator, with a clock
//! per key and with a `PerWorker` clock.
//!
//! The source emits every key's items, waits a few polls so that the windowing step has
//! taken them in (one worker: the step runs between the source's polls), then reads the
//! allocator's live bytes. The clock waits an hour, so no window closes before EOF; at EOF
//! every window closes and the results are counted, which proves the windows were open.
//! The bounds are about 1.5x what was measured, to catch a regression in the state layout.

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bwx::inputs::{BatchStatus, ConnectorError, DynamicSource, StatelessSourcePartition};
use bwx::prelude::*;
use bwx::testing::TestingSink;
use bwx::windowing::{Clock, EventClock, PerWorker, SlidingWindower, TumblingWindower, Windower};

use counting_alloc::{Counting, LIVE};

#[global_allocator]
static ALLOC: Counting = Counting;

const KEYS: u32 = 100_000;
const BATCH: u32 = 5_000;
/// Polls without items after the last batch before measuring.
const SETTLE_POLLS: u32 = 3;

/// Emits `(key, ts)` for every key and every timestamp in `times`, measuring live bytes
/// before the first item and once the windowing step has taken in the last.
#[derive(Clone)]
struct KeysSource {
    times: Vec<i64>,
    measured: Arc<Mutex<Option<(isize, isize)>>>,
}

impl DynamicSource for KeysSource {
    type Item = (u32, i64);
    type Partition = KeysPartition;

    fn build(
        &self,
        _step: &StepId,
        _worker: usize,
        _workers: usize,
    ) -> Result<KeysPartition, ConnectorError> {
        Ok(KeysPartition {
            source: self.clone(),
            next_key: 0,
            before: None,
            idle: 0,
        })
    }
}

struct KeysPartition {
    source: KeysSource,
    next_key: u32,
    before: Option<isize>,
    idle: u32,
}

impl StatelessSourcePartition for KeysPartition {
    type Item = (u32, i64);

    fn next_batch(&mut self, batch: &mut Vec<(u32, i64)>) -> Result<BatchStatus, ConnectorError> {
        if self.before.is_none() {
            self.before = Some(LIVE.load(Ordering::SeqCst));
        }
        if self.next_key < KEYS {
            let end = (self.next_key + BATCH).min(KEYS);
            for key in self.next_key..end {
                batch.extend(self.source.times.iter().map(|&ts| (key, ts)));
            }
            self.next_key = end;
            return Ok(BatchStatus::Active);
        }
        self.idle += 1;
        if self.idle < SETTLE_POLLS {
            return Ok(BatchStatus::Active);
        }
        let after = LIVE.load(Ordering::SeqCst);
        *self.source.measured.lock().unwrap() = self.before.map(|before| (before, after));
        Ok(BatchStatus::Eof)
    }
}

/// Bytes per key with every key's items at `times` open in `windower` under `clock`, and
/// the number of window results at EOF.
fn bytes_per_key(clock: impl Clock<i64>, windower: impl Windower, times: Vec<i64>) -> (f64, usize) {
    let measured = Arc::new(Mutex::new(None));
    let source = KeysSource {
        times,
        measured: measured.clone(),
    };
    let out = TestingSink::new();
    let flow = Dataflow::new("memory");
    flow.input("keys", source)
        .fold_window(
            "count_sum",
            clock,
            windower,
            || (0u64, 0i64),
            |(n, sum), ts| (n + 1, sum + ts),
            |(n1, s1), (n2, s2)| (n1 + n2, s1 + s2),
            false,
        )
        .down
        .output("out", out.clone());
    bwx::run_main(&flow).unwrap();
    let (before, after) = measured.lock().unwrap().expect("the source measured");
    ((after - before) as f64 / f64::from(KEYS), out.take().len())
}

/// The clock of both tests: it waits an hour, so no window closes before EOF.
fn hour_behind() -> EventClock<i64, fn(&i64) -> i64> {
    EventClock::replay(|ts: &i64| *ts, Duration::from_secs(3600))
}

/// Measures the four cases with `clock()`; `bounds` are the bytes per key not to exceed.
fn check<C: Clock<i64>>(clock: impl Fn() -> C, name: &str, bounds: [f64; 4]) {
    let second = 1000i64;
    let tumbling = || TumblingWindower::new(Duration::from_secs(10), 0).unwrap();
    let sliding =
        |offset| SlidingWindower::new(Duration::from_secs(10), Duration::from_secs(offset), 0).unwrap();
    // (what, bytes per key, windows per key, bound)
    let mut report = Vec::new();
    let (bytes, results) = bytes_per_key(clock(), tumbling(), vec![5 * second]);
    report.push(("1 tumbling window", bytes, results, 1, bounds[0]));
    let (bytes, results) = bytes_per_key(clock(), sliding(5), vec![7 * second]);
    report.push(("2 sliding windows (10 s / 5 s)", bytes, results, 2, bounds[1]));
    let (bytes, results) = bytes_per_key(clock(), sliding(2), vec![9 * second]);
    report.push(("5 sliding windows (10 s / 2 s)", bytes, results, 5, bounds[2]));
    let times = (0..10).map(|w| w * 10 * second + 1).collect();
    let (bytes, results) = bytes_per_key(clock(), tumbling(), times);
    report.push(("10 tumbling windows", bytes, results, 10, bounds[3]));
    for (what, bytes, _, _, _) in &report {
        eprintln!("windowing memory, {name}: {what}: {bytes:.0} bytes per key");
    }
    for (what, bytes, results, windows, bound) in report {
        assert_eq!(
            results,
            KEYS as usize * windows,
            "{name}, {what}: windows per key"
        );
        assert!(
            bytes > 0.0,
            "{name}, {what}: nothing measured ({bytes} bytes per key)"
        );
        assert!(
            bytes < bound,
            "{name}, {what}: {bytes:.0} bytes per key, over the bound of {bound}"
        );
    }
}

/// One test for both clocks: the allocator's count is process-wide, so two measurements
/// must not run at once.
#[test]
fn bytes_per_key_with_open_windows() {
    check(hour_behind, "a clock per key", [420.0, 490.0, 760.0, 1100.0]);
    check(
        || PerWorker::new(hour_behind()),
        "a per-worker clock",
        [80.0, 160.0, 400.0, 800.0],
    );
}
