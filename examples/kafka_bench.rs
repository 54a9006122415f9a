//! Kafka → bwx → Kafka throughput, next to raw rdkafka consume + produce, measured the
//! same way in the same run against the same broker.
//!
//! Seeds `N` messages of 100 bytes into a 4-partition topic, then copies the topic to a
//! new topic, `ROUNDS` times (default 3) with each of: (a) one thread of raw rdkafka (one
//! consumer assigned all partitions, one producer, one flush at the end), (b) a bwx flow
//! `kafka::input` → `kafka::output` on 1 and 2 workers with the default 10 s epochs (the
//! sink flushes once per epoch and at the end), and (c) the same on 1 worker with 100 ms
//! epochs, to show the cost of frequent flushes; (d) with recovery on (a SQLite store in the
//! temporary directory), the at-least-once sink and the exactly-once sink
//! ([`KafkaSink::exactly_once`], 4 slots, keyed by the message key) on 1 worker at 1 s and
//! at the default 10 s epochs. Each copy ends when every message is read (tail off) and
//! acknowledged by the broker (committed, for exactly-once). The exactly-once copies need a
//! broker with transactions (noida-db, not tansu); `BWX_BENCH_NO_EOS=1` leaves them out.
//!
//! Each copy is timed in three parts: start (until the first message is read), steady
//! (first message read to last message handed to the producer: the rate that compares
//! copiers) and stop (the last flush and the shutdown). The number of rounds is odd (an even
//! one is raised by one) so that the median is a true middle value. Prints each round and
//! the medians.
//!
//! With `BWX_BENCH_PYTHON` naming a Python that has `confluent-kafka` (the PyPI client on
//! librdkafka), a one-thread confluent-kafka consume->produce copy runs in each round too.
//! `BWX_BENCH_RECOVERY_ONLY=1` runs raw rdkafka and the copies with recovery only (the
//! exactly-once comparison), and the ratios of exactly-once to at-least-once are printed
//! per round, overall and steady.
//!
//! ```sh
//! cargo run --release --example kafka_bench --features kafka -- 127.0.0.1:29092 500000 3
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bwx::connectors::kafka::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use bwx::connectors::kafka::rdkafka::client::DefaultClientContext;
use bwx::connectors::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use bwx::connectors::kafka::rdkafka::error::KafkaError;
use bwx::connectors::kafka::rdkafka::message::Message;
use bwx::connectors::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use bwx::connectors::kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use bwx::connectors::kafka::{self, KafkaConfig, KafkaSink, KafkaSource};
use bwx::prelude::*;
use bwx::recovery::SqliteRecovery;

const PARTITIONS: i32 = 4;

fn create_topic(brokers: &str, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in rt.block_on(admin.create_topics(
        &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
        &options,
    ))? {
        r.map_err(|(t, e)| anyhow::anyhow!("cannot create topic {t}: {e}"))?;
    }
    Ok(())
}

fn producer(brokers: &str) -> anyhow::Result<BaseProducer> {
    Ok(ClientConfig::new().set("bootstrap.servers", brokers).create()?)
}

