//! Nexmark queries (WORKLOADS.md section 3) as bwx flows over the crates.io `nexmark`
//! generator, with bwx's windowing operators. Shared by the workloads bench and
//! `tests/nexmark.rs` (which checks every query against a direct computation).
//!
//! The source has four partitions; partition p emits the global events p, p + 4, p + 8, ...
//! (`EventGenerator::with_offset(p).with_step(4)`), so the events are a pure function of
//! the config and the event count, whatever the number of workers.
//!
//! The windows of q5, q7 and q8 close at one watermark for all keys (`PerWorker`): each
//! worker's is the largest timestamp it has read minus 4 s (`EventClock::replay`), and a
//! window closes when the least of the workers' has passed it, so an auction without new
//! bids does not hold its windows open. q11's sessions have a watermark per bidder. A key
//! gets events from all four partitions, so partitions must not drift apart by 4 s of
//! event time, or a worker (q11: a key) could see a partition's later events first and
//! call the other's late. The partitions therefore pace each other (all four must be in
//! this process): none emits an event more than [`LEAD_MS`] past the next event of the
//! slowest. Late items are collected and a run with any is an error, so a drift shows up
//! instead of a wrong digest.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bwx::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use bwx::prelude::*;
use bwx::stateful::{JoinEmitMode, JoinInsertMode};
use bwx::testing::TestingSink;
use bwx::windowing::{EventClock, PerWorker, SessionWindower, SlidingWindower, TumblingWindower, each_side};
use nexmark::EventGenerator;
use nexmark::config::NexmarkConfig;
use nexmark::event::Event;
use serde::{Deserialize, Serialize};

/// Event time zero (ms since the Unix epoch): the generator's `base_time` and the windows'
/// alignment.
pub const BASE_MS: i64 = 1_700_000_000_000;
/// How long a watermark waits behind the largest timestamp seen.
pub const WAIT: Duration = Duration::from_secs(4);
const WINDOW: Duration = Duration::from_secs(10);
const SLIDE: Duration = Duration::from_secs(2);
const SESSION_GAP: Duration = Duration::from_secs(10);
/// Source partitions.
pub const PARTS: u64 = 4;
/// Events a partition generates per batch (at most).
const BATCH: u64 = 1000;
/// How far (event time, ms) a partition may run ahead of the slowest one: well inside WAIT.
const LEAD_MS: u64 = 1000;

/// The generator's config for `rate` events per second (WORKLOADS.md: defaults, a fixed
/// base time, one constant rate).
pub fn config(rate: usize) -> NexmarkConfig {
    NexmarkConfig {
        base_time: BASE_MS as u64,
        first_rate: rate,
        next_rate: rate,
        ..NexmarkConfig::default()
    }
}

/// The fields of a generated event that the queries read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ev {
    /// A new person.
    Person { id: u64, name: String, ts: i64 },
    /// A new auction.
    Auction { id: u64, seller: u64, ts: i64 },
    /// A bid.
    Bid {
        auction: u64,
        bidder: u64,
        price: u64,
        ts: i64,
    },
}

impl From<Event> for Ev {
    fn from(event: Event) -> Ev {
        // Timestamps are BASE_MS plus the run's span: far inside i64.
        let ts = |t: u64| t as i64;
        match event {
            Event::Person(p) => Ev::Person {
                id: p.id as u64,
                name: p.name,
                ts: ts(p.date_time),
            },
            Event::Auction(a) => Ev::Auction {
                id: a.id as u64,
                seller: a.seller as u64,
                ts: ts(a.date_time),
            },
            Event::Bid(b) => Ev::Bid {
                auction: b.auction as u64,
                bidder: b.bidder as u64,
                price: b.price as u64,
                ts: ts(b.date_time),
            },
        }
    }
}

/// The queries of the suite that bwx runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query {
    /// Pass-through: counts by event type (the generator's rate).
    Q0,
    /// Hot items: sliding 10 s / 2 s bid counts per auction, the top auctions per window.
    Q5,
    /// Highest bid: the bids with the maximum price per tumbling 10 s window.
    Q7,
    /// New persons who opened an auction in the same tumbling 10 s window.
    Q8,
    /// Bid sessions per bidder (gap 10 s).
    Q11,
}

impl Query {
    /// The query of a name such as `q5`.
    pub fn parse(name: &str) -> Option<Query> {
        Some(match name {
            "q0" => Query::Q0,
            "q5" => Query::Q5,
            "q7" => Query::Q7,
            "q8" => Query::Q8,
            "q11" => Query::Q11,
            _ => return None,
        })
    }
}

