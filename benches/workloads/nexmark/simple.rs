//! The queries without state across events but q0's and q1's totals: q0 (pass-through,
//! counted), q1 (currency conversion), q2 (selection), q10 (log to files), q13 (bounded
//! side input join), q14 (computed columns), q21 (a channel id from the URL), q22 (URL
//! directories).

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bwx::StepId;
use bwx::inputs::ConnectorError;
use bwx::outputs::{DynamicSink, StatelessSinkPartition};
use bwx::prelude::*;
use nexmark::config::NexmarkConfig;
use nexmark::event::Event;
use rustc_hash::FxHashMap;

use super::{BidRow, NexmarkSource, Outputs, Query, Row, day_of, minute_of};

/// q13: rows of the side input, keyed `auction % SIDE_ROWS`.
pub const SIDE_ROWS: u64 = 10_000;
/// q10: a minute, the unit of the log's partitions.
const MINUTE_MS: i64 = 60_000;

/// The value of key `k` in q13's side input.
pub fn side_value(k: u64) -> String {
    format!("side-{k:05}")
}

/// Writes q13's side input, `key,value` per line for keys `0..SIDE_ROWS`, to `path`.
pub fn write_side_input(path: &Path) -> std::io::Result<()> {
    let mut file = BufWriter::new(File::create(path)?);
    for k in 0..SIDE_ROWS {
        writeln!(file, "{k},{}", side_value(k))?;
    }
    file.flush()
}

/// Reads a side input written by [`write_side_input`]: the value of each key, by key.
fn read_side_input(path: &Path) -> Result<Vec<String>, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut values = vec![String::new(); SIDE_ROWS as usize];
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        let bad = || {
            format!(
                "{} line {}: not `key,value` with a key below {SIDE_ROWS}",
                path.display(),
                n + 1
            )
        };
        let (key, value) = line.split_once(',').ok_or_else(bad)?;
        let key: usize = key.parse().map_err(|_| bad())?;
        *values.get_mut(key).ok_or_else(bad)? = value.to_string();
    }
    Ok(values)
}

/// q14's `bidTimeType` of a time (UTC).
pub fn time_type(ts: i64) -> &'static str {
    match ts.div_euclid(3_600_000).rem_euclid(24) {
        8..=18 => "dayTime",
        h if h <= 6 || h >= 20 => "nightTime",
        _ => "otherTime",
    }
}

/// q21's `REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)`: the value of the leftmost
/// `channel_id` parameter at the start of `url` or after a `&`.
pub fn channel_id_in(url: &str) -> Option<&str> {
    const NAME: &str = "channel_id=";
    let at = if url.starts_with(NAME) {
        0
    } else {
        url.find("&channel_id=")? + 1
    };
    let value = &url[at + NAME.len()..];
    Some(value.split('&').next().unwrap_or(""))
}

/// q21's channel id: fixed for the four big channels, else from the URL.
pub fn channel_id(channel: &str, url: &str) -> Option<String> {
    let fixed = ["apple", "google", "facebook", "baidu"]
        .iter()
        .position(|c| channel.eq_ignore_ascii_case(c));
    match fixed {
        Some(i) => Some(i.to_string()),
        None => channel_id_in(url).map(str::to_string),
    }
}

/// q22's `SPLIT_INDEX(url, '/', n)` for n = 3, 4, 5.
pub fn url_dirs(url: &str) -> [Option<String>; 3] {
    let mut parts = url.split('/').skip(3).map(str::to_string);
    [parts.next(), parts.next(), parts.next()]
}

/// The directory of q10's partition of a minute (`dt=yyyy-MM-dd/hm=HH:mm`).
fn partition_dir(root: &Path, minute: i64) -> PathBuf {
    let ms = minute * MINUTE_MS;
    root.join(format!("dt={}", day_of(ms)))
        .join(format!("hm={}", minute_of(ms)))
}

/// q10's sink: each worker appends the bids of a minute to its own file in the minute's
/// partition directory, as CSV (`auction,bidder,price,dateTime,extra`).
#[derive(Clone)]
struct Log {
    root: PathBuf,
}

impl DynamicSink for Log {
    type Item = (i64, BidRow);
    type Partition = LogPart;

    fn build(&self, _step: &StepId, worker: usize, _workers: usize) -> Result<LogPart, ConnectorError> {
        Ok(LogPart {
            root: self.root.clone(),
            worker,
            files: FxHashMap::default(),
        })
    }
}

struct LogPart {
    root: PathBuf,
    worker: usize,
    /// The open file of each minute.
    files: FxHashMap<i64, BufWriter<File>>,
}

impl LogPart {
    fn file(&mut self, minute: i64) -> Result<&mut BufWriter<File>, ConnectorError> {
        Ok(match self.files.entry(minute) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(new) => {
                let dir = partition_dir(&self.root, minute);
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let path = dir.join(format!("part-{}.csv", self.worker));
                let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                new.insert(BufWriter::with_capacity(64 * 1024, file))
            }
        })
    }
}

impl StatelessSinkPartition for LogPart {
    type Item = (i64, BidRow);

