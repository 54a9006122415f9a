//! Windowing through the engine: system-time wake-ups, live event clocks, state freed
//! after sessions close, the three outputs, and per-worker clocks.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bwx::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use bwx::prelude::*;
use bwx::recovery::codec;
use bwx::testing::{MemoryStore, TestingEvent, TestingSink, TestingSource};
use bwx::windowing::{
    EventClock, PerWorker, SessionWindower, SlidingWindower, SystemClock, TumblingWindower,
};

#[test]
fn system_clock_closes_windows_at_a_wake_up_without_more_input() {
    let flow = Dataflow::new("sys");
    let out = TestingSink::new();
    let events = vec![
        TestingEvent::Item(1u32),
        TestingEvent::Pause(Duration::from_millis(250)),
        TestingEvent::Item(2),
    ];
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    flow.input("inp", TestingSource::from_events(events))
        .inspect("arrive", move |_, x| {
            seen2.lock().unwrap().push(format!("item {x}"))
        })
        .count_window(
            "count",
            SystemClock,
            TumblingWindower::new(Duration::from_millis(50), 0).unwrap(),
            |_| "all".to_string(),
        )
        .down
        .inspect("closed", {
            let seen = seen.clone();
            move |_, (_, (_, n))| seen.lock().unwrap().push(format!("window of {n}"))
        })
        .output("out", out.clone());
    bwx::run_main(&flow).unwrap();
    let got = out.take();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|(_, (_, n))| *n == 1), "{got:?}");
    // The first window closed by a timer during the pause, before the second item came.
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["item 1", "window of 1", "item 2", "window of 1"]
    );
}

#[test]
fn live_event_clock_closes_sessions_on_time_and_frees_the_key() {
    let store = MemoryStore::new(2);
    let flow = Dataflow::new("live");
    let out = TestingSink::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let events = vec![
        TestingEvent::Item(("a".to_string(), 1_000i64)),
        TestingEvent::Item(("a".to_string(), 1_005)),
        TestingEvent::Pause(Duration::from_millis(300)),
        TestingEvent::Item(("b".to_string(), 1_010)),
    ];
    let order2 = order.clone();
    flow.input("inp", TestingSource::from_events(events))
        .inspect("arrive", move |_, (k, _)| {
            order2.lock().unwrap().push(format!("in {k}"))
        })
        .collect_window(
            "sess",
            // The watermark follows wall time: a session ends 100 ms after its last item.
            EventClock::new(|ts: &i64| *ts, Duration::ZERO),
            SessionWindower::new(Duration::from_millis(100)),
            true,
        )
        .down
        .inspect("closed", {
            let order = order.clone();
            move |_, (k, _)| order.lock().unwrap().push(format!("out {k}"))
        })
        .output("out", out.clone());
    let config = RunConfig::default()
        .epoch_interval(Duration::from_millis(30))
        .recovery(store.clone());
    bwx::run_main_with(&flow, config).unwrap();
    assert_eq!(
        out.take(),
        vec![
            ("a".to_string(), (0, vec![1_000, 1_005])),
            ("b".to_string(), (0, vec![1_010]))
        ]
    );
    assert_eq!(
        *order.lock().unwrap(),
        vec!["in a", "in a", "out a", "in b", "out b"]
    );
    // Key a's state was discarded when its session closed (Bytewax #577 kept it forever):
    // its last snapshot before b arrived says "no state".
    let snaps = store.written();
    let a: Vec<Option<&Vec<u8>>> = snaps
        .iter()
        .filter(|s| s.step_id.as_str() == "live.sess" && codec::decode_key::<String>(&s.key).unwrap() == "a")
        .map(|s| s.state.as_ref())
        .collect();
    assert!(a.len() >= 2, "{a:?}");
    assert!(a[0].is_some() && a.last().unwrap().is_none(), "{a:?}");
}

