//! The joins: q3 and q20 (regular joins, rows as matches are found), q4, q6 and q9 (bids
//! joined with their auction, within the auction's lifetime, then aggregated).
//!
//! Every join is keyed by the auction or person id and keeps what one side sent until the
//! other side's event arrives: a bid can reach its auction's worker before the auction does
//! (the generator also refers to auctions a few ids ahead).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bwx::outputs::DynamicSink;
use bwx::prelude::*;
use nexmark::config::NexmarkConfig;
use nexmark::event::Event;
use serde::{Deserialize, Serialize};

use super::{AuctionRow, BidRow, NexmarkSource, Outputs, Query, Row};

/// The states of q3's sellers: lower case in this generator (as RisingWave's q3, which runs
/// on it, writes them; Flink's generator writes them upper case).
const Q3_STATES: [&str; 3] = ["or", "id", "ca"];
/// The category of q3 and q20.
const CATEGORY: u64 = 10;
/// q6: the average over each winning bid and the ten before it of the same seller.
const Q6_ROWS: usize = 11;

/// q3's events: a person from one of the states, or an auction of the category.
#[derive(Clone, Serialize, Deserialize)]
enum Q3Side {
    Person {
        name: String,
        city: String,
        state: String,
    },
    Auction(u64),
}

/// A person of q3 (once known) and the auctions that came before it.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Q3State {
    person: Option<(String, String, String)>,
    waiting: Vec<u64>,
}

/// An auction's lifetime and what q4 and q6 read of it.
#[derive(Clone, Copy, Serialize, Deserialize)]
struct Lifetime {
    ts: i64,
    expires: i64,
    category: u64,
    seller: u64,
}

impl Lifetime {
    /// Whether a bid at `ts` is within the auction (`BETWEEN` is inclusive).
    fn holds(&self, ts: i64) -> bool {
        self.ts <= ts && ts <= self.expires
    }
}

/// q4's and q6's events, keyed by auction id.
#[derive(Clone, Serialize, Deserialize)]
enum PriceSide {
    Auction(Lifetime),
    Bid { price: u64, ts: i64 },
}

/// An auction of q4 and q6 (once known), its winning bid so far (highest price, then the
/// earliest), and the bids that came before the auction.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Winner {
    auction: Option<Lifetime>,
    best: Option<(u64, i64)>,
    waiting: Vec<(u64, i64)>,
}

impl Winner {
    fn bid(&mut self, price: u64, ts: i64) {
        let better = |best: Option<(u64, i64)>| best.is_none_or(|(p, t)| price > p || (price == p && ts < t));
        if better(self.best) {
            self.best = Some((price, ts));
        }
    }

    fn add(mut self, side: PriceSide) -> Self {
        match side {
            PriceSide::Auction(a) => {
                self.auction = Some(a);
                for (price, ts) in std::mem::take(&mut self.waiting) {
                    if a.holds(ts) {
                        self.bid(price, ts);
                    }
                }
            }
            PriceSide::Bid { price, ts } => match self.auction {
                Some(a) if a.holds(ts) => self.bid(price, ts),
                Some(_) => {}
                None => self.waiting.push((price, ts)),
            },
        }
        self
    }
}

fn price_sides(e: Event) -> Option<(u64, PriceSide)> {
    match e {
        Event::Auction(a) => Some((
            a.id as u64,
            PriceSide::Auction(Lifetime {
                ts: a.date_time as i64,
                expires: a.expires as i64,
                category: a.category as u64,
                seller: a.seller as u64,
            }),
        )),
        Event::Bid(b) => Some((
            b.auction as u64,
            PriceSide::Bid {
                price: b.price as u64,
                ts: b.date_time as i64,
            },
        )),
        Event::Person(_) => None,
    }
}

/// q9's events, keyed by auction id.
#[derive(Clone, Serialize, Deserialize)]
enum FullSide {
    Auction(AuctionRow),
    Bid(BidRow),
}

fn full_sides(e: Event) -> Option<(u64, FullSide)> {
    match e {
        Event::Auction(_) => AuctionRow::of(e).map(|a| (a.id, FullSide::Auction(a))),
        Event::Bid(_) => BidRow::of(e).map(|b| (b.auction, FullSide::Bid(b))),
        Event::Person(_) => None,
    }
}

/// An auction of q9 (once known), its winning bid so far, and the bids before it.
#[derive(Clone, Default, Serialize, Deserialize)]
struct FullWinner {
    auction: Option<AuctionRow>,
    best: Option<BidRow>,
    waiting: Vec<BidRow>,
}

impl FullWinner {
    /// The highest price wins, then the earliest bid; further ties go to the smallest row
    /// (the SQL leaves them open).
    fn bid(&mut self, bid: BidRow) {
        let key = |b: &BidRow| (std::cmp::Reverse(b.price), b.ts);
        if self
            .best
            .as_ref()
            .is_none_or(|best| (key(&bid), &bid) < (key(best), best))
        {
            self.best = Some(bid);
        }
    }

    fn add(mut self, side: FullSide) -> Self {
        match side {
            FullSide::Auction(a) => {
                for bid in std::mem::take(&mut self.waiting) {
                    if a.ts <= bid.ts && bid.ts <= a.expires {
                        self.bid(bid);
                    }
                }
                self.auction = Some(a);
            }
            FullSide::Bid(bid) => match &self.auction {
                Some(a) if a.ts <= bid.ts && bid.ts <= a.expires => self.bid(bid),
                Some(_) => {}
                None => self.waiting.push(bid),
            },
        }
        self
    }
}

