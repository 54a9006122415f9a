//! Property tests of windowing against a reference model computed directly from the input.
//!
//! For random keyed inputs with bounded disorder (and some very late items), with the
//! replay event clock: every item is in the results of exactly the windows it belongs to,
//! or on the late stream with those windows, never both and never neither; sessions are
//! the gap-separated runs of on-time items; results agree for 1 and 2 workers and for
//! ordered and unordered mode (ordered mode lists each window in timestamp order).
//!
//! The same holds under a `PerWorker` clock (tumbling, sliding and session windows), where
//! the watermark is taken over all items a worker reads instead of per key.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};
use bwx::windowing::{
    Clock, EventClock, LATE_SESSION_ID, PerWorker, SessionWindower, SlidingWindower, TumblingWindower,
    WindowId, WindowOut,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

/// An item: (index in the input, timestamp).
type Item = (u32, i64);
type Key = u8;

#[derive(Clone, Copy, Debug)]
enum Win {
    Tumbling { length: i64, align: i64 },
    Sliding { length: i64, offset: i64, align: i64 },
    Session { gap: i64 },
}

#[derive(Clone, Debug)]
struct Case {
    items: Vec<(Key, Item)>,
    wait: i64,
    win: Win,
    batch: usize,
}

fn floor_div(a: i64, b: i64) -> i64 {
    (a as i128).div_euclid(b as i128) as i64
}

/// The windows of an item at `ts`, straight from the definitions.
fn model_ids(win: Win, ts: i64) -> Vec<WindowId> {
    match win {
        Win::Tumbling { length, align } => vec![floor_div(ts - align, length)],
        Win::Sliding {
            length,
            offset,
            align,
        } => {
            // Every w with align + w*offset <= ts < align + w*offset + length.
            let last = floor_div(ts - align, offset);
            (last - length / offset - 1..=last)
                .filter(|w| align + w * offset <= ts && ts < align + w * offset + length)
                .collect()
        }
        Win::Session { .. } => vec![LATE_SESSION_ID],
    }
}

/// What the model says: per key, window contents (as sorted item indices) and late items.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// Tumbling/sliding: (key, window id) → item indices. Sessions: (key, n-th session).
    windows: BTreeMap<(Key, WindowId), Vec<u32>>,
    late: Vec<(Key, WindowId, u32)>,
}

/// `scope` names whose watermark an item's key moves: the key's own (per-key clock) or
/// one for all (`PerWorker` with the input in one partition).
fn model(case: &Case, scope: impl Fn(Key) -> usize) -> Outcome {
    let mut max: BTreeMap<usize, i64> = BTreeMap::new();
    let mut windows: BTreeMap<(Key, WindowId), Vec<u32>> = BTreeMap::new();
    let mut on_time: BTreeMap<Key, Vec<Item>> = BTreeMap::new();
    let mut late = Vec::new();
    for &(k, (idx, ts)) in &case.items {
        let m = max.entry(scope(k)).or_insert(i64::MIN);
        *m = (*m).max(ts);
        if ts < *m - case.wait {
            for id in model_ids(case.win, ts) {
                late.push((k, id, idx));
            }
        } else if let Win::Session { .. } = case.win {
            on_time.entry(k).or_default().push((idx, ts));
        } else {
            for id in model_ids(case.win, ts) {
                windows.entry((k, id)).or_default().push(idx);
            }
        }
    }
    if let Win::Session { gap } = case.win {
        for (k, mut items) in on_time {
            items.sort_by_key(|(_, ts)| *ts);
            let mut n = 0;
            let mut prev: Option<i64> = None;
            for (idx, ts) in items {
                if prev.is_some_and(|p| ts - p > gap) {
                    n += 1;
                }
                prev = Some(ts);
                windows.entry((k, n)).or_default().push(idx);
            }
        }
    }
    windows.values_mut().for_each(|v| v.sort());
    late.sort();
    Outcome { windows, late }
}

struct Run {
    outcome: Outcome,
    /// Whether every window's list was in timestamp order.
    ts_sorted: bool,
    merges: usize,
}