/// An output row; `Display` gives the row text of WORKLOADS.md section 3 (q11, which the
/// kit does not define yet: `bidder,count,start_ms,end_ms`, where the start is the first
/// bid's time and the end the last bid's time plus the gap, as Flink's `SESSION_END`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Row {
    Q0 {
        persons: u64,
        auctions: u64,
        bids: u64,
    },
    Q5 {
        start: i64,
        auction: u64,
        count: u64,
    },
    Q7 {
        start: i64,
        auction: u64,
        bidder: u64,
        price: u64,
        ts: i64,
    },
    Q8 {
        start: i64,
        person: u64,
        name: String,
    },
    Q11 {
        bidder: u64,
        count: u64,
        start: i64,
        end: i64,
    },
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Row::Q0 {
                persons,
                auctions,
                bids,
            } => write!(f, "{persons},{auctions},{bids}"),
            Row::Q5 {
                start,
                auction,
                count,
            } => write!(f, "{start},{auction},{count}"),
            Row::Q7 {
                start,
                auction,
                bidder,
                price,
                ts,
            } => write!(f, "{start},{auction},{bidder},{price},{ts}"),
            Row::Q8 { start, person, name } => write!(f, "{start},{person},{name}"),
            Row::Q11 {
                bidder,
                count,
                start,
                end,
            } => write!(f, "{bidder},{count},{start},{end}"),
        }
    }
}

/// Start (ms) of window `id` of windows `step` apart aligned to [`BASE_MS`].
fn window_start(id: i64, step: Duration) -> i64 {
    BASE_MS + id * step.as_millis() as i64
}

/// The four generated partitions and their shared pacing positions.
pub struct NexmarkSource {
    config: NexmarkConfig,
    events: u64,
    /// Timestamp of each partition's next event: 0 until the partition is built,
    /// `u64::MAX` once it is done.
    positions: Arc<[AtomicU64; PARTS as usize]>,
    emitted: Arc<AtomicU64>,
}

impl NexmarkSource {
    /// Global events `0..events` of `config`.
    pub fn new(config: NexmarkConfig, events: u64) -> Self {
        NexmarkSource {
            config,
            events,
            positions: Arc::new(std::array::from_fn(|_| AtomicU64::new(0))),
            emitted: Arc::default(),
        }
    }

    /// A counter of the events this process's partitions emit.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.emitted.clone()
    }
}

impl FixedPartitionedSource for NexmarkSource {
    type Item = Ev;
    /// The partition's next global event number.
    type State = u64;
    type Partition = NexmarkPartition;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok((0..PARTS).map(|p| p.to_string()).collect())
    }

    fn build_part(
        &self,
        step: &StepId,
        part: &str,
        resume: Option<u64>,
    ) -> Result<NexmarkPartition, ConnectorError> {
        let p: u64 = part
            .parse()
            .ok()
            .filter(|p| *p < PARTS)
            .ok_or_else(|| format!("{step}: unknown partition {part:?}"))?;
        let next = resume.unwrap_or(p);
        let generator = EventGenerator::new(self.config.clone())
            .with_offset(next)
            .with_step(PARTS);
        let position = if next >= self.events {
            u64::MAX
        } else {
            generator.timestamp()
        };
        self.positions[p as usize].store(position, Ordering::Release);
        Ok(NexmarkPartition {
            generator,
            part: p as usize,
            next,
            end: self.events,
            positions: self.positions.clone(),
            emitted: self.emitted.clone(),
        })
    }
}

/// Partition p: global events p, p + 4, ... below the end.
pub struct NexmarkPartition {
    generator: EventGenerator,
    part: usize,
    next: u64,
    end: u64,
    positions: Arc<[AtomicU64; PARTS as usize]>,
    emitted: Arc<AtomicU64>,
}

impl StatefulSourcePartition for NexmarkPartition {
    type Item = Ev;
    type State = u64;

    fn next_batch(&mut self, batch: &mut Vec<Ev>) -> Result<BatchStatus, ConnectorError> {
        let slowest = self
            .positions
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        // Past this, wait for the slowest partition (on another worker, or not built yet);
        // an empty batch polls again after the cool-down.
        let limit = slowest.saturating_add(LEAD_MS);
        let mut n = 0;
        while self.next < self.end && n < BATCH && self.generator.timestamp() <= limit {
            let event = self.generator.next().ok_or("the nexmark generator ended")?;
            batch.push(Ev::from(event));
            self.next += PARTS;
            n += 1;
        }
        self.emitted.fetch_add(n, Ordering::Relaxed);
        let done = self.next >= self.end;
        let position = if done {
            u64::MAX
        } else {
            self.generator.timestamp()
        };
        self.positions[self.part].store(position, Ordering::Release);
        Ok(if done {
            BatchStatus::Eof
        } else {
            BatchStatus::Active
        })
    }