/// Sends one record, serving delivery reports while the local queue is full.
fn send(p: &BaseProducer, mut record: BaseRecord<'_, [u8], [u8]>) -> anyhow::Result<()> {
    loop {
        match p.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(_), r)) => {
                p.poll(Duration::from_millis(1));
                record = r;
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

fn seed(brokers: &str, topic: &str, n: u64) -> anyhow::Result<()> {
    let p = producer(brokers)?;
    let value = [b'x'; 100];
    for i in 0..n {
        let key = i.to_le_bytes();
        let record = BaseRecord::to(topic)
            .key(&key[..])
            .payload(&value[..])
            .partition((i % PARTITIONS as u64) as i32);
        send(&p, record)?;
    }
    p.flush(Duration::from_secs(120))?;
    Ok(())
}

/// Flushes in 1 ms slices, as the sink does.
fn flush(p: &BaseProducer) -> anyhow::Result<()> {
    loop {
        match p.flush(Duration::from_millis(1)) {
            Ok(()) => return Ok(()),
            Err(KafkaError::Flush(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// One copy's times: start (to the first message read), steady (first read to last
/// handed to the producer), stop (the rest: last flush and shutdown).
#[derive(Clone, Copy)]
struct Timing {
    start: Duration,
    steady: Duration,
    stop: Duration,
}

impl Timing {
    fn new(started: Instant, first: Instant, last: Instant, ended: Instant) -> Timing {
        Timing {
            start: first - started,
            steady: last - first,
            stop: ended - last,
        }
    }

    fn total(&self) -> Duration {
        self.start + self.steady + self.stop
    }

    /// Messages per second between the first and the last message.
    fn steady_rate(&self, n: u64) -> f64 {
        (n - 1) as f64 / self.steady.as_secs_f64()
    }
}

/// One thread: consume every partition to its end, produce each message to `to`, and
/// flush once at the end (as bwx's sink does when the copy fits in one epoch).
fn raw_copy(brokers: &str, from: &str, to: &str, n: u64) -> anyhow::Result<Timing> {
    let started = Instant::now();
    let (mut first, mut last) = (None, started);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bwx-bench-raw")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(from, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let p = producer(brokers)?;
    let mut copied = 0;
    while copied < n {
        match consumer.poll(Duration::ZERO) {
            Some(Ok(m)) => {
                let mut record = BaseRecord::to(to);
                if let Some(k) = m.key() {
                    record = record.key(k);
                }
                if let Some(v) = m.payload() {
                    record = record.payload(v);
                }
                send(&p, record)?;
                p.poll(Duration::ZERO);
                copied += 1;
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    flush(&p)?;
    drop((consumer, p));
    Ok(Timing::new(
        started,
        first.unwrap_or(started),
        last,
        Instant::now(),
    ))
}

fn bwx_copy(
    brokers: &str,
    from: &str,
    to: &str,
    workers: usize,
    epoch: Duration,
    n: u64,
) -> anyhow::Result<Timing> {
    let started = Instant::now();
    // Nanoseconds after `started` of the first and the last message passing to the sink.
    let (count, first, last) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let config = KafkaConfig::new(brokers);
    let flow = Dataflow::new("copy");
    let msgs = kafka::input(&flow, "in", KafkaSource::new(config.clone(), [from]).tail(false));
    msgs.errs.map("why", |e| e.error).raises("consumer_error");
    let timed = {
        let (count, first, last) = (count.clone(), first.clone(), last.clone());
        msgs.oks.inspect("time", move |_, _| {
            let c = count.fetch_add(1, Ordering::Relaxed) + 1;
            if c == 1 {
                first.store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            if c == n {
                last.store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
        })
    };
    kafka::output(&timed, "out", KafkaSink::new(config, Some(to)));
    bwx::run_workers(&flow, workers, RunConfig::default().epoch_interval(epoch))?;
    let at = |ns: &AtomicU64| started + Duration::from_nanos(ns.load(Ordering::Relaxed));
    Ok(Timing::new(started, at(&first), at(&last), Instant::now()))
}

/// The same copy with recovery on, through the at-least-once or the exactly-once sink.
fn bwx_recovered_copy(
    brokers: &str,
    from: &str,
    to: &str,
    epoch: Duration,
    exactly_once: bool,
    n: u64,
) -> anyhow::Result<Timing> {
    let dir = std::env::temp_dir().join(format!("bwx-bench-recovery-{}-{to}", std::process::id()));
    bwx::recovery::init_dir(&dir, 1)?;
    let store = SqliteRecovery::open(&dir, Duration::ZERO, "copy")?;
    let started = Instant::now();
    let (count, first, last) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let config = KafkaConfig::new(brokers);
    let flow = Dataflow::new("copy");
    let msgs = kafka::input(&flow, "in", KafkaSource::new(config.clone(), [from]).tail(false));
    msgs.errs.map("why", |e| e.error).raises("consumer_error");
    let timed = {
        let (count, first, last) = (count.clone(), first.clone(), last.clone());
        msgs.oks.inspect("time", move |_, _| {
            let c = count.fetch_add(1, Ordering::Relaxed) + 1;
            if c == 1 {
                first.store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            if c == n {
                last.store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
        })
    };
    let sink = KafkaSink::new(config, Some(to));
    if exactly_once {
        let keyed = timed.map("keyed", |m| {
            let key = m
                .key
                .as_deref()
                .and_then(|k| k.try_into().ok())
                .map_or(0, u64::from_le_bytes);
            (key, m.to_sink())
        });
        keyed.output("out", sink.exactly_once(&format!("bench-{to}")));
    } else {
        kafka::output(&timed, "out", sink);
    }
    let run = bwx::run_workers(
        &flow,
        1,
        RunConfig::default().epoch_interval(epoch).recovery(store),
    );
    let ended = Instant::now();
    std::fs::remove_dir_all(&dir)?;
    run?;
    let at = |ns: &AtomicU64| started + Duration::from_nanos(ns.load(Ordering::Relaxed));
    Ok(Timing::new(started, at(&first), at(&last), ended))
}

/// The 1-minute load average, to print next to the rates.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// The middle value of an odd number of values.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The confluent-kafka copy: one thread, consume in batches of up to 1000, produce each
/// message, flush at the end; prints its start, steady and stop seconds.
const PYTHON_COPY: &str = r#"
import sys, time
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
brokers, src, dst, n, parts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
t0 = time.monotonic()
c = Consumer({"bootstrap.servers": brokers, "group.id": "bwx-bench-python", "enable.auto.commit": False})
c.assign([TopicPartition(src, p, OFFSET_BEGINNING) for p in range(parts)])
p = Producer({"bootstrap.servers": brokers})
copied, first, last = 0, None, None
while copied < n:
    for m in c.consume(1000, 0.001):
        if m.error():
            raise SystemExit(str(m.error()))
        while True:
            try:
                p.produce(dst, m.value(), m.key())
                break
            except BufferError:
                p.poll(0.001)
        copied += 1
        if first is None:
            first = time.monotonic()
    last = time.monotonic()
    p.poll(0)
p.flush()
c.close()
print(first - t0, last - first, time.monotonic() - last)
"#;

/// Copies with confluent-kafka in `python`.
fn python_copy(python: &str, brokers: &str, from: &str, to: &str, n: u64) -> anyhow::Result<Timing> {
    let out = std::process::Command::new(python)
        .args([
            "-c",
            PYTHON_COPY,
            brokers,
            from,
            to,
            &n.to_string(),
            &PARTITIONS.to_string(),
        ])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "the confluent-kafka copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(secs.len() == 3, "the confluent-kafka copy printed {secs:?}");
    Ok(Timing {
        start: Duration::from_secs_f64(secs[0]),
        steady: Duration::from_secs_f64(secs[1]),
        stop: Duration::from_secs_f64(secs[2]),
    })
}

/// What one round copies the topic with.
#[derive(Clone, Copy)]
enum Copier {
    Raw,
    Python,
    Bwx { workers: usize, epoch: Duration },
    Recovered { epoch: Duration, exactly_once: bool },
}

impl std::fmt::Display for Copier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that the caller's width lines the rates up.
        match self {
            Copier::Raw => f.pad("raw rdkafka consume+produce, 1 thread"),
            Copier::Python => f.pad("confluent-kafka (Python), 1 thread"),
            Copier::Bwx { workers, epoch } => f.pad(&format!("bwx, {workers} worker(s), {epoch:?} epochs")),
            Copier::Recovered { epoch, exactly_once } => f.pad(&format!(
                "bwx, recovery, {}, {epoch:?} epochs",
                if *exactly_once {
                    "exactly-once"
                } else {
                    "at-least-once"
                }
            )),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:29092".into());
    let n: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(500_000);
    let asked: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3).max(1);
    // An odd number of rounds, so that the median is one of them.
    let rounds = asked | 1;
    if rounds != asked {
        println!("{asked} rounds asked: running {rounds}, so that the median is a true middle value");
    }
    let id = std::process::id();
    let source = format!("bench-in-{id}");
    create_topic(&brokers, &source)?;
    let t = Instant::now();
    seed(&brokers, &source, n)?;
    let seeded = t.elapsed();
    println!(
        "broker {brokers}, {n} messages of 100 B, {PARTITIONS} partitions, {rounds} rounds; seeding (produce only): {:.0} msg/s; load {}",
        n as f64 / seeded.as_secs_f64(),
        load()
    );
    let ten_s = bwx::execution::DEFAULT_EPOCH_INTERVAL;
    let python = std::env::var("BWX_BENCH_PYTHON").ok();
    let mut copiers = vec![Copier::Raw];
    // `BWX_BENCH_RECOVERY_ONLY=1`: raw rdkafka and the copies with recovery only.
    if std::env::var_os("BWX_BENCH_RECOVERY_ONLY").is_none() {
        if python.is_some() {
            copiers.push(Copier::Python);
        }
        for (workers, epoch) in [(1, ten_s), (2, ten_s), (1, Duration::from_millis(100))] {
            copiers.push(Copier::Bwx { workers, epoch });
        }
    }
    let with_eos = std::env::var_os("BWX_BENCH_NO_EOS").is_none();
    for epoch in [Duration::from_secs(1), ten_s] {
        for exactly_once in [false, true] {
            if with_eos || !exactly_once {
                copiers.push(Copier::Recovered { epoch, exactly_once });
            }
        }
    }
    // Per copier: total rate, steady rate, start and stop seconds, one entry per round.
    let mut results: Vec<Vec<(f64, f64, f64, f64)>> = vec![Vec::new(); copiers.len()];
    for round in 0..rounds {
        // Interleaved, so that a change of load hits every copier alike.
        for (i, copier) in copiers.iter().enumerate() {
            let out = format!("bench-out-{id}-{round}-{i}");
            create_topic(&brokers, &out)?;
            let t = match *copier {
                Copier::Raw => raw_copy(&brokers, &source, &out, n)?,
                Copier::Python => {
                    python_copy(python.as_deref().unwrap_or("python3"), &brokers, &source, &out, n)?
                }
                Copier::Bwx { workers, epoch } => bwx_copy(&brokers, &source, &out, workers, epoch, n)?,
                Copier::Recovered { epoch, exactly_once } => {
                    bwx_recovered_copy(&brokers, &source, &out, epoch, exactly_once, n)?
                }
            };
            let total = n as f64 / t.total().as_secs_f64();
            let steady = t.steady_rate(n);
            results[i].push((total, steady, t.start.as_secs_f64(), t.stop.as_secs_f64()));
            println!(
                "round {round}: {copier:<42} {total:>9.0} msg/s overall, {steady:>9.0} msg/s steady, start {:.2} s, stop {:.2} s, load {}",
                t.start.as_secs_f64(),
                t.stop.as_secs_f64(),
                load()
            );
        }
    }
    let column =
        |i: usize, f: fn(&(f64, f64, f64, f64)) -> f64| median(&results[i].iter().map(f).collect::<Vec<_>>());
    let raw_steady = column(0, |r| r.1);
    let raw_total = column(0, |r| r.0);
    println!("medians over {rounds} rounds (steady and overall rates as % of raw rdkafka's):");
    for (i, copier) in copiers.iter().enumerate() {
        let (total, steady) = (column(i, |r| r.0), column(i, |r| r.1));
        println!(
            "  {copier:<42} steady {steady:>9.0} msg/s ({:.0} %), overall {total:>9.0} msg/s ({:.0} %), start {:.2} s, stop {:.2} s",
            100.0 * steady / raw_steady,
            100.0 * total / raw_total,
            column(i, |r| r.2),
            column(i, |r| r.3),
        );
    }
    // Exactly-once against at-least-once with recovery at the same epoch interval, round by
    // round: overall rates (start and stop included) and steady rates.
    for (i, copier) in copiers.iter().enumerate() {
        if let Copier::Recovered {
            epoch,
            exactly_once: true,
        } = *copier
            && let Some(at_least) = copiers
                .iter()
                .position(|c| matches!(*c, Copier::Recovered { epoch: e, exactly_once: false } if e == epoch))
        {
            let ratios = |rate: fn(&(f64, f64, f64, f64)) -> f64| -> Vec<f64> {
                results[i]
                    .iter()
                    .zip(&results[at_least])
                    .map(|(e, a)| rate(e) / rate(a))
                    .collect()
            };
            for (what, per_round) in [("overall", ratios(|r| r.0)), ("steady", ratios(|r| r.1))] {
                println!(
                    "  exactly-once / at-least-once {what} at {epoch:?} epochs: median {:.2} (rounds {:?})",
                    median(&per_round),
                    per_round.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>()
                );
            }
        }
    }
    Ok(())
}
