//! The builder form of every example, kept documented and tested: each example's flow is
//! written here again with the builder API, and must have the same steps (ids, operators,
//! wiring) as the example's `dataflow!` form and give the same output on 1 and 2 workers.
//! This also shows what `dataflow!` expands to: one builder call per step.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bwx::connectors::files::{CsvSource, FileSource};
use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};
use bwx::windowing::{EventClock, SessionWindower, SlidingWindower, TumblingWindower, each_side};

#[allow(dead_code)]
#[path = "../examples/wordcount.rs"]
mod wordcount;

#[allow(dead_code)]
#[path = "../examples/basic.rs"]
mod basic;

#[allow(dead_code)]
#[path = "../examples/running_mean.rs"]
mod running_mean;

#[allow(dead_code)]
#[path = "../examples/join.rs"]
mod join;

#[allow(dead_code)]
#[path = "../examples/custom_logic.rs"]
mod custom_logic;

#[allow(dead_code)]
#[path = "../examples/window_tumbling_average.rs"]
mod tumbling_average;

#[allow(dead_code)]
#[path = "../examples/window_hot_items.rs"]
mod hot_items;

#[allow(dead_code)]
#[path = "../examples/window_sessions.rs"]
mod sessions;

#[allow(dead_code)]
#[path = "../examples/window_join.rs"]
mod window_join;

/// Every step as `id operator inputs outputs`: equal lists mean equal flows.
fn steps(flow: &Dataflow) -> Vec<String> {
    flow.steps()
        .iter()
        .map(|s| format!("{} {} {:?} {:?}", s.id, s.operator, s.inputs, s.outputs))
        .collect()
}

/// Runs `flow` on `workers` threads and returns what `sink` got, sorted by its `Debug` form
/// (the order across workers is not defined).
fn run<T: Debug>(flow: &Dataflow, sink: &TestingSink<T>, workers: usize) -> Vec<String> {
    bwx::run_workers(flow, workers, RunConfig::default()).unwrap();
    taken(sink)
}

/// What `sink` got, sorted by its `Debug` form.
fn taken<T: Debug>(sink: &TestingSink<T>) -> Vec<String> {
    let mut got: Vec<String> = sink.take().iter().map(|x| format!("{x:?}")).collect();
    got.sort();
    got
}

/// Asserts that the two forms have the same steps and the same non-empty output on 1 and
/// 2 workers. Each closure makes a flow writing into the given sink.
fn same_flow<T: Debug>(
    by_macro: impl Fn(TestingSink<T>) -> Dataflow,
    by_builder: impl Fn(TestingSink<T>) -> Dataflow,
) {
    let (m, b) = (TestingSink::new(), TestingSink::new());
    let (macro_flow, builder_flow) = (by_macro(m.clone()), by_builder(b.clone()));
    assert_eq!(steps(&macro_flow), steps(&builder_flow));
    for workers in [1, 2] {
        let want = run(&builder_flow, &b, workers);
        assert!(!want.is_empty(), "the builder flow wrote nothing");
        assert_eq!(run(&macro_flow, &m, workers), want, "{workers} workers");
    }
}

fn bundled(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/data")
        .join(name)
}

#[test]
fn wordcount() {
    let path = bundled("wordcount.txt");
    same_flow(
        |out| wordcount::build_flow(&path, out),
        |out| {
            let flow = Dataflow::new("wordcount");
            flow.input("lines", FileSource::new(&path))
                .flat_map("words", |line: String| wordcount::tokenize(&line))
                .count_final("counts", |word: &String| word.clone())
                .map("format", |(word, count)| format!("{word} {count}"))
                .output("out", out);
            flow
        },
    );
}

#[test]
fn basic() {
    same_flow(basic::build_flow, |out| {
        let flow = Dataflow::new("basic");
        let readings = flow
            .input("lines", TestingSource::new(basic::READINGS.iter().copied()))
            .filter("readings_filter", |line: &&str| !line.starts_with('#'))
            .filter_map("readings_filter_map", |line: &str| basic::parse(line))
            .map("readings", |(room, c)| (room, c, c * 9.0 / 5.0 + 32.0));
        let too_hot = readings.branch("too_hot", |(_, c, _)| *c > basic::TOO_HOT);
        let alerts = too_hot.trues.map("alerts", |(room, c, f)| {
            format!("ALERT {room}: {c:.1} °C ({f:.1} °F)")
        });
        let fine = too_hot
            .falses
            .map("fine", |(room, c, _)| format!("ok {room}: {c:.1} °C"));
        flow.merge("all", [&alerts, &fine]).output("out", out);
        flow
    });
}

#[test]
fn running_mean() {
    use running_mean::{Mean, Reading};
    let path = bundled("readings.csv");
    same_flow(
        |out| running_mean::build_flow(&path, out),
        |out| {
            let flow = Dataflow::new("running_mean");
            flow.input("readings", CsvSource::<Reading>::new(&path))
                .key_on("by_sensor", |r: &Reading| r.sensor.clone())
                .map_value("celsius", |r| r.celsius)
                .stateful_map("mean", |state: Option<Mean>, celsius: f64| {
                    let mut mean = state.unwrap_or_default();
                    let now = mean.add(celsius);
                    (Some(mean), now)
                })
                .map("format", |(sensor, mean)| format!("{sensor} {mean:.2}"))
                .output("out", out);
            flow
        },
    );
}

