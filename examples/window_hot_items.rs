//! Hot items (Nexmark q5 style): the auction with the most bids in each sliding window of
//! 10 s that starts every 2 s.
//!
//! Run: `cargo run --example window_hot_items`

use std::process::ExitCode;
use std::time::Duration;

use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};
use bwx::windowing::{EventClock, PerWorker, SlidingWindower};

/// A bid: (auction, timestamp in ms since the epoch).
pub type Bid = (u32, i64);

/// A result: (window id, hottest auction, its number of bids). Window `w` covers
/// `[START + 2 s·w, START + 2 s·w + 10 s)`.
pub type Hot = (i64, u32, u64);

/// Windows are aligned to this instant.
pub const START: i64 = 1_700_000_000_000;

/// Sample input: 3,000 bids over 30 s in time order, most of them on a few auctions whose
/// popularity shifts over time (from a fixed linear congruential sequence).
pub fn bids() -> Vec<Bid> {
    let mut x: u64 = 42;
    (0..3_000i64)
        .map(|i| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let r = (x >> 33) as u32;
            let auction = if !r.is_multiple_of(4) {
                (r / 4) % 5 + (i as u32 / 1_000) * 5
            } else {
                100 + (r / 4) % 50
            };
            (auction, START + i * 10)
        })
        .collect()
}

/// The flow: one row per window with the auction of most bids (ties: the larger id).
pub fn build(sample: Vec<Bid>, hot: TestingSink<Hot>) -> Dataflow {
    bwx::dataflow!(hot_items {
        bids      = input(TestingSource::new(sample));
        // (clock, windower, key): bids per auction and window. One watermark for all
        // auctions (PerWorker): an auction that gets no more bids does not hold its windows
        // open, they close as the bids of the others move time on.
        per_auction = bids.count_window(
            PerWorker::new(EventClock::replay(|b: &Bid| b.1, Duration::ZERO)),
            SlidingWindower::new(Duration::from_secs(10), Duration::from_secs(2), START)
                .expect("a 2 s slide fits a 10 s window"),
            |b: &Bid| b.0,
        );
        by_window = per_auction.down.map(|(auction, (window, count)): (u32, (i64, u64))| {
            (window, (count, auction))
        });
        hottest   = by_window.reduce_final(|a, b| a.max(b));
        row       = hottest.map(|(window, (count, auction))| (window, auction, count));
        out       = row.output(hot);
    })
}

fn main() -> ExitCode {
    let hot = TestingSink::new();
    let flow = build(bids(), hot.clone());
    if let Err(e) = bwx::run_main(&flow) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let mut rows = hot.take();
    rows.sort();
    for (window, auction, count) in rows {
        println!("window {window}: auction {auction} with {count} bids");
    }
    ExitCode::SUCCESS
}
