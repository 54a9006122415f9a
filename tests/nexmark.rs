//! The Nexmark bench flows (benches/workloads/nexmark/) against a direct computation of each
//! query over the same generated events, on 1 and 2 workers: q0 to q22.

#[path = "../benches/workloads/nexmark/mod.rs"]
mod flows;

use std::collections::{BTreeMap, HashMap, HashSet};

use bwx::RunConfig;
use bwx::testing::TestingSink;
use flows::simple::{SIDE_ROWS, channel_id, side_value, time_type, url_dirs};
use flows::{AuctionRow, BASE_MS, BidRow, Outputs, Query, Row, RowChecksum, day_of, minute_of, rank_of};
use nexmark::event::{Auction, Bid, Event, Person};

/// 1,000 events per second: 30,000 events span 30 s, so windows and sessions turn over and
/// auctions expire.
const RATE: usize = 1000;
const EVENTS: u64 = 30_000;

fn events() -> Vec<Event> {
    events_at(RATE)
}

fn events_at(rate: usize) -> Vec<Event> {
    nexmark::EventGenerator::new(flows::config(rate))
        .take(EVENTS as usize)
        .collect()
}

fn persons() -> Vec<Person> {
    events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Person(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn auctions() -> Vec<Auction> {
    events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Auction(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn bids() -> Vec<Bid> {
    events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Bid(b) => Some(b),
            _ => None,
        })
        .collect()
}

fn bid_rows() -> Vec<BidRow> {
    events().into_iter().filter_map(BidRow::of).collect()
}

/// Runs `query` at `rate` on `workers` workers into `sink` (in a fresh scratch directory,
/// returned).
fn run_into<S>(query: Query, rate: usize, workers: usize, sink: S) -> tempfile::TempDir
where
    S: bwx::outputs::DynamicSink<Item = Row> + Clone + Send + Sync + 'static,
{
    let scratch = tempfile::tempdir().unwrap();
    let late = TestingSink::new();
    let outputs = Outputs {
        rows: sink,
        late: late.clone(),
        scratch: scratch.path().to_path_buf(),
    };
    let (flow, generated) = flows::flow(query, flows::config(rate), EVENTS, outputs).unwrap();
    bwx::run_workers(&flow, workers, RunConfig::default()).unwrap();
    assert_eq!(generated.load(std::sync::atomic::Ordering::Relaxed), EVENTS);
    assert_eq!(late.take().len(), 0, "{query:?} on {workers} workers: late items");
    scratch
}

/// Runs `query` on `workers` workers and returns its rows sorted.
fn run(query: Query, workers: usize) -> Vec<Row> {
    run_at(query, RATE, workers)
}

fn run_at(query: Query, rate: usize, workers: usize) -> Vec<Row> {
    let rows = TestingSink::new();
    let scratch = run_into(query, rate, workers, rows.clone());
    let mut rows = if query == Query::Q10 {
        flows::log_rows(&scratch.path().join("log")).unwrap()
    } else {
        rows.take()
    };
    rows.sort();
    rows
}

/// Checks the flow on 1 and 2 workers against `expected` (sorted here).
fn check(query: Query, expected: Vec<Row>) {
    check_at(query, RATE, expected);
}

fn check_at(query: Query, rate: usize, mut expected: Vec<Row>) {
    expected.sort();
    assert!(
        !expected.is_empty(),
        "{query:?}: the direct computation found no rows to compare"
    );
    for workers in [1, 2] {
        let got = run_at(query, rate, workers);
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
            Event::Person(_) => 0,
            Event::Auction(_) => 1,
            Event::Bid(_) => 2,
        }] += 1;
    }
    // The generator's proportions: 1 person, 3 auctions and 46 bids in 50 events.
    assert_eq!(counts, [600, 1800, 27_600]);
    let [persons, auctions, bids] = counts;
    check(
        Query::Q0,
        vec![Row::Q0 {
            persons,
            auctions,
            bids,
        }],
    );
}

#[test]
fn q1_converts_every_bid_to_euros() {
    let (mut n, mut sum) = (0u64, 0u64);
    for b in bids() {
        n += 1;
        sum = sum.wrapping_add((b.price as u64).wrapping_mul(908));
    }
    check(Query::Q1, vec![Row::Q1 { bids: n, sum }]);
}