/// q20's state of an auction: bids waiting for it, then the auction if it is in the
/// category (its bids then join as they come), or a mark that it is not.
#[derive(Clone, Serialize, Deserialize)]
enum Q20State {
    Waiting(Vec<BidRow>),
    Joined(AuctionRow),
    OtherCategory,
}

/// Builds a join `query`; returns the generated-events counter.
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
        Query::Q3 => {
            let source = NexmarkSource::new(config, events, |e| match e {
                Event::Person(p) if Q3_STATES.contains(&p.state.as_str()) => Some((
                    p.id as u64,
                    Q3Side::Person {
                        name: p.name,
                        city: p.city,
                        state: p.state,
                    },
                )),
                Event::Auction(a) if a.category as u64 == CATEGORY => {
                    Some((a.seller as u64, Q3Side::Auction(a.id as u64)))
                }
                _ => None,
            });
            let generated = source.counter();
            flow.input("persons_and_auctions", source)
                .stateful_flat_map("join", |state: Option<Q3State>, side: Q3Side| {
                    let mut state = state.unwrap_or_default();
                    let mut rows = Vec::new();
                    match side {
                        Q3Side::Person {
                            name,
                            city,
                            state: st,
                        } => {
                            for auction in state.waiting.drain(..) {
                                rows.push(Row::Q3 {
                                    name: name.clone(),
                                    city: city.clone(),
                                    state: st.clone(),
                                    auction,
                                });
                            }
                            state.person = Some((name, city, st));
                        }
                        Q3Side::Auction(auction) => match &state.person {
                            Some((name, city, st)) => rows.push(Row::Q3 {
                                name: name.clone(),
                                city: city.clone(),
                                state: st.clone(),
                                auction,
                            }),
                            None => state.waiting.push(auction),
                        },
                    }
                    (Some(state), rows)
                })
                .map("rows", |(_, row)| row)
                .output("out", rows);
            generated
        }
        Query::Q4 => {
            let source = NexmarkSource::new(config, events, price_sides);
            let generated = source.counter();
            flow.input("auctions_and_bids", source)
                .fold_final("winning_bids", Winner::default, Winner::add)
                .filter_map("by_category", |(_, w)| {
                    Some((w.auction?.category, (w.best?.0, 1u64)))
                })
                .fold_final_with_merge(
                    "average",
                    || (0u64, 0u64),
                    |(sum, n), (price, one)| (sum + price, n + one),
                    |(s1, n1), (s2, n2)| (s1 + s2, n1 + n2),
                )
                .map("rows", |(category, (sum, n))| Row::Q4 {
                    category,
                    avg: sum / n,
                })
                .output("out", rows);
            generated
        }
        Query::Q6 => {
            let source = NexmarkSource::new(config, events, price_sides);
            let generated = source.counter();
            flow.input("auctions_and_bids", source)
                .fold_final("winning_bids", Winner::default, Winner::add)
                .filter_map("by_seller", |(auction, w)| {
                    let a = w.auction?;
                    let (price, ts) = w.best?;
                    Some((a.seller, (ts, auction, price)))
                })
                .fold_final("winners", Vec::new, |mut all: Vec<(i64, u64, u64)>, winner| {
                    all.push(winner);
                    all
                })
                .flat_map("rows", |(seller, mut winners)| {
                    // In the order of the winning bids' times: each one's average with the
                    // ten before it.
                    winners.sort_unstable();
                    let prices: Vec<u64> = winners.iter().map(|(_, _, price)| *price).collect();
                    winners
                        .into_iter()
                        .enumerate()
                        .map(move |(i, (_, auction, _))| {
                            let last = &prices[i.saturating_sub(Q6_ROWS - 1)..=i];
                            Row::Q6 {
                                seller,
                                auction,
                                avg: last.iter().sum::<u64>() / last.len() as u64,
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .output("out", rows);
            generated
        }
        Query::Q9 => {
            let source = NexmarkSource::new(config, events, full_sides);
            let generated = source.counter();
            flow.input("auctions_and_bids", source)
                .fold_final("winning_bids", FullWinner::default, FullWinner::add)
                .filter_map("rows", |(_, w)| Some(Row::Q9(Box::new((w.auction?, w.best?)))))
                .output("out", rows);
            generated
        }
        Query::Q20 => {
            let source = NexmarkSource::new(config, events, full_sides);
            let generated = source.counter();
            flow.input("auctions_and_bids", source)
                .stateful_flat_map("join", |state: Option<Q20State>, side: FullSide| {
                    let state = state.unwrap_or(Q20State::Waiting(Vec::new()));
                    let join = |bid: BidRow, a: &AuctionRow| Row::Q20(Box::new((bid, a.clone())));
                    let (state, rows) = match (state, side) {
                        (Q20State::Waiting(bids), FullSide::Auction(a)) if a.category == CATEGORY => {
                            let rows = bids.into_iter().map(|bid| join(bid, &a)).collect();
                            (Q20State::Joined(a), rows)
                        }
                        (Q20State::Waiting(_), FullSide::Auction(_)) => (Q20State::OtherCategory, Vec::new()),
                        (Q20State::Waiting(mut bids), FullSide::Bid(bid)) => {
                            bids.push(bid);
                            (Q20State::Waiting(bids), Vec::new())
                        }
                        (Q20State::Joined(a), FullSide::Bid(bid)) => {
                            let row = join(bid, &a);
                            (Q20State::Joined(a), vec![row])
                        }
                        // An auction id is generated once; a repeat changes nothing.
                        (state, _) => (state, Vec::new()),
                    };
                    (Some(state), rows)
                })
                .map("rows", |(_, row)| row)
                .output("out", rows);
            generated
        }
        other => return Err(format!("{other:?} is not a join query")),
    })
}
