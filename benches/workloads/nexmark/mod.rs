//! The Nexmark suite (WORKLOADS.md section 3; the queries as the Nexmark project runs them
//! on Flink, `nexmark-flink/src/main/resources/queries/q*.sql`) as bwx flows over the
//! crates.io `nexmark` generator. Shared by the workloads bench and `tests/nexmark.rs`,
//! which checks every query against a direct computation on 1 and 2 workers.
//!
//! The source has four partitions; partition p emits the global events p, p + 4, p + 8, ...
//! (`EventGenerator::with_offset(p).with_step(4)`), so the events are a pure function of the
//! config and the event count, whatever the number of workers. Each query projects the
//! events at the source onto the fields it reads.
//!
//! Windows close at one watermark for all keys (`PerWorker`), sessions (q11) included:
//! each worker's is the largest timestamp it has read minus 4 s (`EventClock::replay`). A
//! key gets events from all four partitions, so partitions must not drift apart by 4 s of
//! event time, or a worker could see a partition's later events first and call the other's
//! late: the partitions pace each other (all four must be in this process). Late items are collected and a run with any is
//! an error, so a drift shows up instead of a wrong digest.
//!
//! Queries whose SQL maintains a result that changes with every event (joins, unbounded
//! aggregations, top-N, deduplication: q3, q4, q6, q9, q15-q20) keep the same state here and
//! emit their final result when the input ends: the rows are that final result (Flink's and
//! RisingWave's result tables after the last event).

mod aggregates;
mod joins;
pub mod simple;
mod source;
mod windowed;

pub use simple::log_rows;
pub use source::NexmarkSource;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bwx::StepId;
use bwx::inputs::ConnectorError;
use bwx::outputs::{DynamicSink, StatelessSinkPartition};
use bwx::prelude::*;
use nexmark::config::NexmarkConfig;
use nexmark::event::Event;

/// Event time zero (ms since the Unix epoch): the generator's `base_time` and the windows'
/// alignment.
pub const BASE_MS: i64 = 1_700_000_000_000;
/// How long a watermark waits behind the largest timestamp seen.
pub const WAIT: Duration = Duration::from_secs(4);
/// Tumbling windows and the length of sliding ones.
pub const WINDOW: Duration = Duration::from_secs(10);
/// The slide of sliding windows.
pub const SLIDE: Duration = Duration::from_secs(2);
/// The gap of q11's sessions.
pub const SESSION_GAP: Duration = Duration::from_secs(10);

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

/// The queries of the suite, q0 to q22.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query {
    /// Pass-through: counts by event type (the generator's rate).
    Q0,
    /// Currency conversion of every bid (the count and sum of the converted prices).
    Q1,
    /// Bids on auctions whose id is a multiple of 123.
    Q2,
    /// Who sells in OR, ID or CA in category 10, and which auctions (a regular join).
    Q3,
    /// The average winning bid per category (a join and two aggregations).
    Q4,
    /// Hot items: sliding 10 s / 2 s bid counts per auction, the top auctions per window.
    Q5,
    /// The average selling price of each seller's last 11 winning bids (an OVER window).
    Q6,
    /// Highest bid: the bids with the maximum price per tumbling 10 s window.
    Q7,
    /// New persons who opened an auction in the same tumbling 10 s window.
    Q8,
    /// The winning bid of every auction.
    Q9,
    /// Every bid logged to files partitioned by day and minute.
    Q10,
    /// Bid sessions per bidder (gap 10 s).
    Q11,
    /// Bids per bidder in tumbling 10 s windows of processing time.
    Q12,
    /// Bids joined with a bounded side input (a file) by `auction % 10000`.
    Q13,
    /// A projection with computed columns (euro price, time of day, a character count).
    Q14,
    /// Per day: bids, bidders and auctions in three price ranks (distinct counts).
    Q15,
    /// Per channel and day: as q15, with the last minute.
    Q16,
    /// Per auction and day: bids per rank, minimum, maximum, average and total price.
    Q17,
    /// The last bid of every bidder on every auction (deduplication).
    Q18,
    /// The ten highest bids of every auction (top-N).
    Q19,
    /// Bids with their auction's fields, for auctions in category 10 (a regular join).
    Q20,
    /// Bids with a channel id taken from the channel name or the URL.
    Q21,
    /// Bids with the first three directories of their URL.
    Q22,
}

impl Query {
    /// Every query, q0 to q22.
    pub const ALL: [Query; 23] = [
        Query::Q0,
        Query::Q1,
        Query::Q2,
        Query::Q3,
        Query::Q4,
        Query::Q5,
        Query::Q6,
        Query::Q7,
        Query::Q8,
        Query::Q9,
        Query::Q10,
        Query::Q11,
        Query::Q12,
        Query::Q13,
        Query::Q14,
        Query::Q15,
        Query::Q16,
        Query::Q17,
        Query::Q18,
        Query::Q19,
        Query::Q20,
        Query::Q21,
        Query::Q22,
    ];

