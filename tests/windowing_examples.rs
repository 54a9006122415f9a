//! Runs the windowing examples' flows and checks their output.

use std::collections::BTreeMap;

use bwx::testing::TestingSink;

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
mod join;

#[test]
fn tumbling_average_per_sensor() {
    use tumbling_average::{START, build, readings};
    let (averages, late) = (TestingSink::new(), TestingSink::new());
    bwx::run_main(&build(readings(), averages.clone(), late.clone())).unwrap();
    let mut got = averages.take();
    got.sort_by(|a, b| a.partial_cmp(b).unwrap());
    // Computed directly: per sensor and 10 s window, the mean of the on-time readings.
    let mut expected: BTreeMap<(String, i64), (f64, f64)> = BTreeMap::new();
    for (sensor, ts, value) in readings().into_iter().filter(|r| r.2 != 99.0) {
        let e = expected
            .entry((sensor, START + (ts - START).div_euclid(10_000) * 10_000))
            .or_default();
        e.0 += 1.0;
        e.1 += value;
    }
    let expected: Vec<_> = expected
        .into_iter()
        .map(|((s, w), (n, sum))| (s, w, sum / n))
        .collect();
    let mut expected = expected;
    expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(got, expected);
    assert_eq!(got.len(), 6);
    assert_eq!(
        got.iter().find(|r| r.0 == "kitchen" && r.1 == START).unwrap().2,
        21.2
    );
    assert_eq!(late.take(), vec![("kitchen".to_string(), START + 1_000, 99.0)]);
}

#[test]
fn hot_items_per_sliding_window() {
    use hot_items::{START, bids, build};
    let hot = TestingSink::new();
    bwx::run_main(&build(bids(), hot.clone())).unwrap();
    let mut got = hot.take();
    got.sort();
    // Brute force: for every window, count each auction's bids inside it.
    let bids = bids();
    let last_ts = bids.iter().map(|b| b.1).max().unwrap();
    let mut expected = Vec::new();
    for w in -4..=(last_ts - START) / 2_000 {
        let (lo, hi) = (START + w * 2_000, START + w * 2_000 + 10_000);
        let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
        for (a, ts) in &bids {
            if lo <= *ts && *ts < hi {
                *counts.entry(*a).or_default() += 1;
            }
        }
        if let Some((count, auction)) = counts.into_iter().map(|(a, c)| (c, a)).max() {
            expected.push((w, auction, count));
        }
    }
    assert_eq!(got, expected);
    assert_eq!(got.len(), 19);
}

#[test]
fn sessions_per_user() {
    use sessions::{build, views};
    let out = TestingSink::new();
    bwx::run_main(&build(views(), out.clone())).unwrap();
    let mut got: Vec<(String, i64, i64, String)> = out
        .take()
        .into_iter()
        .map(|(u, a, b, pages)| (u, a / 60_000, b / 60_000, pages.join(" ")))
        .collect();
    got.sort();
    let row = |u: &str, a, b, p: &str| (u.to_string(), a, b, p.to_string());
    assert_eq!(
        got,
        vec![
            row("ann", 0, 3, "home news search"),
            row("ann", 20, 29, "home search cart"),
            row("bob", 1, 4, "home cart"),
            row("bob", 30, 30, "checkout"),
        ]
    );
}

#[test]
fn orders_joined_with_payments_per_window() {
    use join::{build, orders, payments};
    let out = TestingSink::new();
    bwx::run_main(&build(orders(), payments(), out.clone())).unwrap();
    let mut got = out.take();
    got.sort();
    assert_eq!(
        got,
        vec![
            (1, 0, 500, Some(500)),
            (2, 0, 1_250, None),
            (3, 1, 300, Some(300)),
            (4, 1, 800, None)
        ]
    );
}