#[test]
fn join() {
    same_flow(join::build_flow, |out| {
        let flow = Dataflow::new("orders");
        let payments = flow.input("payments", TestingSource::new(join::PAYMENTS.to_vec()));
        let shipments = flow.input(
            "shipments",
            TestingSource::new(join::SHIPMENTS.iter().map(|(id, s)| (*id, s.to_string()))),
        );
        flow.join(
            "matched",
            (&payments, &shipments),
            JoinInsertMode::Last,
            JoinEmitMode::Complete,
        )
        .map("format", |(order, (cents, shipped)): (u32, (u64, String))| {
            format!(
                "order {order}: paid {}.{:02} EUR, {shipped}",
                cents / 100,
                cents % 100
            )
        })
        .output("out", out);
        flow
    });
}

#[test]
fn custom_logic() {
    use custom_logic::{Session, SessionState, scripted_activity};
    let timeout = Duration::from_secs(1);
    same_flow(
        |out| custom_logic::build_flow(timeout, out),
        |out| {
            let flow = Dataflow::new("sessions");
            flow.input("activity", TestingSource::from_events(scripted_activity(timeout)))
                .stateful("session", move |resume: Option<SessionState>| {
                    Session::resume(resume, timeout)
                })
                .map("format", |(user, event)| format!("{user} {event}"))
                .output("out", out);
            flow
        },
    );
}

#[test]
fn window_tumbling_average() {
    use tumbling_average::{Average, Reading, START, readings};
    let builder = |averages: TestingSink<Average>, late: TestingSink<Reading>| {
        let flow = Dataflow::new("tumbling_average");
        let mean = flow
            .input("readings", TestingSource::new(readings()))
            .key_on("by_sensor", |r: &Reading| r.0.clone())
            .fold_window(
                "mean",
                EventClock::replay(|r: &Reading| r.1, Duration::from_secs(5)),
                TumblingWindower::new(Duration::from_secs(10), START).unwrap(),
                || (0u32, 0.0f64),
                |(n, sum), r: Reading| (n + 1, sum + r.2),
                |(n1, s1), (n2, s2)| (n1 + n2, s1 + s2),
                false,
            );
        mean.down
            .map(
                "average",
                |(sensor, (id, (n, sum))): (String, (i64, (u32, f64)))| {
                    (sensor, START + id * 10_000, sum / f64::from(n))
                },
            )
            .output("averages", averages);
        mean.late.map("late_item", |(_, (_, r))| r).output("late", late);
        flow
    };
    let (m_avg, m_late, b_avg, b_late) = (
        TestingSink::new(),
        TestingSink::new(),
        TestingSink::new(),
        TestingSink::new(),
    );
    let macro_flow = tumbling_average::build(readings(), m_avg.clone(), m_late.clone());
    let builder_flow = builder(b_avg.clone(), b_late.clone());
    assert_eq!(steps(&macro_flow), steps(&builder_flow));
    for workers in [1, 2] {
        let want = (run(&builder_flow, &b_avg, workers), taken(&b_late));
        assert_eq!((want.0.len(), want.1.len()), (6, 1));
        let got = (run(&macro_flow, &m_avg, workers), taken(&m_late));
        assert_eq!(got, want, "{workers} workers");
    }
}

#[test]
fn window_hot_items() {
    use hot_items::{Bid, START, bids};
    same_flow(
        |out| hot_items::build(bids(), out),
        |out| {
            let flow = Dataflow::new("hot_items");
            flow.input("bids", TestingSource::new(bids()))
                .count_window(
                    "per_auction",
                    EventClock::replay(|b: &Bid| b.1, Duration::ZERO),
                    SlidingWindower::new(Duration::from_secs(10), Duration::from_secs(2), START).unwrap(),
                    |b: &Bid| b.0,
                )
                .down
                .map("by_window", |(auction, (window, count)): (u32, (i64, u64))| {
                    (window, (count, auction))
                })
                .reduce_final("hottest", |a, b| a.max(b))
                .map("row", |(window, (count, auction))| (window, auction, count))
                .output("out", out);
            flow
        },
    );
}

#[test]
fn window_sessions() {
    use sessions::{View, views};
    same_flow(
        |out| sessions::build(views(), out),
        |out| {
            let flow = Dataflow::new("sessions");
            flow.input("views", TestingSource::new(views()))
                .key_on("user", |v: &View| v.0.clone())
                .collect_window(
                    "session",
                    EventClock::replay(|v: &View| v.1, Duration::from_secs(60)),
                    SessionWindower::new(Duration::from_secs(5 * 60)),
                    true,
                )
                .down
                .map("summary", |(user, (_, views)): (String, (i64, Vec<View>))| {
                    let first = views.first().map_or(0, |v| v.1);
                    let last = views.last().map_or(0, |v| v.1);
                    (
                        user,
                        first,
                        last,
                        views.into_iter().map(|v| v.2).collect::<Vec<_>>(),
                    )
                })
                .output("out", out);
            flow
        },
    );
}

#[test]
fn window_join() {
    use window_join::{Row, orders, payments};
    same_flow(
        |out| window_join::build(orders(), payments(), out),
        |out| {
            let flow = Dataflow::new("orders");
            let orders = flow.input("orders", TestingSource::new(orders()));
            let payments = flow.input("payments", TestingSource::new(payments()));
            flow.join_window(
                "paid",
                EventClock::replay(
                    each_side((|o: &(i64, u64)| o.0, |p: &(i64, u64)| p.0)),
                    Duration::from_secs(60),
                ),
                TumblingWindower::new(Duration::from_secs(60), 0).unwrap(),
                (&orders, &payments),
                JoinInsertMode::Last,
                JoinEmitMode::Final,
                true,
            )
            .down
            .filter_map(
                "orders_only",
                |(id, (window, (order, payment))): (u32, (i64, Row))| {
                    Some((id, window, order?.1, payment.map(|p| p.1)))
                },
            )
            .output("out", out);
            flow
        },
    );
}
