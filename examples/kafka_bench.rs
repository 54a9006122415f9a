//! Kafka → bwx → Kafka throughput, next to raw rdkafka consume + produce, measured the
//! same way in the same run against the same broker.
//!
//! Seeds `N` messages of 100 bytes into a 4-partition topic, then copies the topic to a
//! new topic, `ROUNDS` times (default 3) with each of: (a) one thread of raw rdkafka (one
//! consumer assigned all partitions, one producer, one flush at the end), (b) a bwx flow
//! `kafka::input` → `kafka::output` on 1 and 2 workers with the default 10 s epochs (the
//! sink flushes once per epoch and at the end), and (c) the same on 1 worker with 100 ms
//! epochs, to show the cost of frequent flushes. Each copy ends when every message is read
//! (tail off) and acknowledged by the broker. Prints each round and the medians.
//!
//! ```sh
//! cargo run --release --example kafka_bench --features kafka -- 127.0.0.1:29092 500000 3
//! ```

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

/// One thread: consume every partition to its end, produce each message to `to`, and
/// flush once at the end (as bwx's sink does when the copy fits in one epoch).
fn raw_copy(brokers: &str, from: &str, to: &str, n: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
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
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    flush(&p)?;
    Ok(started.elapsed())
}

fn bwx_copy(
    brokers: &str,
    from: &str,
    to: &str,
    workers: usize,
    epoch: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let config = KafkaConfig::new(brokers);
    let flow = Dataflow::new("copy");
    let msgs = kafka::input(&flow, "in", KafkaSource::new(config.clone(), [from]).tail(false));
    msgs.errs.map("why", |e| e.error).raises("consumer_error");
    kafka::output(&msgs.oks, "out", KafkaSink::new(config, Some(to)));
    bwx::run_workers(&flow, workers, RunConfig::default().epoch_interval(epoch))?;
    Ok(started.elapsed())
}

/// The 1-minute load average, to print next to the rates.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn median(rates: &mut [f64]) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// What one round copies the topic with.
#[derive(Clone, Copy)]
enum Copier {
    Raw,
    Bwx { workers: usize, epoch: Duration },
}

impl std::fmt::Display for Copier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that the caller's width lines the rates up.
        match self {
            Copier::Raw => f.pad("raw rdkafka consume+produce, 1 thread"),
            Copier::Bwx { workers, epoch } => f.pad(&format!("bwx, {workers} worker(s), {epoch:?} epochs")),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:29092".into());
    let n: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(500_000);
    let rounds: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3).max(1);
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
    let copiers = [
        Copier::Raw,
        Copier::Bwx {
            workers: 1,
            epoch: ten_s,
        },
        Copier::Bwx {
            workers: 2,
            epoch: ten_s,
        },
        Copier::Bwx {
            workers: 1,
            epoch: Duration::from_millis(100),
        },
    ];
    let mut rates = vec![Vec::new(); copiers.len()];
    for round in 0..rounds {
        // Interleaved, so that a change of load hits every copier alike.
        for (i, copier) in copiers.iter().enumerate() {
            let out = format!("bench-out-{id}-{round}-{i}");
            create_topic(&brokers, &out)?;
            let d = match *copier {
                Copier::Raw => raw_copy(&brokers, &source, &out, n)?,
                Copier::Bwx { workers, epoch } => bwx_copy(&brokers, &source, &out, workers, epoch)?,
            };
            let rate = n as f64 / d.as_secs_f64();
            rates[i].push(rate);
            println!(
                "round {round}: {copier:<42} {rate:>9.0} msg/s ({d:.2?}), load {}",
                load()
            );
        }
    }
    let raw = median(&mut rates[0].clone());
    println!("medians over {rounds} rounds:");
    for (copier, r) in copiers.iter().zip(&mut rates) {
        let m = median(r);
        println!("  {copier:<42} {m:>9.0} msg/s ({:.0} % of raw)", 100.0 * m / raw);
    }
    Ok(())
}