/// The windows of `inp` under `clock`.
fn windows<C: Clock<Item>>(
    inp: &Stream<(Key, Item)>,
    clock: C,
    win: Win,
    ordered: bool,
) -> WindowOut<Key, Item, Vec<Item>> {
    match win {
        Win::Tumbling { length, align } => {
            let w = TumblingWindower::new(Duration::from_millis(length as u64), align).unwrap();
            inp.collect_window("win", clock, w, ordered)
        }
        Win::Sliding {
            length,
            offset,
            align,
        } => {
            let w = SlidingWindower::new(
                Duration::from_millis(length as u64),
                Duration::from_millis(offset as u64),
                align,
            )
            .unwrap();
            inp.collect_window("win", clock, w, ordered)
        }
        Win::Session { gap } => {
            let w = SessionWindower::new(Duration::from_millis(gap as u64));
            inp.collect_window("win", clock, w, ordered)
        }
    }
}

fn run(case: &Case, ordered: bool, workers: usize, per_worker: bool) -> Run {
    let flow = Dataflow::new("props");
    let (down, late, meta) = (TestingSink::new(), TestingSink::new(), TestingSink::new());
    let clock = EventClock::replay(|(_, ts): &Item| *ts, Duration::from_millis(case.wait as u64));
    let inp = flow.input(
        "inp",
        TestingSource::new(case.items.clone()).batch_size(case.batch),
    );
    let out = if per_worker {
        windows(&inp, PerWorker::new(clock), case.win, ordered)
    } else {
        windows(&inp, clock, case.win, ordered)
    };
    out.down.output("down", down.clone());
    out.late.output("late", late.clone());
    out.meta.output("meta", meta.clone());
    bwx::run_workers(&flow, workers, RunConfig::default()).unwrap();

    // A key's results and metadata come in the same order (a key is on one worker). A key
    // whose sessions all closed starts over at session id 0, so an id can repeat.
    let mut meta_of: BTreeMap<(Key, WindowId), VecDeque<_>> = BTreeMap::new();
    for (k, (id, m)) in meta.take() {
        meta_of.entry((k, id)).or_default().push_back(m);
    }
    let merges = meta_of
        .values()
        .flatten()
        .filter(|m| !m.merged_ids.is_empty())
        .count();
    let mut ts_sorted = true;
    let mut windows = BTreeMap::new();
    let mut sessions: BTreeMap<Key, Vec<(i64, Vec<u32>)>> = BTreeMap::new();
    for (k, (id, items)) in down.take() {
        ts_sorted &= items.windows(2).all(|p| p[0].1 <= p[1].1);
        let m = meta_of
            .get_mut(&(k, id))
            .and_then(VecDeque::pop_front)
            .expect("every result has its window's metadata");
        let m = &m;
        let lo = items.iter().map(|(_, ts)| *ts).min().unwrap();
        let hi = items.iter().map(|(_, ts)| *ts).max().unwrap();
        let mut idx: Vec<u32> = items.iter().map(|(i, _)| *i).collect();
        idx.sort();
        match case.win {
            Win::Session { .. } => {
                // Sessions span exactly their items; compared by position, not id.
                assert_eq!((m.open_time, m.close_time), (lo, hi), "session metadata");
                sessions.entry(k).or_default().push((lo, idx));
            }
            _ => {
                assert!(
                    m.open_time <= lo && hi < m.close_time,
                    "window {id} {m:?} holds {lo}..={hi}"
                );
                assert!(
                    windows.insert((k, id), idx).is_none(),
                    "window ({k}, {id}) emitted twice"
                );
            }
        }
    }
    for (k, mut list) in sessions {
        list.sort();
        for (n, (_, idx)) in list.into_iter().enumerate() {
            windows.insert((k, n as WindowId), idx);
        }
    }
    let mut late: Vec<(Key, WindowId, u32)> = late
        .take()
        .into_iter()
        .map(|(k, (id, (idx, _)))| (k, id, idx))
        .collect();
    late.sort();
    Run {
        outcome: Outcome { windows, late },
        ts_sorted,
        merges,
    }
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let win = prop_oneof![
        (1i64..40, -50i64..50).prop_map(|(length, align)| Win::Tumbling { length, align }),
        (1i64..40, 1i64..40, -50i64..50).prop_map(|(a, b, align)| Win::Sliding {
            length: a.max(b),
            offset: a.min(b),
            align
        }),
        (0i64..15).prop_map(|gap| Win::Session { gap }),
    ];
    // Per item: key, time step, jitter (bounded disorder), and rarely a big jump back.
    let item = (0u8..3, 0i64..6, -8i64..=8, prop::bool::weighted(0.05));
    (prop::collection::vec(item, 1..120), 0i64..12, win, 1usize..20).prop_map(|(raw, wait, win, batch)| {
        let mut t = 0i64;
        let items = raw
            .into_iter()
            .enumerate()
            .map(|(i, (k, step, jitter, very_late))| {
                t += step;
                let ts = if very_late { t - 60 } else { t + jitter };
                (k, (i as u32, ts))
            })
            .collect();
        Case {
            items,
            wait,
            win,
            batch,
        }
    })
}