#[test]
fn late_items_and_metadata_have_their_own_streams() {
    let flow = Dataflow::new("three");
    let (down, late, meta) = (TestingSink::new(), TestingSink::new(), TestingSink::new());
    let items = vec![(1u8, 5i64), (1, 25), (1, 3), (1, 12)];
    let w = flow.input("inp", TestingSource::new(items)).reduce_window(
        "sum",
        EventClock::replay(|ts: &i64| *ts, Duration::from_millis(10)),
        TumblingWindower::new(Duration::from_millis(10), 0).unwrap(),
        |a, b| a + b,
    );
    w.down.output("down", down.clone());
    w.late.output("late", late.clone());
    w.meta.output("meta", meta.clone());
    bwx::run_main(&flow).unwrap();
    // After 25 the watermark is 15: window 0 closes; 3 and 12 are late.
    assert_eq!(down.take(), vec![(1, (0, 5)), (1, (2, 25))]);
    assert_eq!(late.take(), vec![(1, (0, 3)), (1, (1, 12))]);
    let meta: Vec<_> = meta
        .take()
        .into_iter()
        .map(|(k, (id, m))| (k, id, m.open_time, m.close_time))
        .collect();
    assert_eq!(meta, vec![(1, 0, 0, 10), (1, 2, 20, 30)]);
}

#[test]
fn a_per_worker_clock_closes_windows_at_a_wake_up_without_more_input() {
    let flow = Dataflow::new("pw");
    let out = TestingSink::new();
    let events = vec![
        TestingEvent::Item(("a".to_string(), 1u32)),
        TestingEvent::Item(("b".to_string(), 2)),
        TestingEvent::Pause(Duration::from_millis(250)),
        TestingEvent::Item(("a".to_string(), 3)),
    ];
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    flow.input("inp", TestingSource::from_events(events))
        .inspect("arrive", move |_, (k, x)| {
            seen2.lock().unwrap().push(format!("item {k}{x}"))
        })
        .fold_window(
            "count",
            PerWorker::new(SystemClock),
            TumblingWindower::new(Duration::from_millis(50), 0).unwrap(),
            || 0u32,
            |n, _| n + 1,
            |a, b| a + b,
            false,
        )
        .down
        .inspect("closed", {
            let seen = seen.clone();
            move |_, (k, (_, n))| seen.lock().unwrap().push(format!("{k} closed with {n}"))
        })
        .output("out", out.clone());
    bwx::run_main(&flow).unwrap();
    assert_eq!(out.take().len(), 3);
    // Both keys' first window closed at one wake-up during the pause.
    let seen = seen.lock().unwrap();
    assert_eq!(seen[..2], ["item a1", "item b2"]);
    let mut closed = seen[2..4].to_vec();
    closed.sort();
    assert_eq!(closed, ["a closed with 1", "b closed with 1"]);
    assert_eq!(seen[4..], ["item a3", "a closed with 1"]);
}

#[test]
fn per_worker_sliding_windows_report_metadata_for_every_key() {
    let flow = Dataflow::new("pws");
    let (down, meta) = (TestingSink::new(), TestingSink::new());
    // Length 10, a new window every 5: 7 is in windows 0 and 1, 12 in 1 and 2.
    let items = vec![(1u8, 7i64), (2, 12)];
    let w = flow.input("inp", TestingSource::new(items)).collect_window(
        "win",
        PerWorker::new(EventClock::replay(|ts: &i64| *ts, Duration::ZERO)),
        SlidingWindower::new(Duration::from_millis(10), Duration::from_millis(5), 0).unwrap(),
        true,
    );
    w.down.output("down", down.clone());
    w.meta.output("meta", meta.clone());
    bwx::run_main(&flow).unwrap();
    let mut got = down.take();
    got.sort();
    assert_eq!(
        got,
        vec![
            (1, (0, vec![7])),
            (1, (1, vec![7])),
            (2, (1, vec![12])),
            (2, (2, vec![12]))
        ]
    );
    let mut meta: Vec<_> = meta
        .take()
        .into_iter()
        .map(|(k, (id, m))| (k, id, m.open_time, m.close_time))
        .collect();
    meta.sort();
    assert_eq!(
        meta,
        vec![(1, 0, 0, 10), (1, 1, 5, 15), (2, 1, 5, 15), (2, 2, 10, 20)]
    );
}

