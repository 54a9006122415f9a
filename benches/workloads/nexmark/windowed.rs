//! The windowed queries: q5 (sliding), q7 and q8 (tumbling), q11 (sessions), q12 (tumbling
//! windows of processing time).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bwx::outputs::DynamicSink;
use bwx::prelude::*;
use bwx::windowing::{
    EventClock, PerWorker, SessionWindower, SlidingWindower, SystemClock, TumblingWindower,
};
use nexmark::config::NexmarkConfig;
use nexmark::event::Event;

use super::{NexmarkSource, Outputs, Query, Row, SESSION_GAP, SLIDE, WAIT, WINDOW, keep_max, window_start};

/// Builds a windowed `query`; returns the generated-events counter.
pub fn build<S>(
    flow: &Dataflow,
    query: Query,
    config: NexmarkConfig,
    events: u64,
    out: Outputs<S>,
) -> Result<Arc<AtomicU64>, String>
where
    S: DynamicSink<Item = Row> + Clone + Send + Sync + 'static,
{
    let tumbling = || TumblingWindower::new(WINDOW, super::BASE_MS).map_err(|e| e.to_string());
    let Outputs { rows, late, .. } = out;
    Ok(match query {
        Query::Q5 => {
            let source = NexmarkSource::new(config, events, |e| match e {
                Event::Bid(b) => Some((b.auction as u64, b.date_time as i64)),
                _ => None,
            });
            let generated = source.counter();
            let sliding = SlidingWindower::new(WINDOW, SLIDE, super::BASE_MS).map_err(|e| e.to_string())?;
            let counts = flow.input("bids", source).count_window(
                "counts",
                PerWorker::new(EventClock::replay(|(_, ts): &(u64, i64)| *ts, WAIT)),
                sliding,
                |(auction, _): &(u64, i64)| *auction,
            );
            counts.late.map("late_bids", |_| ()).output("late", late);
            counts
                .down
                .map("by_window", |(auction, (window, n))| (window, (n, auction)))
                .fold_final(
                    "hottest",
                    || (0u64, Vec::new()),
                    |(max, mut top), (n, auction): (u64, u64)| {
                        if n > max {
                            (n, vec![auction])
                        } else {
                            if n == max {
                                top.push(auction);
                            }
                            (max, top)
                        }
                    },
                )
                .flat_map("rows", |(window, (count, top))| {
                    let start = window_start(window, SLIDE);
                    top.into_iter().map(move |auction| Row::Q5 {
                        start,
                        auction,
                        count,
                    })
                })
                .output("out", rows);
            generated
        }
        Query::Q7 => {
            // Top bids per auction and window, then per window across auctions.
            type Top = (u64, Vec<(u64, i64)>);
            let source = NexmarkSource::new(config, events, |e| match e {
                Event::Bid(b) => Some((
                    b.auction as u64,
                    (b.bidder as u64, b.price as u64, b.date_time as i64),
                )),
                _ => None,
            });
            let generated = source.counter();
            let per_auction = flow.input("bids", source).fold_window(
                "top_per_auction",
                PerWorker::new(EventClock::replay(|(_, _, ts): &(u64, u64, i64)| *ts, WAIT)),
                tumbling()?,
                || (0u64, Vec::new()),
                |(max, mut top): Top, (bidder, price, ts)| {
                    if price > max {
                        (price, vec![(bidder, ts)])
                    } else {
                        if price == max {
                            top.push((bidder, ts));
                        }
                        (max, top)
                    }
                },
                |a: Top, b: Top| keep_max(a, b),
                false,
            );
            per_auction.late.map("late_bids", |_| ()).output("late", late);
            per_auction
                .down
                .map("by_window", |(auction, (window, (max, top)))| {
                    let top: Vec<(u64, u64, i64)> = top.into_iter().map(|(b, ts)| (auction, b, ts)).collect();
                    (window, (max, top))
                })
                .fold_final("top", || (0u64, Vec::new()), keep_max)
                .flat_map("rows", |(window, (price, top))| {
                    let start = window_start(window, WINDOW);
                    top.into_iter().map(move |(auction, bidder, ts)| Row::Q7 {
                        start,
                        auction,
                        bidder,
                        price,
                        ts,
                    })
                })
                .output("out", rows);
            generated
        }
        Query::Q8 => {
            // New persons and new auctions keyed by person id (a seller), joined per
            // tumbling window: the first name of the person and whether it sold.
            type Side = (i64, Option<String>);
            let source = NexmarkSource::new(config, events, |e| match e {
                Event::Person(p) => Some((p.id as u64, (p.date_time as i64, Some(p.name)))),
                Event::Auction(a) => Some((a.seller as u64, (a.date_time as i64, None))),
                Event::Bid(_) => None,
            });
            let generated = source.counter();
            let joined = flow.input("persons_and_sellers", source).fold_window(
                "new_sellers",
                PerWorker::new(EventClock::replay(|(ts, _): &Side| *ts, WAIT)),
                tumbling()?,
                || (None::<String>, false),
                |(name, sold), (_, side): Side| match side {
                    Some(new) => (name.or(Some(new)), sold),
                    None => (name, true),
                },
                |(n1, s1), (n2, s2)| (n1.or(n2), s1 || s2),
                false,
            );
            joined.late.map("late_events", |_| ()).output("late", late);
            joined
                .down
                .filter_map("rows", |(person, (window, (name, sold)))| {
                    Some(Row::Q8 {
                        start: window_start(window, WINDOW),
                        person,
                        name: name.filter(|_| sold)?,
                    })
                })
                .output("out", rows);
            generated
        }
        Query::Q11 => {
            let gap = SESSION_GAP.as_millis() as i64;
            let source = NexmarkSource::new(config, events, |e| match e {
                Event::Bid(b) => Some((b.bidder as u64, b.date_time as i64)),
                _ => None,
            });
            let generated = source.counter();
            let sessions = flow.input("bids", source).fold_window(
                "sessions",
                PerWorker::new(EventClock::replay(|ts: &i64| *ts, WAIT)),
                SessionWindower::new(SESSION_GAP),
                || (0u64, i64::MAX, i64::MIN),
                |(n, first, last), ts| (n + 1, first.min(ts), last.max(ts)),
                |(n1, f1, l1), (n2, f2, l2)| (n1 + n2, f1.min(f2), l1.max(l2)),
                false,
            );
            sessions.late.map("late_bids", |_| ()).output("late", late);
            sessions
                .down
                .map("rows", move |(bidder, (_, (count, first, last)))| Row::Q11 {
                    bidder,
                    count,
                    start: first,
                    end: last + gap,
                })
                .output("out", rows);
            generated
        }
        Query::Q12 => {
            // Windows of processing time hold whatever bids arrived in them; what does not
            // depend on timing is each bidder's total over its windows. Processing time is
            // the same for every key: one clock per worker.
            let source = NexmarkSource::new(config, events, |e| match e {
                Event::Bid(b) => Some(b.bidder as u64),
                _ => None,
            });
            let generated = source.counter();
            let windows = TumblingWindower::new(WINDOW, 0).map_err(|e| e.to_string())?;
            flow.input("bids", source)
                .count_window(
                    "bids_per_window",
                    PerWorker::new(SystemClock),
                    windows,
                    |bidder: &u64| *bidder,
                )
                .down
                .map("per_bidder", |(bidder, (_, n))| (bidder, n))
                .reduce_final("total", |a, b| a + b)
                .map("rows", |(bidder, bids)| Row::Q12 { bidder, bids })
                .output("out", rows);
            generated
        }
        other => return Err(format!("{other:?} is not a windowed query")),
    })
}