#[test]
fn windows_match_the_reference_model() {
    let config = Config {
        cases: 160,
        rng_seed: RngSeed::Fixed(0x5eed_0005),
        failure_persistence: None,
        ..Config::default()
    };
    let (lates, merges, eof_windows) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case_strategy(), |case| {
        let expected = model(&case, usize::from);
        let unordered = run(&case, false, 1, false);
        prop_assert_eq!(&unordered.outcome, &expected, "unordered, 1 worker");
        let ordered = run(&case, true, 1, false);
        prop_assert_eq!(&ordered.outcome, &expected, "ordered, 1 worker");
        prop_assert!(ordered.ts_sorted, "ordered windows list items in timestamp order");
        let two = run(&case, true, 2, false);
        prop_assert_eq!(&two.outcome, &expected, "ordered, 2 workers");
        lates.fetch_add(expected.late.len(), Ordering::Relaxed);
        merges.fetch_add(unordered.merges, Ordering::Relaxed);
        // Windows still open when the input ends are closed by EOF.
        eof_windows.fetch_add(usize::from(!expected.windows.is_empty()), Ordering::Relaxed);
        Ok::<(), TestCaseError>(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generated cases exercise what the properties are about.
    assert!(lates.load(Ordering::Relaxed) > 0, "no late items generated");
    assert!(merges.load(Ordering::Relaxed) > 0, "no session merges generated");
    assert!(
        eof_windows.load(Ordering::Relaxed) > 0,
        "no windows closed at EOF"
    );
}

#[test]
fn per_worker_windows_match_the_reference_model() {
    let config = Config {
        cases: 120,
        rng_seed: RngSeed::Fixed(0x5eed_0006),
        failure_persistence: None,
        ..Config::default()
    };
    let (lates, windows) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut runner = TestRunner::new(config);
    let (lates, windows, sessions) = (lates, windows, AtomicUsize::new(0));
    let result = runner.run(&case_strategy(), |case| {
        let one = model(&case, |_| 0);
        let unordered = run(&case, false, 1, true);
        prop_assert_eq!(&unordered.outcome, &one, "unordered, 1 worker");
        let ordered = run(&case, true, 1, true);
        prop_assert_eq!(&ordered.outcome, &one, "ordered, 1 worker");
        prop_assert!(ordered.ts_sorted, "ordered windows list items in timestamp order");
        // The input is one partition, so one worker's clock stamps every item, in order.
        prop_assert_eq!(&run(&case, true, 2, true).outcome, &one, "ordered, 2 workers");
        prop_assert_eq!(&run(&case, false, 2, true).outcome, &one, "unordered, 2 workers");
        lates.fetch_add(one.late.len(), Ordering::Relaxed);
        windows.fetch_add(one.windows.len(), Ordering::Relaxed);
        if matches!(case.win, Win::Session { .. }) {
            sessions.fetch_add(one.windows.len(), Ordering::Relaxed);
        }
        Ok::<(), TestCaseError>(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(lates.load(Ordering::Relaxed) > 0, "no late items generated");
    assert!(windows.load(Ordering::Relaxed) > 0, "no windows generated");
    assert!(sessions.load(Ordering::Relaxed) > 0, "no sessions generated");
}