#[test]
fn per_worker_sessions_close_as_the_workers_watermark_moves_on() {
    // Key 1 goes quiet after 5. With a per-key clock its session would wait for the end of
    // the input; with the worker's clock, key 2's item at 40 closes it (5 + gap 10 < 40),
    // and key 1's item at 20 is then late.
    let flow = Dataflow::new("pwsess");
    let (out, late) = (TestingSink::new(), TestingSink::new());
    let order = Arc::new(Mutex::new(Vec::new()));
    let items = vec![(1u8, 1i64), (1, 5), (2, 30), (2, 40), (1, 20), (2, 45)];
    let seen = order.clone();
    let w = flow
        .input("inp", TestingSource::new(items).batch_size(1))
        .inspect("arrive", move |_, (k, ts)| {
            seen.lock().unwrap().push(format!("in {k} {ts}"))
        })
        .collect_window(
            "sessions",
            PerWorker::new(EventClock::replay(|ts: &i64| *ts, Duration::ZERO)),
            SessionWindower::new(Duration::from_millis(10)),
            true,
        );
    let closed = order.clone();
    w.down
        .inspect("closed", move |_, (k, (_, items))| {
            closed.lock().unwrap().push(format!("out {k} {items:?}"))
        })
        .output("out", out.clone());
    w.late.output("late", late.clone());
    bwx::run_main(&flow).unwrap();
    let mut got = out.take();
    got.sort();
    assert_eq!(got, vec![(1, (0, vec![1, 5])), (2, (0, vec![30, 40, 45]))]);
    assert_eq!(late.take(), vec![(1, (bwx::windowing::LATE_SESSION_ID, 20))]);
    let order = order.lock().unwrap().clone();
    let at = |s: &str| order.iter().position(|o| o == s).unwrap();
    assert!(at("out 1 [1, 5]") < at("in 1 20"), "{order:?}");
}

#[test]
fn per_worker_sessions_keep_a_released_keys_session_ids_unique() {
    // Key 2's item at 40 closes key 1's only session (5 + gap 10 < 40), which frees key 1's
    // windows; key 1's next session is its second of the run, so its id is 1, not 0 again.
    let flow = Dataflow::new("pwids");
    let (out, meta) = (TestingSink::new(), TestingSink::new());
    let items = vec![(1u8, 1i64), (1, 5), (2, 30), (2, 40), (1, 60)];
    let w = flow
        .input("inp", TestingSource::new(items).batch_size(1))
        .collect_window(
            "sessions",
            PerWorker::new(EventClock::replay(|ts: &i64| *ts, Duration::ZERO)),
            SessionWindower::new(Duration::from_millis(10)),
            true,
        );
    w.down.output("out", out.clone());
    w.meta.output("meta", meta.clone());
    bwx::run_main(&flow).unwrap();
    let mut got = out.take();
    got.sort();
    assert_eq!(
        got,
        vec![(1, (0, vec![1, 5])), (1, (1, vec![60])), (2, (0, vec![30, 40]))]
    );
    let mut ids: Vec<_> = meta
        .take()
        .into_iter()
        .map(|(k, (id, m))| (k, id, m.open_time))
        .collect();
    ids.sort();
    assert_eq!(ids, vec![(1, 0, 1), (1, 1, 60), (2, 0, 30)]);
}

#[test]
fn per_worker_session_ids_stay_unique_across_a_resume() {
    // The first execution ends its input after key 1's first session, which closes there;
    // the resumed execution's session of key 1 continues the key's count.
    let store = MemoryStore::new(1);
    let events = vec![
        TestingEvent::Item((1u8, 1i64)),
        TestingEvent::Item((1, 5)),
        TestingEvent::Eof,
        TestingEvent::Item((1, 60)),
    ];
    let run = |store: Arc<MemoryStore>| {
        let flow = Dataflow::new("pwresume");
        let out = TestingSink::new();
        flow.input("inp", TestingSource::from_events(events.clone()))
            .collect_window(
                "sessions",
                PerWorker::new(EventClock::replay(|ts: &i64| *ts, Duration::ZERO)),
                SessionWindower::new(Duration::from_millis(10)),
                true,
            )
            .down
            .output("out", out.clone());
        bwx::run_main_with(&flow, RunConfig::default().recovery(store)).unwrap();
        out.take()
    };
    assert_eq!(run(store.clone()), vec![(1, (0, vec![1, 5]))]);
    assert_eq!(run(store.resume()), vec![(1, (1, vec![60]))]);
}

/// Two partitions with the same timestamps, 0 to 199 ms; "slow" starts 300 ms after "fast".
struct FastAndSlow;

struct FastOrSlow {
    name: String,
    next: i64,
    starts: Instant,
}

impl FixedPartitionedSource for FastAndSlow {
    type Item = (String, i64);
    type State = i64;
    type Partition = FastOrSlow;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok(vec!["fast".into(), "slow".into()])
    }

    fn build_part(&self, _: &StepId, part: &str, resume: Option<i64>) -> Result<FastOrSlow, ConnectorError> {
        let delay = if part == "slow" { 300 } else { 0 };
        Ok(FastOrSlow {
            name: part.to_string(),
            next: resume.unwrap_or(0),
            starts: Instant::now() + Duration::from_millis(delay),
        })
    }
}

