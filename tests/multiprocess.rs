//! Flows across several local processes: equal results, and fail-stop of the whole cluster.

mod common;

use std::time::Duration;

use bwx::prelude::*;
use bwx::testing::{LocalCluster, ProcessOutcome, TestingEvent, TestingSink, TestingSource};
use bwx::windowing::{EventClock, PerWorker, TumblingWindower};
use common::PrintSink;

/// Sums of 0..10_000 by `x % 97`.
fn keyed_sums(flow: &Dataflow) -> Stream<(u32, u64)> {
    flow.input("inp", TestingSource::new(0..10_000u64).batch_size(100))
        .key_on("key", |x| (*x % 97) as u32)
        .reduce_final("sum", |a, b| a + b)
}

fn sums_on_threads(workers: usize) -> Vec<(u32, u64)> {
    let flow = Dataflow::new("sums");
    let out = TestingSink::new();
    keyed_sums(&flow).output("out", out.clone());
    bwx::run_workers(&flow, workers, RunConfig::default()).unwrap();
    let mut got = out.take();
    got.sort();
    got
}

fn assert_all_succeeded(outcomes: &[ProcessOutcome]) {
    for outcome in outcomes {
        assert!(outcome.status.success(), "{outcome}");
    }
}

#[test]
fn keyed_sums_agree_on_one_thread_three_threads_and_two_processes() {
    if let Some(member) = LocalCluster::member() {
        let flow = Dataflow::new("sums");
        keyed_sums(&flow)
            .map("fmt", |(k, s)| format!("{k} {s}"))
            .output("out", PrintSink::new("sum: "));
        member.run(&flow, RunConfig::default());
    }
    let one = sums_on_threads(1);
    assert_eq!(one.len(), 97);
    assert_eq!(
        one.iter().map(|(_, s)| s).sum::<u64>(),
        (0..10_000u64).sum::<u64>()
    );
    assert_eq!(sums_on_threads(3), one);

    let outcomes = LocalCluster::new(
        "keyed_sums_agree_on_one_thread_three_threads_and_two_processes",
        2,
    )
    .workers_per_process(2)
    .timeout(Duration::from_secs(30))
    .run()
    .unwrap();
    assert_all_succeeded(&outcomes);
    let mut got: Vec<(u32, u64)> = outcomes
        .iter()
        .flat_map(|o| o.lines("sum: "))
        .map(|l| {
            let (k, s) = l.split_once(' ').unwrap();
            (k.parse().unwrap(), s.parse().unwrap())
        })
        .collect();
    got.sort();
    assert_eq!(got, one);
    // Both processes did part of the work: keys are spread over all four workers.
    assert!(
        outcomes.iter().all(|o| o.lines("sum: ").count() > 0),
        "{outcomes:?}"
    );
}

/// Counts per key `x % 7` and 100 ms window of `x` ms, 0..5_000, under a per-worker clock;
/// late items would come out as `(key, u64::MAX)`.
fn window_counts(flow: &Dataflow) -> Stream<(u32, (i64, u64))> {
    let w = flow
        .input("inp", TestingSource::new(0..5_000i64).batch_size(100))
        .key_on("key", |x| (*x % 7) as u32)
        .fold_window(
            "count",
            PerWorker::new(EventClock::replay(|x: &i64| *x, Duration::ZERO)),
            TumblingWindower::new(Duration::from_millis(100), 0).unwrap(),
            || 0u64,
            |n, _| n + 1,
            |a, b| a + b,
            false,
        );
    let late = w.late.map("late", |(k, (id, _))| (k, (id, u64::MAX)));
    flow.merge("all", [&w.down, &late])
}