    fn write_batch(&mut self, items: &mut Vec<(i64, BidRow)>) -> Result<(), ConnectorError> {
        for (minute, b) in items.drain(..) {
            let file = self.file(minute)?;
            writeln!(
                file,
                "{},{},{},{},{}",
                b.auction, b.bidder, b.price, b.ts, b.extra
            )?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        for file in self.files.values_mut() {
            file.flush()?;
        }
        Ok(())
    }
}

/// q10's rows: every partition directory under `root` with the lines of its files.
pub fn log_rows(root: &Path) -> Result<Vec<Row>, String> {
    let read = |p: &Path| std::fs::read_dir(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut lines: BTreeMap<(String, String), u64> = BTreeMap::new();
    for day in read(root)? {
        let day = day.map_err(|e| e.to_string())?.path();
        for minute in read(&day)? {
            let minute = minute.map_err(|e| e.to_string())?.path();
            let name = |p: &Path, prefix: &str| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                name.strip_prefix(prefix).unwrap_or(name).to_string()
            };
            let n = lines
                .entry((name(&day, "dt="), name(&minute, "hm=")))
                .or_default();
            for file in read(&minute)? {
                let path = file.map_err(|e| e.to_string())?.path();
                let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                *n += text.iter().filter(|b| **b == b'\n').count() as u64;
            }
        }
    }
    Ok(lines
        .into_iter()
        .map(|((day, minute), lines)| Row::Q10 { day, minute, lines })
        .collect())
}

/// Builds a stateless `query`; returns the generated-events counter.
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
    let Outputs { rows, scratch, .. } = out;
    Ok(match query {
        Query::Q0 => {
            let source = NexmarkSource::new(config, events, |e| {
                Some(match e {
                    Event::Person(_) => 0u8,
                    Event::Auction(_) => 1,
                    Event::Bid(_) => 2,
                })
            });
            let generated = source.counter();
            flow.input("events", source)
                .count_final("by_type", |kind: &u8| *kind)
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
            generated
        }
        Query::Q1 => {
            let source = NexmarkSource::new(config, events, |e| match e {
                Event::Bid(b) => Some(b.price as u64),
                _ => None,
            });
            let generated = source.counter();
            flow.input("bids", source)
                // The euro price is price * 0.908: kept exact as price * 908 thousandths.
                .map("to_euro", |price: u64| ((), (1u64, price.wrapping_mul(908))))
                .fold_final_with_merge(
                    "totals",
                    || (0u64, 0u64),
                    |(n, sum), (one, euro)| (n + one, sum.wrapping_add(euro)),
                    |(n1, s1), (n2, s2)| (n1 + n2, s1.wrapping_add(s2)),
                )
                .map("row", |((), (bids, sum))| Row::Q1 { bids, sum })
                .output("out", rows);
            generated
        }
        Query::Q2 => {
            let source = NexmarkSource::new(config, events, |e| match e {
                Event::Bid(b) if b.auction % 123 == 0 => Some(Row::Q2 {
                    auction: b.auction as u64,
                    price: b.price as u64,
                }),
                _ => None,
            });
            let generated = source.counter();
            flow.input("bids", source).output("out", rows);
            generated
        }
        Query::Q10 => {
            let source = NexmarkSource::new(config, events, BidRow::of);
            let generated = source.counter();
            flow.input("bids", source)
                .map("by_minute", |b: BidRow| (b.ts.div_euclid(MINUTE_MS), b))
                .output(
                    "log",
                    Log {
                        root: scratch.join("log"),
                    },
                );
            generated
        }
        Query::Q13 => {
            let path = scratch.join("side_input.txt");
            if !path.exists() {
                write_side_input(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let side = Arc::new(read_side_input(&path)?);
            let source = NexmarkSource::new(config, events, |e| match e {
                Event::Bid(b) => Some((
                    b.auction as u64,
                    b.bidder as u64,
                    b.price as u64,
                    b.date_time as i64,
                )),
                _ => None,
            });
            let generated = source.counter();
            flow.input("bids", source)
                .map("side_join", move |(auction, bidder, price, ts)| Row::Q13 {
                    auction,
                    bidder,
                    price,
                    ts,
                    value: side[(auction % SIDE_ROWS) as usize].clone(),
                })
                .output("out", rows);
            generated
        }
        Query::Q14 => {
            let source = NexmarkSource::new(config, events, BidRow::of);
            let generated = source.counter();
            flow.input("bids", source)
                .filter_map("calculate", |b: BidRow| {
                    // 0.908 * price strictly between 1,000,000 and 50,000,000.
                    let price_milli = b.price.checked_mul(908)?;
                    (1_000_000_000 < price_milli && price_milli < 50_000_000_000).then(|| Row::Q14 {
                        auction: b.auction,
                        bidder: b.bidder,
                        price_milli,
                        time_type: time_type(b.ts),
                        ts: b.ts,
                        c_counts: b.extra.bytes().filter(|c| *c == b'c').count() as u64,
                        extra: b.extra,
                    })
                })
                .output("out", rows);
            generated
        }
        Query::Q21 => {
            let source = NexmarkSource::new(config, events, BidRow::of);
            let generated = source.counter();
            flow.input("bids", source)
                .filter_map("channel_ids", |b: BidRow| {
                    Some(Row::Q21 {
                        channel_id: channel_id(&b.channel, &b.url)?,
                        auction: b.auction,
                        bidder: b.bidder,
                        price: b.price,
                        channel: b.channel,
                    })
                })
                .output("out", rows);
            generated
        }
        Query::Q22 => {
            let source = NexmarkSource::new(config, events, BidRow::of);
            let generated = source.counter();
            flow.input("bids", source)
                .map("directories", |b: BidRow| Row::Q22 {
                    dirs: url_dirs(&b.url),
                    auction: b.auction,
                    bidder: b.bidder,
                    price: b.price,
                    channel: b.channel,
                })
                .output("out", rows);
            generated
        }
        other => return Err(format!("{other:?} is not a stateless query")),
    })
}
