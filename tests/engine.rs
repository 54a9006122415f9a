//! Behaviour of the engine across workers: equal results, fail-stop, timers, snapshots.

use std::time::{Duration, Instant};

use bwx::prelude::*;
use bwx::recovery::codec;
use bwx::testing::{MemoryStore, TestingEvent, TestingSink, TestingSource};

fn keyed_sums(workers: usize) -> Vec<(u32, u64)> {
    keyed_sums_over(workers, 97)
}

fn keyed_sums_over(workers: usize, keys: u64) -> Vec<(u32, u64)> {
    let flow = Dataflow::new("sums");
    let out = TestingSink::new();
    flow.input("inp", TestingSource::new(0..10_000u64).batch_size(100))
        .key_on("key", move |x| (*x % keys) as u32)
        .reduce_final("sum", |a, b| a + b)
        .output("out", out.clone());
    bwx::run_workers(&flow, workers, RunConfig::default()).unwrap();
    let mut got = out.take();
    got.sort();
    got
}

#[test]
fn one_and_many_workers_agree() {
    let one = keyed_sums(1);
    assert_eq!(one.len(), 97);
    assert_eq!(
        one.iter().map(|(_, s)| s).sum::<u64>(),
        (0..10_000u64).sum::<u64>()
    );
    assert_eq!(keyed_sums(3), one);
}

#[test]
fn every_key_is_closed_at_eof_however_many_there_are() {
    // More keys than the engine closes per activation at the end of the input.
    let one = keyed_sums_over(1, 9_000);
    assert_eq!(one.len(), 9_000);
    assert!(
        one.iter()
            .all(|&(k, s)| s == u64::from(k) + if k < 1_000 { u64::from(k) + 9_000 } else { 0 })
    );
    assert_eq!(keyed_sums_over(2, 9_000), one);
}

#[test]
fn a_panic_stops_every_worker_and_names_step_and_worker() {
    let flow = Dataflow::new("boom");
    flow.input("inp", TestingSource::new(0..1000u32))
        .redistribute("spread")
        .map("explode", |x| if x == 500 { panic!("bad item {x}") } else { x })
        .output("out", TestingSink::new());
    let started = Instant::now();
    let err = bwx::run_workers(&flow, 2, RunConfig::default()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20));
    match err {
        FlowError::StepPanicked {
            step,
            worker,
            message,
        } => {
            assert_eq!(step, "boom.explode");
            assert!(worker < 2);
            assert!(message.contains("bad item 500"), "{message}");
        }
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn collect_times_out_on_system_time_without_more_input() {
    let flow = Dataflow::new("c");
    let out = TestingSink::new();
    let events = vec![
        TestingEvent::Item(("k".to_string(), 1)),
        TestingEvent::Pause(Duration::from_millis(300)),
        TestingEvent::Item(("k".to_string(), 2)),
    ];
    flow.input("inp", TestingSource::from_events(events))
        .collect("batch", Duration::from_millis(50), 10)
        .output("out", out.clone());
    bwx::run_main(&flow).unwrap();
    // The first list closed on its timeout during the pause, the second at EOF.
    assert_eq!(
        out.take(),
        vec![("k".to_string(), vec![1]), ("k".to_string(), vec![2])]
    );
}

#[test]
fn abort_stops_without_eof() {
    let flow = Dataflow::new("a");
    let out = TestingSink::new();
    let events = vec![
        TestingEvent::Item(1u8),
        TestingEvent::Abort,
        TestingEvent::Item(2),
    ];
    flow.input("inp", TestingSource::from_events(events))
        .key_on("k", |_| 0u8)
        .reduce_final("sum", |a, b| a + b)
        .output("out", out.clone());
    bwx::run_main(&flow).unwrap();
    assert!(out.take().is_empty(), "an aborted execution emits no EOF results");
}

#[test]
fn snapshots_cover_keys_touched_in_each_epoch() {
    let store = MemoryStore::new(2);
    let flow = Dataflow::new("s");
    let events = vec![
        TestingEvent::Item(("a".to_string(), 1)),
        TestingEvent::Pause(Duration::from_millis(120)),
        TestingEvent::Item(("b".to_string(), 2)),
    ];
    flow.input("inp", TestingSource::from_events(events))
        .stateful_map("sum", |s: Option<i32>, v: i32| {
            let s = s.unwrap_or(0) + v;
            (Some(s), s)
        })
        .output("out", TestingSink::new());
    let config = RunConfig::default()
        .epoch_interval(Duration::from_millis(40))
        .recovery(store.clone());
    bwx::run_main_with(&flow, config).unwrap();
    let written = store.written();
    let state_snaps: Vec<(String, u64, Option<i32>)> = written
        .iter()
        .filter(|s| s.step_id.as_str() == "s.sum")
        .map(|s| {
            let key: String = codec::decode_key(&s.key).unwrap();
            (
                key,
                s.epoch,
                s.state.as_deref().map(|b| codec::decode::<i32>(b).unwrap()),
            )
        })
        .collect();
    // A key is snapshotted only in the epochs that touched it; an EOF that keeps the
    // state without emitting (stateful_map) touches nothing.
    let a: Vec<_> = state_snaps.iter().filter(|s| s.0 == "a").collect();
    let b: Vec<_> = state_snaps.iter().filter(|s| s.0 == "b").collect();
    assert_eq!((a.len(), b.len()), (1, 1), "{state_snaps:?}");
    assert_eq!(a[0].2, Some(1), "{state_snaps:?}");
    assert!(b[0].1 > a[0].1 && b[0].2 == Some(2), "{state_snaps:?}");
    // The source's position is snapshotted too.
    assert!(written.iter().any(|s| s.step_id.as_str() == "s.inp"));
}