impl StatefulSourcePartition for FastOrSlow {
    type Item = (String, i64);
    type State = i64;

    fn next_batch(&mut self, batch: &mut Vec<(String, i64)>) -> Result<BatchStatus, ConnectorError> {
        if Instant::now() < self.starts {
            return Ok(BatchStatus::Active);
        }
        for ts in self.next..self.next + 20 {
            batch.push((format!("{}{}", self.name, ts % 3), ts));
        }
        self.next += 20;
        Ok(if self.next >= 200 {
            BatchStatus::Eof
        } else {
            BatchStatus::Active
        })
    }

    fn next_awake(&self) -> Option<SystemTime> {
        let wait = self.starts.saturating_duration_since(Instant::now());
        (!wait.is_zero()).then(|| SystemTime::now() + wait)
    }

    fn snapshot(&self) -> i64 {
        self.next
    }
}

#[test]
fn per_worker_windows_wait_for_the_slowest_worker() {
    // On 2 workers each reads one partition. The fast one is through its input before the
    // slow one starts, yet none of the slow one's items is late: windows close at the
    // least of the workers' watermarks, as Flink's operators take the least of their
    // input channels'.
    let flow = Dataflow::new("skew");
    let (down, late) = (TestingSink::new(), TestingSink::new());
    let w = flow.input("inp", FastAndSlow).fold_window(
        "count",
        PerWorker::new(EventClock::replay(|ts: &i64| *ts, Duration::from_millis(5))),
        TumblingWindower::new(Duration::from_millis(50), 0).unwrap(),
        || 0u32,
        |n, _| n + 1,
        |a, b| a + b,
        false,
    );
    w.down.output("down", down.clone());
    w.late.output("late", late.clone());
    bwx::run_workers(&flow, 2, RunConfig::default()).unwrap();
    assert_eq!(late.take(), vec![]);
    let mut got = down.take();
    got.sort();
    // Keys fast0..fast2 and slow0..slow2, windows 0..3 of 50 ms: 16 or 17 items each.
    assert_eq!(got.len(), 24, "{got:?}");
    assert_eq!(got.iter().map(|(_, (_, n))| n).sum::<u32>(), 400);
}

#[test]
fn an_idle_worker_stops_holding_windows_back_after_its_idle_time() {
    // One partition on 2 workers: one worker reads every item, the other none. Window 0
    // can close once the reading worker's watermark passes 10 (after the item at 30), but
    // the other worker holds it back until it has been idle for 50 ms, or else until EOF.
    let run = |idle: Option<Duration>| {
        let flow = Dataflow::new("idle");
        let events = vec![
            TestingEvent::Item(("a".to_string(), 5i64)),
            TestingEvent::Item(("a".to_string(), 30)),
            TestingEvent::Pause(Duration::from_millis(300)),
            TestingEvent::Item(("a".to_string(), 40)),
        ];
        let seen = Arc::new(Mutex::new(Vec::new()));
        let clock = PerWorker::new(EventClock::replay(|ts: &i64| *ts, Duration::from_millis(5)));
        let clock = match idle {
            Some(idle) => clock.idle_after(idle),
            None => clock,
        };
        let w = flow
            .input("inp", TestingSource::from_events(events))
            .inspect("arrive", {
                let seen = seen.clone();
                move |_, (_, ts)| seen.lock().unwrap().push(format!("item {ts}"))
            })
            .fold_window(
                "count",
                clock,
                TumblingWindower::new(Duration::from_millis(10), 0).unwrap(),
                || 0u32,
                |n, _| n + 1,
                |a, b| a + b,
                false,
            );
        w.down
            .inspect("closed", {
                let seen = seen.clone();
                move |_, (_, (id, _))| seen.lock().unwrap().push(format!("window {id}"))
            })
            .output("out", TestingSink::new());
        w.late
            .inspect("late", {
                let seen = seen.clone();
                move |_, (_, (id, ts))| seen.lock().unwrap().push(format!("late {ts} for {id}"))
            })
            .output("late_out", TestingSink::new());
        bwx::run_workers(&flow, 2, RunConfig::default()).unwrap();
        seen.lock().unwrap().clone()
    };
    assert_eq!(
        run(Some(Duration::from_millis(50))),
        ["item 5", "item 30", "window 0", "item 40", "window 3", "window 4"]
    );
    assert_eq!(
        run(None),
        ["item 5", "item 30", "item 40", "window 0", "window 3", "window 4"]
    );
}