#[test]
fn per_worker_windows_agree_on_one_thread_and_two_processes() {
    if let Some(member) = LocalCluster::member() {
        let flow = Dataflow::new("wins");
        window_counts(&flow)
            .map("fmt", |(k, (id, n))| format!("{k} {id} {n}"))
            .output("out", PrintSink::new("count: "));
        member.run(&flow, RunConfig::default());
    }
    let flow = Dataflow::new("wins");
    let out = TestingSink::new();
    window_counts(&flow).output("out", out.clone());
    bwx::run_main(&flow).unwrap();
    let mut one = out.take();
    one.sort();
    assert_eq!(one.len(), 7 * 50);
    assert!(one.iter().all(|(_, (_, n))| *n != u64::MAX), "nothing is late");

    let outcomes = LocalCluster::new("per_worker_windows_agree_on_one_thread_and_two_processes", 2)
        .workers_per_process(2)
        .timeout(Duration::from_secs(30))
        .run()
        .unwrap();
    assert_all_succeeded(&outcomes);
    let mut got: Vec<(u32, (i64, u64))> = outcomes
        .iter()
        .flat_map(|o| o.lines("count: "))
        .map(|l| {
            let mut f = l.split(' ').map(|x| x.parse::<i64>().unwrap());
            let (k, id, n) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            (k as u32, (id, n as u64))
        })
        .collect();
    got.sort();
    assert_eq!(got, one);
}

#[test]
fn a_panic_in_one_process_stops_every_process_naming_step_and_worker() {
    if let Some(member) = LocalCluster::member() {
        let flow = Dataflow::new("boom");
        flow.input("inp", TestingSource::new(0..2_000u32).batch_size(10))
            .redistribute("spread")
            .map("explode", |x| if x == 1_000 { panic!("bad item {x}") } else { x })
            .output("out", TestingSink::new());
        member.run(&flow, RunConfig::default());
    }
    let outcomes = LocalCluster::new(
        "a_panic_in_one_process_stops_every_process_naming_step_and_worker",
        2,
    )
    .workers_per_process(2)
    .timeout(Duration::from_secs(20))
    .run()
    .unwrap();
    for outcome in &outcomes {
        assert!(!outcome.timed_out, "{outcome}");
        assert_eq!(outcome.status.code(), Some(1), "{outcome}");
        // Every process reports the same cause: the step, the worker and the panic message.
        assert!(
            outcome.stderr.contains("step 'boom.explode' panicked on worker"),
            "{outcome}"
        );
        assert!(outcome.stderr.contains("bad item 1000"), "{outcome}");
    }
}

#[test]
fn a_killed_process_stops_the_others() {
    if let Some(member) = LocalCluster::member() {
        let flow = Dataflow::new("kill");
        flow.input("inp", TestingSource::new(0..2_000u32).batch_size(10))
            .redistribute("spread")
            .inspect("die", |_step, x| {
                if *x == 1_000 {
                    // SAFETY: kill(2) on our own pid; no memory is involved.
                    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
                }
            })
            .output("out", TestingSink::new());
        member.run(&flow, RunConfig::default());
    }
    let outcomes = LocalCluster::new("a_killed_process_stops_the_others", 2)
        .workers_per_process(1)
        .timeout(Duration::from_secs(20))
        .run()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    let killed: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status.signal() == Some(libc::SIGKILL))
        .collect();
    let others: Vec<_> = outcomes.iter().filter(|o| o.status.signal().is_none()).collect();
    assert_eq!((killed.len(), others.len()), (1, 1), "{outcomes:?}");
    let other = others[0];
    assert!(!other.timed_out, "{other}");
    assert_eq!(other.status.code(), Some(1), "{other}");
    // The survivor names the process it lost.
    let lost = format!("lost the connection to process {} (", killed[0].process_id);
    assert!(other.stderr.contains(&lost), "{other}");
}

#[test]
fn an_abort_in_one_process_stops_every_process_without_eof() {
    if let Some(member) = LocalCluster::member() {
        let flow = Dataflow::new("abort");
        let mut events: Vec<TestingEvent<u64>> = (0..100).map(TestingEvent::Item).collect();
        events.push(TestingEvent::Abort);
        events.extend((100..200).map(TestingEvent::Item));
        flow.input("inp", TestingSource::from_events(events))
            .key_on("key", |x| (*x % 7) as u32)
            .reduce_final("sum", |a, b| a + b)
            .map("fmt", |(k, s)| format!("{k} {s}"))
            .output("out", PrintSink::new("sum: "));
        member.run(&flow, RunConfig::default());
    }
    let outcomes = LocalCluster::new("an_abort_in_one_process_stops_every_process_without_eof", 2)
        .workers_per_process(2)
        .timeout(Duration::from_secs(20))
        .run()
        .unwrap();
    assert_all_succeeded(&outcomes);
    // An aborted execution never reaches EOF, so no final sums come out anywhere.
    assert!(
        outcomes.iter().all(|o| o.lines("sum: ").count() == 0),
        "{outcomes:?}"
    );
}