    /// The query of a name such as `q5`.
    pub fn parse(name: &str) -> Option<Query> {
        let n: usize = name.strip_prefix('q')?.parse().ok()?;
        Query::ALL.get(n).copied().filter(|q| q.name() == name)
    }

    /// `q0` ... `q22`.
    pub fn name(self) -> String {
        format!("q{}", self as usize)
    }

    /// Whether the bench keeps every output row (small outputs, and the five queries whose
    /// digests the bench kit defines), or only their count and checksum ([`RowChecksum`]).
    pub fn keeps_rows(self) -> bool {
        use Query::*;
        matches!(
            self,
            Q0 | Q1 | Q2 | Q3 | Q4 | Q5 | Q7 | Q8 | Q10 | Q11 | Q12 | Q15 | Q16
        )
    }
}

/// A bid with every field (q10 and q18-q22 write them all).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct BidRow {
    pub auction: u64,
    pub bidder: u64,
    pub price: u64,
    pub channel: String,
    pub url: String,
    pub ts: i64,
    pub extra: String,
}

impl BidRow {
    /// The bid of an event, if it is one.
    pub fn of(event: Event) -> Option<BidRow> {
        match event {
            Event::Bid(b) => Some(BidRow {
                auction: b.auction as u64,
                bidder: b.bidder as u64,
                price: b.price as u64,
                channel: b.channel,
                url: b.url,
                ts: b.date_time as i64,
                extra: b.extra,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for BidRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BidRow {
            auction,
            bidder,
            price,
            channel,
            url,
            ts,
            extra,
        } = self;
        write!(f, "{auction},{bidder},{price},{channel},{url},{ts},{extra}")
    }
}

/// An auction with every field (q9 and q20 write them all).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct AuctionRow {
    pub id: u64,
    pub item_name: String,
    pub description: String,
    pub initial_bid: u64,
    pub reserve: u64,
    pub ts: i64,
    pub expires: i64,
    pub seller: u64,
    pub category: u64,
    pub extra: String,
}

impl AuctionRow {
    /// The auction of an event, if it is one.
    pub fn of(event: Event) -> Option<AuctionRow> {
        match event {
            Event::Auction(a) => Some(AuctionRow {
                id: a.id as u64,
                item_name: a.item_name,
                description: a.description,
                initial_bid: a.initial_bid as u64,
                reserve: a.reserve as u64,
                ts: a.date_time as i64,
                expires: a.expires as i64,
                seller: a.seller as u64,
                category: a.category as u64,
                extra: a.extra,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for AuctionRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let AuctionRow {
            id,
            item_name,
            description,
            initial_bid,
            reserve,
            ts,
            expires,
            seller,
            category,
            extra,
        } = self;
        write!(
            f,
            "{id},{item_name},{description},{initial_bid},{reserve},{ts},{expires},{seller},{category},{extra}"
        )
    }
}

/// The counts of q15 and q16: bids, bidders and auctions, each in total and in the three
/// price ranks (below 10,000; below 1,000,000; the rest).
pub type RankCounts = [u64; 12];

/// An output row; `Display` gives its text (WORKLOADS.md section 3 where it defines one).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Row {
    Q0 {
        persons: u64,
        auctions: u64,
        bids: u64,
    },
    /// The count of bids and the (wrapping) sum of their prices times 908.
    Q1 {
        bids: u64,
        sum: u64,
    },
    Q2 {
        auction: u64,
        price: u64,
    },
    Q3 {
        name: String,
        city: String,
        state: String,
        auction: u64,
    },
    /// The truncated integer average, as Flink's `AVG` of a `BIGINT`.
    Q4 {
        category: u64,
        avg: u64,
    },
    Q5 {
        start: i64,
        auction: u64,
        count: u64,
    },
    Q6 {
        seller: u64,
        auction: u64,
        avg: u64,
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
    Q9(Box<(AuctionRow, BidRow)>),
    /// A partition directory of the log and its lines.
    Q10 {
        day: String,
        minute: String,
        lines: u64,
    },
    Q11 {
        bidder: u64,
        count: u64,
        start: i64,
        end: i64,
    },
    /// Bids per bidder over all its processing-time windows (the windows themselves depend
    /// on when the bids were processed).
    Q12 {
        bidder: u64,
        bids: u64,
    },
    Q13 {
        auction: u64,
        bidder: u64,
        price: u64,
        ts: i64,
        value: String,
    },
    /// `price_milli` is the price times 908, shown with three decimals (`0.908 * price` as
    /// a `DECIMAL(23, 3)`).
    Q14 {
        auction: u64,
        bidder: u64,
        price_milli: u64,
        time_type: &'static str,
        ts: i64,
        extra: String,
        c_counts: u64,
    },
    Q15 {
        day: String,
        counts: RankCounts,
    },
    Q16 {
        channel: String,
        day: String,
        minute: String,
        counts: RankCounts,
    },
    Q17 {
        auction: u64,
        day: String,
        counts: [u64; 4],
        min: u64,
        max: u64,
        avg: u64,
        sum: u64,
    },
    Q18(Box<BidRow>),
    /// A bid and its rank (1 to 10) among the auction's bids.
    Q19(u64, Box<BidRow>),
    Q20(Box<(BidRow, AuctionRow)>),
    Q21 {
        auction: u64,
        bidder: u64,
        price: u64,
        channel: String,
        channel_id: String,
    },
    Q22 {
        auction: u64,
        bidder: u64,
        price: u64,
        channel: String,
        dirs: [Option<String>; 3],
    },
    /// What the bench keeps of a query's rows when it does not keep them all.
    Checksum {
        rows: u64,
        checksum: u64,
    },
}

fn join<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Row::Q0 {
                persons,
                auctions,
                bids,
            } => write!(f, "{persons},{auctions},{bids}"),
            Row::Q1 { bids, sum } => write!(f, "{bids},{sum}"),
            Row::Q2 { auction, price } => write!(f, "{auction},{price}"),
            Row::Q3 {
                name,
                city,
                state,
                auction,
            } => write!(f, "{name},{city},{state},{auction}"),
            Row::Q4 { category, avg } => write!(f, "{category},{avg}"),
            Row::Q5 {
                start,
                auction,
                count,
            } => write!(f, "{start},{auction},{count}"),
            Row::Q6 { seller, auction, avg } => write!(f, "{seller},{auction},{avg}"),
            Row::Q7 {
                start,
                auction,
                bidder,
                price,
                ts,
            } => write!(f, "{start},{auction},{bidder},{price},{ts}"),
            Row::Q8 { start, person, name } => write!(f, "{start},{person},{name}"),
            Row::Q9(both) => write!(f, "{},{}", both.0, both.1),
            Row::Q10 { day, minute, lines } => write!(f, "{day},{minute},{lines}"),
            Row::Q11 {
                bidder,
                count,
                start,
                end,
            } => write!(f, "{bidder},{count},{start},{end}"),
            Row::Q12 { bidder, bids } => write!(f, "{bidder},{bids}"),
            Row::Q13 {
                auction,
                bidder,
                price,
                ts,
                value,
            } => write!(f, "{auction},{bidder},{price},{ts},{value}"),
            Row::Q14 {
                auction,
                bidder,
                price_milli,
                time_type,
                ts,
                extra,
                c_counts,
            } => write!(
                f,
                "{auction},{bidder},{}.{:03},{time_type},{ts},{extra},{c_counts}",
                price_milli / 1000,
                price_milli % 1000
            ),
            Row::Q15 { day, counts } => {
                write!(f, "{day},")?;
                join(f, counts)
            }
            Row::Q16 {
                channel,
                day,
                minute,
                counts,
            } => {
                write!(f, "{channel},{day},{minute},")?;
                join(f, counts)
            }
            Row::Q17 {
                auction,
                day,
                counts,
                min,
                max,
                avg,
                sum,
            } => {
                write!(f, "{auction},{day},")?;
                join(f, counts)?;
                write!(f, ",{min},{max},{avg},{sum}")
            }
            Row::Q18(bid) => write!(f, "{bid}"),
            Row::Q19(rank, bid) => write!(f, "{bid},{rank}"),
            Row::Q20(both) => write!(f, "{},{}", both.0, both.1),
            Row::Q21 {
                auction,
                bidder,
                price,
                channel,
                channel_id,
            } => {
                write!(f, "{auction},{bidder},{price},{channel},{channel_id}")
            }
            Row::Q22 {
                auction,
                bidder,
                price,
                channel,
                dirs,
            } => {
                write!(f, "{auction},{bidder},{price},{channel}")?;
                for dir in dirs {
                    write!(f, ",{}", dir.as_deref().unwrap_or(""))?;
                }
                Ok(())
            }
            Row::Checksum { rows, checksum } => write!(f, "{rows},{checksum:016x}"),
        }
    }
}

/// The 64-bit hash of a row that [`RowChecksum`] sums (FxHash of the row's fields, the
/// same in every run of a build).
pub fn row_hash(row: &Row) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    row.hash(&mut hasher);
    hasher.finish()
}

/// A sink that keeps only the count of the rows and their checksum, the wrapping sum of
/// their [`row_hash`]es (order-independent): the rows of the queries that emit about one
/// per bid are not kept (as a Flink blackhole sink).
#[derive(Clone, Default)]
pub struct RowChecksum {
    merged: Arc<Mutex<(u64, u64)>>,
}

impl RowChecksum {
    /// The checksum of every row written, as one row.
    pub fn take(&self) -> Row {
        let (rows, checksum) = *self.merged.lock().unwrap();
        Row::Checksum { rows, checksum }
    }
}

impl DynamicSink for RowChecksum {
    type Item = Row;
    type Partition = RowChecksumPart;

