//! (c) c-tumbling: event-time 10 s tumbling windows, count and sum per key and window.

use std::time::Duration;

use bwx::prelude::*;
use bwx::testing::TestingSink;
use bwx::windowing::{Clock, EventClock, PerWorker, TumblingWindower};

use crate::events::{BASE_MS, GeneratedSource, Generator, draw, value};
use crate::{Outcome, args::Args};

#[derive(Clone)]
struct Events;

impl Generator for Events {
    /// (key index, (timestamp ms, value))
    type Event = (u32, (i64, f64));

    #[inline]
    fn key(&self, i: u64) -> u32 {
        (draw(301, 3 * i) % 1000) as u32
    }

    #[inline]
    fn event(&self, i: u64, key: u32) -> Self::Event {
        let ts = BASE_MS + (i / 5) as i64 - (draw(301, 3 * i + 2) % 2000) as i64;
        (key, (ts, value(draw(301, 3 * i + 1))))
    }
}

/// One row per key and window: (key, (window, (count, sum))).
type Row = (u32, (i64, (u64, f64)));

/// The flow with the builder.
fn builder_flow<C: Clock<(i64, f64)>>(
    source: GeneratedSource<Events>,
    clock: C,
    windows: TumblingWindower,
    out: TestingSink<Row>,
) -> Dataflow {
    let flow = Dataflow::new("tumbling");
    flow.input("events", source)
        .fold_window(
            "count_sum",
            clock,
            windows,
            || (0u64, 0.0f64),
            |(n, sum), (_, v)| (n + 1, sum + v),
            |(n1, s1), (n2, s2)| (n1 + n2, s1 + s2),
            false,
        )
        .down
        .output("out", out);
    flow
}

/// The same flow with `dataflow!`.
fn macro_flow<C: Clock<(i64, f64)>>(
    source: GeneratedSource<Events>,
    clock: C,
    windows: TumblingWindower,
    out: TestingSink<Row>,
) -> Dataflow {
    bwx::dataflow!(tumbling {
        events    = input(source);
        count_sum = events.fold_window(
            clock,
            windows,
            || (0u64, 0.0f64),
            |(n, sum), (_, v)| (n + 1, sum + v),
            |(n1, s1), (n2, s2)| (n1 + n2, s1 + s2),
            false,
        );
        out       = count_sum.down.output(out);
    })
}

/// Builds the flow with `clock` and runs it.
fn run_with<C: Clock<(i64, f64)>>(args: &Args, clock: C) -> Result<Outcome, String> {
    let total = args.events.unwrap_or(5_000_000);
    let out = TestingSink::new();
    let windows = TumblingWindower::new(Duration::from_secs(10), BASE_MS).map_err(|e| e.to_string())?;
    let source = GeneratedSource::new(Events, total);
    let emitted = source.counter();
    let build = if args.macro_form { macro_flow } else { builder_flow };
    let flow = build(source, clock, windows, out.clone());
    crate::execute(&flow, args)?;
    let rows = out.take();
    let events = emitted.load(std::sync::atomic::Ordering::Relaxed);
    Ok(Outcome::new(events, move || {
        rows.into_iter()
            .map(|(k, (w, (n, sum)))| format!("s{k:03},{w},{n},{sum:?}"))
            .collect()
    }))
}

pub fn run(args: &Args) -> Result<Outcome, String> {
    // Historical data: the watermark follows the timestamps only (max seen - 5 s), per
    // worker by default, per key (as in Bytewax) with --per-key-clock.
    // (A closure, not a fn pointer: the getter is called per item and should inline.)
    let ts = |(ts, _): &(i64, f64)| *ts;
    let wait = Duration::from_secs(5);
    if args.per_key_clock {
        run_with(args, EventClock::replay(ts, wait))
    } else {
        run_with(args, PerWorker::new(EventClock::replay(ts, wait)))
    }
}