#[test]
fn local_cluster_kills_processes_still_running_at_the_timeout() {
    if LocalCluster::member().is_some() {
        std::thread::sleep(Duration::from_secs(30));
        std::process::exit(0);
    }
    let outcomes = LocalCluster::new("local_cluster_kills_processes_still_running_at_the_timeout", 2)
        .timeout(Duration::from_millis(300))
        .run()
        .unwrap();
    assert_eq!(outcomes.len(), 2);
    for outcome in &outcomes {
        assert!(outcome.timed_out && !outcome.status.success(), "{outcome}");
        assert!(outcome.elapsed < Duration::from_secs(10), "{outcome}");
    }
}

/// A flow whose process 1 stops itself (SIGSTOP) at item 300, and has itself continued
/// after `resume_after`; with `nap`, one item instead sleeps that long in a user function.
fn stalling_flow(name: &str, nap: bool, resume_after: Duration) -> Dataflow {
    let flow = Dataflow::new(name);
    flow.input("inp", TestingSource::new(0..600u32).batch_size(10))
        .redistribute("spread")
        .inspect("stall", move |_step, x| {
            if *x != 300 {
                return;
            }
            if nap {
                std::thread::sleep(resume_after);
                return;
            }
            let me = std::process::id();
            let wake = format!("sleep {}; kill -CONT {me}", resume_after.as_secs_f64());
            // Outlives this process's wait; init reaps it.
            #[allow(clippy::zombie_processes)]
            std::process::Command::new("sh")
                .args(["-c", &wake])
                .spawn()
                .unwrap();
            // SAFETY: raise(3) on this process; no memory is involved.
            unsafe { libc::raise(libc::SIGSTOP) };
        })
        .output("out", TestingSink::new());
    flow
}

#[test]
fn a_stopped_process_is_detected_within_the_heartbeat_timeout() {
    let timeout = Duration::from_millis(800);
    if let Some(member) = LocalCluster::member() {
        let options = bwx::ClusterOptions::default().heartbeat_timeout(timeout);
        let flow = stalling_flow("stall", false, Duration::from_secs(4));
        member.run(&flow, RunConfig::default().cluster(options));
    }
    let outcomes = LocalCluster::new("a_stopped_process_is_detected_within_the_heartbeat_timeout", 2)
        .timeout(Duration::from_secs(20))
        .run()
        .unwrap();
    // Item 300 reaches one of the two processes; the other one notices.
    let stalled: Vec<_> = outcomes
        .iter()
        .filter(|o| o.elapsed >= Duration::from_secs(4))
        .collect();
    let watcher: Vec<_> = outcomes
        .iter()
        .filter(|o| o.elapsed < Duration::from_secs(4))
        .collect();
    assert_eq!((stalled.len(), watcher.len()), (1, 1), "{outcomes:?}");
    let (stalled, watcher) = (stalled[0], watcher[0]);
    assert_eq!(watcher.status.code(), Some(1), "{watcher}");
    let named = format!("process {} (", stalled.process_id);
    assert!(
        watcher.stderr.contains(&named) && watcher.stderr.contains("has not been heard from"),
        "{watcher}"
    );
    // Detected within the timeout and a little more (the stop comes early in the run).
    assert!(
        watcher.elapsed < timeout + Duration::from_millis(2500),
        "{watcher}"
    );
    // Continued, the stopped process finds its peer gone and fails too, without hanging.
    assert!(
        !stalled.timed_out && stalled.status.code() == Some(1),
        "{stalled}"
    );
}

#[test]
fn a_long_user_function_is_not_a_hung_process() {
    if let Some(member) = LocalCluster::member() {
        let options = bwx::ClusterOptions::default().heartbeat_timeout(Duration::from_millis(300));
        let flow = stalling_flow("nap", true, Duration::from_secs(2));
        member.run(&flow, RunConfig::default().cluster(options));
    }
    let outcomes = LocalCluster::new("a_long_user_function_is_not_a_hung_process", 2)
        .timeout(Duration::from_secs(20))
        .run()
        .unwrap();
    assert_all_succeeded(&outcomes);
}
