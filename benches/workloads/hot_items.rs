//! (d) d-hot-items: counts per auction over sliding 10 s / 2 s windows, then the auction
//! with the most bids per window (Nexmark q5-like).

use std::time::Duration;

use bwx::prelude::*;
use bwx::testing::TestingSink;
use bwx::windowing::{Clock, EventClock, PerWorker, SlidingWindower};

use crate::events::{BASE_MS, GeneratedSource, Generator, draw};
use crate::{Outcome, args::Args};

#[derive(Clone)]
struct Bids;

impl Generator for Bids {
    /// (auction, timestamp ms)
    type Event = (u32, i64);

    #[inline]
    fn key(&self, i: u64) -> u32 {
        let d = draw(401, i);
        let a = d >> 2;
        (if d & 3 != 0 { a % 100 } else { 100 + a % 9900 }) as u32
    }

    #[inline]
    fn event(&self, i: u64, auction: u32) -> (u32, i64) {
        (auction, BASE_MS + (i / 5) as i64)
    }
}

/// One row per window: (window, (count, auction)).
type Row = (i64, (u64, u32));

/// The flow with the builder.
fn builder_flow<C: Clock<(u32, i64)>>(
    source: GeneratedSource<Bids>,
    clock: C,
    windows: SlidingWindower,
    out: TestingSink<Row>,
) -> Dataflow {
    let flow = Dataflow::new("hot_items");
    flow.input("bids", source)
        .count_window("counts", clock, windows, |(auction, _): &(u32, i64)| *auction)
        .down
        // Re-key by window: the hottest auction of each window, ties to the larger id.
        .map("by_window", |(auction, (window, count))| {
            (window, (count, auction))
        })
        .max_final("hottest", |top: &(u64, u32)| *top)
        .output("out", out);
    flow
}

/// The same flow with `dataflow!`.
fn macro_flow<C: Clock<(u32, i64)>>(
    source: GeneratedSource<Bids>,
    clock: C,
    windows: SlidingWindower,
    out: TestingSink<Row>,
) -> Dataflow {
    bwx::dataflow!(hot_items {
        bids      = input(source);
        counts    = bids.count_window(clock, windows, |(auction, _): &(u32, i64)| *auction);
        by_window = counts.down.map(|(auction, (window, count))| (window, (count, auction)));
        hottest   = by_window.max_final(|top: &(u64, u32)| *top);
        out       = hottest.output(out);
    })
}

/// Builds the flow with `clock` and runs it.
fn run_with<C: Clock<(u32, i64)>>(args: &Args, clock: C) -> Result<Outcome, String> {
    let total = args.events.unwrap_or(1_000_000);
    let out = TestingSink::new();
    let windows = SlidingWindower::new(Duration::from_secs(10), Duration::from_secs(2), BASE_MS)
        .map_err(|e| e.to_string())?;
    let source = GeneratedSource::new(Bids, total);
    let emitted = source.counter();
    let build = if args.macro_form { macro_flow } else { builder_flow };
    let flow = build(source, clock, windows, out.clone());
    crate::execute(&flow, args)?;
    let rows = out.take();
    Ok(Outcome::new(
        emitted.load(std::sync::atomic::Ordering::Relaxed),
        move || {
            rows.into_iter()
                .map(|(w, (count, auction))| format!("{w},a{auction:05},{count}"))
                .collect()
        },
    ))
}

pub fn run(args: &Args) -> Result<Outcome, String> {
    // (A closure, not a fn pointer: the getter is called per item and should inline.)
    let ts = |(_, ts): &(u32, i64)| *ts;
    if args.per_key_clock {
        // Each auction's bids are in order: its watermark is its latest bid (no wait).
        run_with(args, EventClock::replay(ts, Duration::ZERO))
    } else {
        // One watermark per worker over bids of all partitions, which the source reads a
        // batch (under 1 s of event time) at a time each: wait covers that skew.
        run_with(
            args,
            PerWorker::new(EventClock::replay(ts, Duration::from_secs(5))),
        )
    }
}