#[test]
fn q2_selects_bids_on_every_123rd_auction() {
    let expected = bids()
        .into_iter()
        .filter(|b| b.auction % 123 == 0)
        .map(|b| Row::Q2 {
            auction: b.auction as u64,
            price: b.price as u64,
        })
        .collect();
    check(Query::Q2, expected);
}

#[test]
fn q3_joins_local_sellers_with_their_auctions_in_category_10() {
    let people: HashMap<u64, Person> = persons()
        .into_iter()
        .filter(|p| ["or", "id", "ca"].contains(&p.state.as_str()))
        .map(|p| (p.id as u64, p))
        .collect();
    let expected: Vec<Row> = auctions()
        .into_iter()
        .filter(|a| a.category == 10)
        .filter_map(|a| {
            let p = people.get(&(a.seller as u64))?;
            Some(Row::Q3 {
                name: p.name.clone(),
                city: p.city.clone(),
                state: p.state.clone(),
                auction: a.id as u64,
            })
        })
        .collect();
    check(Query::Q3, expected);
}

/// Each auction's winning bid within its lifetime: the highest price, then the earliest.
fn winners() -> HashMap<u64, (Auction, (u64, i64))> {
    let all: HashMap<u64, Auction> = auctions().into_iter().map(|a| (a.id as u64, a)).collect();
    let mut best: HashMap<u64, (u64, i64)> = HashMap::new();
    for b in bids() {
        let Some(a) = all.get(&(b.auction as u64)) else {
            continue;
        };
        if !(a.date_time <= b.date_time && b.date_time <= a.expires) {
            continue;
        }
        let bid = (b.price as u64, b.date_time as i64);
        let e = best.entry(a.id as u64).or_insert(bid);
        if bid.0 > e.0 || (bid.0 == e.0 && bid.1 < e.1) {
            *e = bid;
        }
    }
    best.into_iter()
        .map(|(id, bid)| (id, (all[&id].clone(), bid)))
        .collect()
}

#[test]
fn q4_averages_the_winning_bids_per_category() {
    let mut per_category: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (a, (price, _)) in winners().into_values() {
        let e = per_category.entry(a.category as u64).or_default();
        e.0 += price;
        e.1 += 1;
    }
    assert!(per_category.len() >= 3, "{per_category:?}");
    let expected = per_category
        .into_iter()
        .map(|(category, (sum, n))| Row::Q4 {
            category,
            avg: sum / n,
        })
        .collect();
    check(Query::Q4, expected);
}