    fn build(
        &self,
        _step: &StepId,
        _worker: usize,
        _workers: usize,
    ) -> Result<RowChecksumPart, ConnectorError> {
        Ok(RowChecksumPart {
            local: (0, 0),
            merged: self.merged.clone(),
        })
    }
}

pub struct RowChecksumPart {
    local: (u64, u64),
    merged: Arc<Mutex<(u64, u64)>>,
}

impl StatelessSinkPartition for RowChecksumPart {
    type Item = Row;

    fn write_batch(&mut self, items: &mut Vec<Row>) -> Result<(), ConnectorError> {
        for row in items.drain(..) {
            self.local.0 += 1;
            self.local.1 = self.local.1.wrapping_add(row_hash(&row));
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        let mut merged = self.merged.lock().map_err(|_| "checksum sink poisoned")?;
        merged.0 += self.local.0;
        merged.1 = merged.1.wrapping_add(self.local.1);
        Ok(())
    }
}

/// Where a query's flow writes: its rows, one `()` per late item, and a directory for its
/// files (q10's log, q13's side input).
pub struct Outputs<S> {
    pub rows: S,
    pub late: bwx::testing::TestingSink<()>,
    pub scratch: std::path::PathBuf,
}

/// Builds `query` over the first `events` events of `config`; `generated` counts them.
pub fn flow<S>(
    query: Query,
    config: NexmarkConfig,
    events: u64,
    out: Outputs<S>,
) -> Result<(Dataflow, Arc<std::sync::atomic::AtomicU64>), String>
where
    S: DynamicSink<Item = Row> + Clone + Send + Sync + 'static,
{
    let flow = Dataflow::new("nexmark");
    let generated = match query {
        Query::Q0
        | Query::Q1
        | Query::Q2
        | Query::Q10
        | Query::Q13
        | Query::Q14
        | Query::Q21
        | Query::Q22 => simple::build(&flow, query, config, events, out)?,
        Query::Q5 | Query::Q7 | Query::Q8 | Query::Q11 | Query::Q12 => {
            windowed::build(&flow, query, config, events, out)?
        }
        Query::Q3 | Query::Q4 | Query::Q6 | Query::Q9 | Query::Q20 => {
            joins::build(&flow, query, config, events, out)?
        }
        Query::Q15 | Query::Q16 | Query::Q17 | Query::Q18 | Query::Q19 => {
            aggregates::build(&flow, query, config, events, out)?
        }
    };
    Ok((flow, generated))
}

/// Start (ms) of window `id` of windows `step` apart aligned to [`BASE_MS`].
pub fn window_start(id: i64, step: Duration) -> i64 {
    BASE_MS + id * step.as_millis() as i64
}

/// `yyyy-MM-dd` of a time in ms since the epoch (UTC), as Flink's `DATE_FORMAT`.
pub fn day_of(ms: i64) -> String {
    bwx::windowing::datetime_of(ms).format("%Y-%m-%d").to_string()
}

/// `HH:mm` of a time in ms since the epoch (UTC), as Flink's `DATE_FORMAT`.
pub fn minute_of(ms: i64) -> String {
    bwx::windowing::datetime_of(ms).format("%H:%M").to_string()
}

/// The price rank of q15-q17: 0 below 10,000, 1 below 1,000,000, else 2.
pub fn rank_of(price: u64) -> usize {
    match price {
        0..10_000 => 0,
        10_000..1_000_000 => 1,
        _ => 2,
    }
}

/// Of two (maximum, items at the maximum), the larger maximum's items, or both lists on a tie.
pub fn keep_max<T>((m1, mut t1): (u64, Vec<T>), (m2, t2): (u64, Vec<T>)) -> (u64, Vec<T>) {
    match m1.cmp(&m2) {
        std::cmp::Ordering::Greater => (m1, t1),
        std::cmp::Ordering::Less => (m2, t2),
        std::cmp::Ordering::Equal => {
            t1.extend(t2);
            (m1, t1)
        }
    }
}
