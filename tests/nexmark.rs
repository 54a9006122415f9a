//! The Nexmark bench flows (benches/workloads/nexmark_flows.rs) against a direct
//! computation of each query over the same generated events, on 1 and 2 workers.

#[path = "../benches/workloads/nexmark_flows.rs"]
mod nexmark_flows;

use std::collections::{BTreeMap, HashMap, HashSet};

use bwx::RunConfig;
use bwx::testing::TestingSink;
use nexmark::EventGenerator;
use nexmark_flows::{BASE_MS, Ev, NexmarkSource, Query, Row};

/// 1,000 events per second: 30,000 events span 30 s, so windows and sessions turn over.
const RATE: usize = 1000;
const EVENTS: u64 = 30_000;

fn events() -> Vec<Ev> {
    EventGenerator::new(nexmark_flows::config(RATE))
        .take(EVENTS as usize)
        .map(Ev::from)
        .collect()
}

/// Runs `query` on `workers` workers and returns its rows sorted.
fn run(query: Query, workers: usize) -> Vec<Row> {
    let (rows, late) = (TestingSink::new(), TestingSink::new());
    let source = NexmarkSource::new(nexmark_flows::config(RATE), EVENTS);
    let emitted = source.counter();
    let flow = nexmark_flows::flow(query, source, rows.clone(), late.clone()).unwrap();
    bwx::run_workers(&flow, workers, RunConfig::default()).unwrap();
    assert_eq!(emitted.load(std::sync::atomic::Ordering::Relaxed), EVENTS);
    assert_eq!(late.take().len(), 0, "{query:?} on {workers} workers: late items");
    let mut rows = rows.take();
    rows.sort();
    rows
}

/// Checks the flow on 1 and 2 workers against `expected` (sorted here).
fn check(name: &str, mut expected: Vec<Row>) {
    let query = Query::parse(name).unwrap();
    expected.sort();
    for workers in [1, 2] {
        let got = run(query, workers);
        assert_eq!(
            got.len(),
            expected.len(),
            "{query:?} on {workers} workers: row count"
        );
        assert_eq!(got, expected, "{query:?} on {workers} workers");
    }
}

fn window(ts: i64, length: i64) -> i64 {
    (ts - BASE_MS).div_euclid(length)
}

#[test]
fn q0_counts_events_by_type() {
    let mut counts = [0u64; 3];
    for e in events() {
        counts[match e {
            Ev::Person { .. } => 0,
            Ev::Auction { .. } => 1,
            Ev::Bid { .. } => 2,
        }] += 1;
    }
    // The generator's proportions: 1 person, 3 auctions and 46 bids in 50 events.
    assert_eq!(counts, [600, 1800, 27_600]);
    let [persons, auctions, bids] = counts;
    check(
        "q0",
        vec![Row::Q0 {
            persons,
            auctions,
            bids,
        }],
    );
}

#[test]
fn q5_hot_items_per_sliding_window() {
    // Window w covers [BASE + 2000w, BASE + 2000w + 10000).
    let mut counts: HashMap<(i64, u64), u64> = HashMap::new();
    for e in events() {
        if let Ev::Bid { auction, ts, .. } = e {
            let rel = ts - BASE_MS;
            for w in (rel - 10_000).div_euclid(2000) + 1..=rel.div_euclid(2000) {
                *counts.entry((w, auction)).or_default() += 1;
            }
        }
    }
    let mut max: BTreeMap<i64, u64> = BTreeMap::new();
    for (&(w, _), &n) in &counts {
        let m = max.entry(w).or_default();
        *m = (*m).max(n);
    }
    let expected: Vec<Row> = counts
        .iter()
        .filter(|((w, _), n)| max[w] == **n)
        .map(|(&(w, auction), &count)| Row::Q5 {
            start: BASE_MS + 2000 * w,
            auction,
            count,
        })
        .collect();
    // 30 s in 2 s slides: windows -4..=14.
    assert_eq!(max.len(), 19);
    check("q5", expected);
}

#[test]
fn q7_highest_bids_per_tumbling_window() {
    let bids: Vec<(u64, u64, u64, i64)> = events()
        .into_iter()
        .filter_map(|e| match e {
            Ev::Bid {
                auction,
                bidder,
                price,
                ts,
            } => Some((auction, bidder, price, ts)),
            _ => None,
        })
        .collect();
    let mut max: HashMap<i64, u64> = HashMap::new();
    for &(_, _, price, ts) in &bids {
        let m = max.entry(window(ts, 10_000)).or_default();
        *m = (*m).max(price);
    }
    let expected: Vec<Row> = bids
        .iter()
        .filter(|(_, _, price, ts)| max[&window(*ts, 10_000)] == *price)
        .map(|&(auction, bidder, price, ts)| Row::Q7 {
            start: BASE_MS + 10_000 * window(ts, 10_000),
            auction,
            bidder,
            price,
            ts,
        })
        .collect();
    assert_eq!(max.len(), 3);
    check("q7", expected);
}

#[test]
fn q8_new_persons_who_sell_in_the_same_window() {
    let events = events();
    let sellers: HashSet<(i64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Ev::Auction { seller, ts, .. } => Some((window(*ts, 10_000), *seller)),
            _ => None,
        })
        .collect();
    let expected: Vec<Row> = events
        .iter()
        .filter_map(|e| match e {
            Ev::Person { id, name, ts } if sellers.contains(&(window(*ts, 10_000), *id)) => Some(Row::Q8 {
                start: BASE_MS + 10_000 * window(*ts, 10_000),
                person: *id,
                name: name.clone(),
            }),
            _ => None,
        })
        .collect();
    assert!(
        expected.len() >= 3,
        "too few matches to test the join: {}",
        expected.len()
    );
    check("q8", expected);
}

#[test]
fn q11_bid_sessions_per_bidder() {
    let mut times: HashMap<u64, Vec<i64>> = HashMap::new();
    for e in events() {
        if let Ev::Bid { bidder, ts, .. } = e {
            times.entry(bidder).or_default().push(ts);
        }
    }
    let mut expected = Vec::new();
    let mut merged_sessions = 0;
    for (bidder, mut ts) in times {
        ts.sort_unstable();
        // A session goes on while bids are at most 10 s apart.
        let (mut first, mut last, mut count) = (ts[0], ts[0], 0);
        for t in ts {
            if t - last > 10_000 {
                expected.push(Row::Q11 {
                    bidder,
                    count,
                    start: first,
                    end: last + 10_000,
                });
                (first, count) = (t, 0);
            }
            last = t;
            count += 1;
        }
        merged_sessions += usize::from(count > 1);
        expected.push(Row::Q11 {
            bidder,
            count,
            start: first,
            end: last + 10_000,
        });
    }
    let bidders: HashSet<u64> = expected
        .iter()
        .map(|r| match r {
            Row::Q11 { bidder, .. } => *bidder,
            _ => unreachable!(),
        })
        .collect();
    assert!(expected.len() > bidders.len(), "no bidder has two sessions");
    assert!(merged_sessions > 0, "no session has two bids");
    check("q11", expected);
}