#[test]
fn q5_hot_items_per_sliding_window() {
    // Window w covers [BASE + 2000w, BASE + 2000w + 10000).
    let mut counts: HashMap<(i64, u64), u64> = HashMap::new();
    for b in bids() {
        let rel = b.date_time as i64 - BASE_MS;
        for w in (rel - 10_000).div_euclid(2000) + 1..=rel.div_euclid(2000) {
            *counts.entry((w, b.auction as u64)).or_default() += 1;
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
    check(Query::Q5, expected);
}

#[test]
fn q6_averages_each_sellers_last_eleven_winning_bids() {
    let mut per_seller: HashMap<u64, Vec<(i64, u64, u64)>> = HashMap::new();
    for (id, (a, (price, ts))) in winners() {
        per_seller
            .entry(a.seller as u64)
            .or_default()
            .push((ts, id, price));
    }
    let mut expected = Vec::new();
    let mut longer = 0;
    for (seller, mut wins) in per_seller {
        wins.sort();
        longer += usize::from(wins.len() > 11);
        for i in 0..wins.len() {
            let last = &wins[i.saturating_sub(10)..=i];
            expected.push(Row::Q6 {
                seller,
                auction: wins[i].1,
                avg: last.iter().map(|(_, _, p)| p).sum::<u64>() / last.len() as u64,
            });
        }
    }
    assert!(longer > 0, "no seller with more than 11 winning bids");
    check(Query::Q6, expected);
}

#[test]
fn q7_highest_bids_per_tumbling_window() {
    let bids = bids();
    let mut max: HashMap<i64, u64> = HashMap::new();
    for b in &bids {
        let m = max.entry(window(b.date_time as i64, 10_000)).or_default();
        *m = (*m).max(b.price as u64);
    }
    let expected: Vec<Row> = bids
        .iter()
        .filter(|b| max[&window(b.date_time as i64, 10_000)] == b.price as u64)
        .map(|b| Row::Q7 {
            start: BASE_MS + 10_000 * window(b.date_time as i64, 10_000),
            auction: b.auction as u64,
            bidder: b.bidder as u64,
            price: b.price as u64,
            ts: b.date_time as i64,
        })
        .collect();
    assert_eq!(max.len(), 3);
    check(Query::Q7, expected);
}

#[test]
fn q8_new_persons_who_sell_in_the_same_window() {
    let sellers: HashSet<(i64, u64)> = auctions()
        .iter()
        .map(|a| (window(a.date_time as i64, 10_000), a.seller as u64))
        .collect();
    let expected: Vec<Row> = persons()
        .into_iter()
        .filter(|p| sellers.contains(&(window(p.date_time as i64, 10_000), p.id as u64)))
        .map(|p| Row::Q8 {
            start: BASE_MS + 10_000 * window(p.date_time as i64, 10_000),
            person: p.id as u64,
            name: p.name,
        })
        .collect();
    assert!(
        expected.len() >= 3,
        "too few matches to test the join: {}",
        expected.len()
    );
    check(Query::Q8, expected);
}

#[test]
fn q9_winning_bid_of_every_auction_with_both_rows() {
    let all: HashMap<u64, AuctionRow> = events()
        .into_iter()
        .filter_map(AuctionRow::of)
        .map(|a| (a.id, a))
        .collect();
    let mut best: HashMap<u64, BidRow> = HashMap::new();
    for b in bid_rows() {
        let Some(a) = all.get(&b.auction) else { continue };
        if !(a.ts <= b.ts && b.ts <= a.expires) {
            continue;
        }
        let key = |b: &BidRow| (std::cmp::Reverse(b.price), b.ts, b.clone());
        let e = best.entry(b.auction).or_insert_with(|| b.clone());
        if key(&b) < key(e) {
            *e = b;
        }
    }
    let expected = best
        .into_iter()
        .map(|(id, bid)| Row::Q9(Box::new((all[&id].clone(), bid))))
        .collect();
    check(Query::Q9, expected);
}

#[test]
fn q10_logs_every_bid_to_files_partitioned_by_minute() {
    // 500 events per second: 60 s from 22:13:20 UTC, in two minutes.
    const SLOW: usize = 500;
    let mut lines: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for b in events_at(SLOW).into_iter().filter_map(BidRow::of) {
        let line = format!("{},{},{},{},{}", b.auction, b.bidder, b.price, b.ts, b.extra);
        lines
            .entry((day_of(b.ts), minute_of(b.ts)))
            .or_default()
            .push(line);
    }
    assert_eq!(lines.len(), 2, "{:?}", lines.keys());
    let expected: Vec<Row> = lines
        .iter()
        .map(|((day, minute), l)| Row::Q10 {
            day: day.clone(),
            minute: minute.clone(),
            lines: l.len() as u64,
        })
        .collect();
    check_at(Query::Q10, SLOW, expected);
    // The files hold exactly those lines, each in its partition.
    for workers in [1, 2] {
        let scratch = run_into(Query::Q10, SLOW, workers, TestingSink::new());
        for ((day, minute), want) in &lines {
            let dir = scratch
                .path()
                .join("log")
                .join(format!("dt={day}"))
                .join(format!("hm={minute}"));
            let mut got: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .flat_map(|f| {
                    let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
                    text.lines().map(str::to_string).collect::<Vec<_>>()
                })
                .collect();
            let mut want = want.clone();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{} on {workers} workers", dir.display());
        }
    }
}

#[test]
fn q11_bid_sessions_per_bidder() {
    let mut times: HashMap<u64, Vec<i64>> = HashMap::new();
    for b in bids() {
        times.entry(b.bidder as u64).or_default().push(b.date_time as i64);
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
    check(Query::Q11, expected);
}

#[test]
fn q12_processing_time_windows_count_every_bid_of_a_bidder() {
    let mut per_bidder: BTreeMap<u64, u64> = BTreeMap::new();
    for b in bids() {
        *per_bidder.entry(b.bidder as u64).or_default() += 1;
    }
    let expected = per_bidder
        .into_iter()
        .map(|(bidder, bids)| Row::Q12 { bidder, bids })
        .collect();
    check(Query::Q12, expected);
}

#[test]
fn q13_joins_bids_with_the_side_input_file() {
    let expected = bids()
        .into_iter()
        .map(|b| Row::Q13 {
            auction: b.auction as u64,
            bidder: b.bidder as u64,
            price: b.price as u64,
            ts: b.date_time as i64,
            value: side_value(b.auction as u64 % SIDE_ROWS),
        })
        .collect();
    check(Query::Q13, expected);
}

#[test]
fn q14_computes_columns_of_bids_in_a_price_range() {
    let expected: Vec<Row> = bid_rows()
        .into_iter()
        .filter(|b| 0.908 * b.price as f64 > 1_000_000.0 && 0.908 * (b.price as f64) < 50_000_000.0)
        .map(|b| Row::Q14 {
            auction: b.auction,
            bidder: b.bidder,
            price_milli: b.price * 908,
            time_type: time_type(b.ts),
            ts: b.ts,
            c_counts: b.extra.matches('c').count() as u64,
            extra: b.extra,
        })
        .collect();
    // 22:13 UTC is night time.
    assert_eq!(time_type(BASE_MS), "nightTime");
    assert_eq!(time_type(BASE_MS + 10 * 3_600_000), "dayTime");
    assert_eq!(time_type(BASE_MS - 3 * 3_600_000), "otherTime");
    check(Query::Q14, expected);
}

/// q15's and q16's counts of some bids.
fn rank_counts<'a>(bids: impl Iterator<Item = &'a BidRow>) -> flows::RankCounts {
    let mut n = [0u64; 4];
    let mut bidders: [HashSet<u64>; 4] = Default::default();
    let mut auctions: [HashSet<u64>; 4] = Default::default();
    for b in bids {
        for i in [0, 1 + rank_of(b.price)] {
            n[i] += 1;
            bidders[i].insert(b.bidder);
            auctions[i].insert(b.auction);
        }
    }
    let mut counts = [0; 12];
    for i in 0..4 {
        (counts[i], counts[4 + i], counts[8 + i]) = (n[i], bidders[i].len() as u64, auctions[i].len() as u64);
    }
    counts
}

#[test]
fn q15_counts_bids_bidders_and_auctions_per_day_and_rank() {
    let bids = bid_rows();
    let counts = rank_counts(bids.iter());
    assert!(
        counts[1..4].iter().all(|n| *n > 0),
        "every rank has bids: {counts:?}"
    );
    check(
        Query::Q15,
        vec![Row::Q15 {
            day: day_of(BASE_MS),
            counts,
        }],
    );
}

#[test]
fn q16_counts_per_channel_and_day() {
    let mut groups: BTreeMap<String, Vec<BidRow>> = BTreeMap::new();
    for b in bid_rows() {
        groups.entry(b.channel.clone()).or_default().push(b);
    }
    assert!(
        groups.len() > 4,
        "{:?}",
        groups.keys().take(8).collect::<Vec<_>>()
    );
    let expected = groups
        .into_iter()
        .map(|(channel, bids)| Row::Q16 {
            minute: minute_of(bids.iter().map(|b| b.ts).max().unwrap()),
            day: day_of(BASE_MS),
            counts: rank_counts(bids.iter()),
            channel,
        })
        .collect();
    check(Query::Q16, expected);
}

#[test]
fn q17_price_statistics_per_auction_and_day() {
    let mut groups: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for b in bid_rows() {
        groups.entry(b.auction).or_default().push(b.price);
    }
    let expected = groups
        .into_iter()
        .map(|(auction, prices)| {
            let mut counts = [prices.len() as u64, 0, 0, 0];
            for p in &prices {
                counts[1 + rank_of(*p)] += 1;
            }
            let sum: u64 = prices.iter().sum();
            Row::Q17 {
                auction,
                day: day_of(BASE_MS),
                counts,
                min: *prices.iter().min().unwrap(),
                max: *prices.iter().max().unwrap(),
                avg: sum / prices.len() as u64,
                sum,
            }
        })
        .collect();
    check(Query::Q17, expected);
}

#[test]
fn q18_keeps_the_last_bid_of_every_bidder_on_every_auction() {
    let mut last: HashMap<(u64, u64), BidRow> = HashMap::new();
    let mut repeats = 0;
    for b in bid_rows() {
        match last.get_mut(&(b.bidder, b.auction)) {
            Some(e) => {
                repeats += 1;
                if (b.ts, &b) > (e.ts, &*e) {
                    *e = b;
                }
            }
            None => {
                last.insert((b.bidder, b.auction), b);
            }
        }
    }
    assert!(repeats > 0, "no bidder bid twice on an auction");
    check(
        Query::Q18,
        last.into_values().map(|b| Row::Q18(Box::new(b))).collect(),
    );
}

#[test]
fn q19_keeps_the_ten_highest_bids_of_every_auction() {
    let mut per_auction: HashMap<u64, Vec<BidRow>> = HashMap::new();
    for b in bid_rows() {
        per_auction.entry(b.auction).or_default().push(b);
    }
    assert!(
        per_auction.values().any(|bids| bids.len() > 10),
        "no auction with more than ten bids"
    );
    let mut expected = Vec::new();
    for (_, mut bids) in per_auction {
        bids.sort_by(|a, b| b.price.cmp(&a.price).then(a.ts.cmp(&b.ts)).then_with(|| a.cmp(b)));
        for (rank, b) in bids.into_iter().take(10).enumerate() {
            expected.push(Row::Q19(rank as u64 + 1, Box::new(b)));
        }
    }
    check(Query::Q19, expected);
}

#[test]
fn q20_expands_bids_with_their_auction_in_category_10() {
    let all: HashMap<u64, AuctionRow> = events()
        .into_iter()
        .filter_map(AuctionRow::of)
        .filter(|a| a.category == 10)
        .map(|a| (a.id, a))
        .collect();
    let expected = bid_rows()
        .into_iter()
        .filter_map(|b| {
            let a = all.get(&b.auction)?.clone();
            Some(Row::Q20(Box::new((b, a))))
        })
        .collect();
    check(Query::Q20, expected);
}

#[test]
fn q21_adds_a_channel_id_from_the_channel_or_the_url() {
    let expected: Vec<Row> = bid_rows()
        .into_iter()
        .filter_map(|b| {
            Some(Row::Q21 {
                channel_id: channel_id(&b.channel, &b.url)?,
                auction: b.auction,
                bidder: b.bidder,
                price: b.price,
                channel: b.channel,
            })
        })
        .collect();
    assert_eq!(channel_id("Apple", "x"), Some("0".to_string()));
    assert_eq!(
        channel_id("x", "https://a/b?query=1&channel_id=77&z=1"),
        Some("77".to_string())
    );
    assert_eq!(channel_id("x", "channel_id=5"), Some("5".to_string()));
    assert_eq!(channel_id("x", "https://a/b?xchannel_id=5"), None);
    check(Query::Q21, expected);
}

#[test]
fn q22_splits_bid_urls_into_directories() {
    let expected: Vec<Row> = bid_rows()
        .into_iter()
        .map(|b| Row::Q22 {
            dirs: url_dirs(&b.url),
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            channel: b.channel,
        })
        .collect();
    assert_eq!(
        url_dirs("https://www.nexmark.com/a/b/c/item.htm"),
        [Some("a".into()), Some("b".into()), Some("c".into())]
    );
    assert_eq!(url_dirs("https://x/a"), [Some("a".into()), None, None]);
    check(Query::Q22, expected);
}

#[test]
fn the_checksum_sink_agrees_with_the_rows() {
    let rows = run(Query::Q22, 1);
    let sink = RowChecksum::default();
    run_into(Query::Q22, RATE, 2, sink.clone());
    let sum = rows
        .iter()
        .fold(0u64, |sum, row| sum.wrapping_add(flows::row_hash(row)));
    let checksum = Row::Checksum {
        rows: rows.len() as u64,
        checksum: sum,
    };
    assert_eq!(sink.take(), checksum);
    assert!(
        matches!(sink.take(), Row::Checksum { rows: 27_600, .. }),
        "{:?}",
        sink.take()
    );
}

#[test]
fn every_query_has_a_name_and_a_flow() {
    for query in Query::ALL {
        assert_eq!(Query::parse(&query.name()), Some(query));
    }
    // The bench keeps every row of the queries whose digests the bench kit defines.
    for query in [Query::Q0, Query::Q5, Query::Q7, Query::Q8, Query::Q11] {
        assert!(query.keeps_rows(), "{query:?}");
    }
    assert_eq!(Query::parse("q23"), None);
    assert_eq!(Query::parse("q05"), None);
}
