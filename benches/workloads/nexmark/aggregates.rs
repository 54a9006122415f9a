//! The unbounded aggregations: q15 and q16 (counts and distinct counts per day and channel),
//! q17 (price statistics per auction and day), q18 (the last bid per bidder and auction)
//! and q19 (the ten highest bids per auction).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bwx::outputs::DynamicSink;
use bwx::prelude::*;
use nexmark::config::NexmarkConfig;
use nexmark::event::Event;
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use super::{BidRow, NexmarkSource, Outputs, Query, RankCounts, Row, day_of, minute_of, rank_of};

/// q19: the highest bids kept per auction.
const TOP: usize = 10;

/// q15's and q16's state of a group: bids, and the distinct bidders and auctions, in total
/// (index 0) and per price rank (1-3); and the latest bid time.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Distinct {
    bids: [u64; 4],
    bidders: [FxHashSet<u64>; 4],
    auctions: [FxHashSet<u64>; 4],
    last: i64,
}

impl Distinct {
    fn add(mut self, (bidder, auction, price, ts): (u64, u64, u64, i64)) -> Self {
        for i in [0, 1 + rank_of(price)] {
            self.bids[i] += 1;
            self.bidders[i].insert(bidder);
            self.auctions[i].insert(auction);
        }
        self.last = self.last.max(ts);
        self
    }

    fn counts(&self) -> RankCounts {
        let mut counts = [0; 12];
        for i in 0..4 {
            counts[i] = self.bids[i];
            counts[4 + i] = self.bidders[i].len() as u64;
            counts[8 + i] = self.auctions[i].len() as u64;
        }
        counts
    }
}

/// q17's state of an auction and day: bids in total and per rank, minimum, maximum and sum.
#[derive(Clone, Copy, Serialize, Deserialize)]
struct PriceStats {
    counts: [u64; 4],
    min: u64,
    max: u64,
    sum: u64,
}

impl PriceStats {
    fn new() -> Self {
        PriceStats {
            counts: [0; 4],
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    fn add(mut self, price: u64) -> Self {
        self.counts[0] += 1;
        self.counts[1 + rank_of(price)] += 1;
        self.min = self.min.min(price);
        self.max = self.max.max(price);
        self.sum = self.sum.wrapping_add(price);
        self
    }

    fn merge(mut self, other: Self) -> Self {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum = self.sum.wrapping_add(other.sum);
        self
    }
}

/// q18: the later of two bids (ties, which the SQL leaves open, to the larger row).
fn later(a: BidRow, b: BidRow) -> BidRow {
    if (b.ts, &b) > (a.ts, &a) { b } else { a }
}

/// q19's order of bids: the highest price first, then the earliest, then the smallest row
/// (ties the SQL leaves open).
fn by_price(a: &BidRow, b: &BidRow) -> std::cmp::Ordering {
    b.price.cmp(&a.price).then(a.ts.cmp(&b.ts)).then_with(|| a.cmp(b))
}

/// Keeps the `TOP` first of `bids` in [`by_price`] order.
fn top(mut bids: Vec<BidRow>) -> Vec<BidRow> {
    bids.sort_unstable_by(by_price);
    bids.truncate(TOP);
    bids
}

/// Builds an aggregation `query`; returns the generated-events counter.
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
    let rows = out.rows;
    Ok(match query {
        Query::Q15 => {
            let source = NexmarkSource::new(config, events, |e| match e {
                Event::Bid(b) => Some((
                    day_of(b.date_time as i64),
                    (
                        b.bidder as u64,
                        b.auction as u64,
                        b.price as u64,
                        b.date_time as i64,
                    ),
                )),
                _ => None,
            });
            let generated = source.counter();
            flow.input("bids", source)
                .fold_final("per_day", Distinct::default, Distinct::add)
                .map("rows", |(day, d)| Row::Q15 {
                    day,
                    counts: d.counts(),
                })
                .output("out", rows);
            generated
        }
        Query::Q16 => {
            let source = NexmarkSource::new(config, events, |e| match e {
                Event::Bid(b) => Some((
                    (b.channel, day_of(b.date_time as i64)),
                    (
                        b.bidder as u64,
                        b.auction as u64,
                        b.price as u64,
                        b.date_time as i64,
                    ),
                )),
                _ => None,
            });
            let generated = source.counter();
            flow.input("bids", source)
                .fold_final("per_channel_and_day", Distinct::default, Distinct::add)
                .map("rows", |((channel, day), d)| Row::Q16 {
                    channel,
                    day,
                    minute: minute_of(d.last),
                    counts: d.counts(),
                })
                .output("out", rows);
            generated
        }
        Query::Q17 => {
            let source = NexmarkSource::new(config, events, |e| match e {
                Event::Bid(b) => Some(((b.auction as u64, day_of(b.date_time as i64)), b.price as u64)),
                _ => None,
            });
            let generated = source.counter();
            flow.input("bids", source)
                .fold_final_with_merge(
                    "per_auction_and_day",
                    PriceStats::new,
                    PriceStats::add,
                    PriceStats::merge,
                )
                .map("rows", |((auction, day), s)| Row::Q17 {
                    auction,
                    day,
                    counts: s.counts,
                    min: s.min,
                    max: s.max,
                    avg: s.sum / s.counts[0].max(1),
                    sum: s.sum,
                })
                .output("out", rows);
            generated
        }
        Query::Q18 => {
            let source = NexmarkSource::new(config, events, |e| {
                BidRow::of(e).map(|b| ((b.bidder, b.auction), b))
            });
            let generated = source.counter();
            flow.input("bids", source)
                .reduce_final("last_bid", later)
                .map("rows", |(_, bid)| Row::Q18(Box::new(bid)))
                .output("out", rows);
            generated
        }
        Query::Q19 => {
            let source = NexmarkSource::new(config, events, |e| BidRow::of(e).map(|b| (b.auction, b)));
            let generated = source.counter();
            flow.input("bids", source)
                .fold_final_with_merge(
                    "top_bids",
                    Vec::new,
                    |mut bids: Vec<BidRow>, bid| {
                        bids.push(bid);
                        if bids.len() > 2 * TOP {
                            bids = top(bids);
                        }
                        bids
                    },
                    |mut a, b| {
                        a.extend(b);
                        top(a)
                    },
                )
                .flat_map("rows", |(_, bids)| {
                    top(bids)
                        .into_iter()
                        .zip(1..)
                        .map(|(bid, rank)| Row::Q19(rank, Box::new(bid)))
                        .collect::<Vec<_>>()
                })
                .output("out", rows);
            generated
        }
        other => return Err(format!("{other:?} is not an aggregation query")),
    })
}