    fn snapshot(&self) -> u64 {
        self.next
    }
}

/// Builds `query` over `source`: rows into `rows`, one `()` per late item into `late`.
pub fn flow(
    query: Query,
    source: NexmarkSource,
    rows: TestingSink<Row>,
    late: TestingSink<()>,
) -> Result<Dataflow, String> {
    let flow = Dataflow::new("nexmark");
    let events = flow.input("events", source);
    let tumbling = || TumblingWindower::new(WINDOW, BASE_MS).map_err(|e| e.to_string());
    match query {
        Query::Q0 => {
            events
                .count_final("by_type", |e: &Ev| match e {
                    Ev::Person { .. } => 0u8,
                    Ev::Auction { .. } => 1,
                    Ev::Bid { .. } => 2,
                })
                .map("together", |kind_count| ((), kind_count))
                .fold_final(
                    "totals",
                    || [0u64; 3],
                    |mut totals, (kind, n): (u8, u64)| {
                        totals[usize::from(kind)] = n;
                        totals
                    },
                )
                .map("row", |((), [persons, auctions, bids])| Row::Q0 {
                    persons,
                    auctions,
                    bids,
                })
                .output("out", rows);
        }
        Query::Q5 => {
            let sliding = SlidingWindower::new(WINDOW, SLIDE, BASE_MS).map_err(|e| e.to_string())?;
            let counts = events
                .filter_map("bids", |e| match e {
                    Ev::Bid { auction, ts, .. } => Some((auction, ts)),
                    _ => None,
                })
                .count_window(
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
        }
        Query::Q7 => {
            // Top bids per auction and window, then per window across auctions.
            type Top = (u64, Vec<(u64, i64)>);
            let per_auction = events
                .filter_map("bids", |e| match e {
                    Ev::Bid {
                        auction,
                        bidder,
                        price,
                        ts,
                    } => Some((auction, (bidder, price, ts))),
                    _ => None,
                })
                .fold_window(
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
        }
        Query::Q8 => {
            // (person id, (ts, name)) and (seller id, ts): sides of their own types.
            let persons = events.filter_map("persons", |e| match e {
                Ev::Person { id, name, ts } => Some((id, (ts, name))),
                _ => None,
            });
            let sellers = events.filter_map("sellers", |e| match e {
                Ev::Auction { seller, ts, .. } => Some((seller, ts)),
                _ => None,
            });
            let timestamps = each_side((|(ts, _): &(i64, String)| *ts, |ts: &i64| *ts));
            let joined = flow.join_window(
                "new_sellers",
                PerWorker::new(EventClock::replay(timestamps, WAIT)),
                tumbling()?,
                (&persons, &sellers),
                JoinInsertMode::First,
                JoinEmitMode::Final,
                false,
            );
            joined.late.map("late_events", |_| ()).output("late", late);
            joined
                .down
                .filter_map("rows", |(person, (window, row))| match row {
                    (Some((_, name)), Some(_)) => Some(Row::Q8 {
                        start: window_start(window, WINDOW),
                        person,
                        name,
                    }),
                    _ => None,
                })
                .output("out", rows);
        }
        Query::Q11 => {
            let gap = SESSION_GAP.as_millis() as i64;
            let sessions = events
                .filter_map("bids", |e| match e {
                    Ev::Bid { bidder, ts, .. } => Some((bidder, ts)),
                    _ => None,
                })
                .fold_window(
                    "sessions",
                    EventClock::replay(|ts: &i64| *ts, WAIT),
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
        }
    }
    Ok(flow)
}

/// Of two (maximum, items at the maximum), the larger maximum's items, or both lists on a tie.
fn keep_max<T>((m1, mut t1): (u64, Vec<T>), (m2, t2): (u64, Vec<T>)) -> (u64, Vec<T>) {
    match m1.cmp(&m2) {
        std::cmp::Ordering::Greater => (m1, t1),
        std::cmp::Ordering::Less => (m2, t2),
        std::cmp::Ordering::Equal => {
            t1.extend(t2);
            (m1, t1)
        }
    }
}
