//! Kafka → bwx → Kafka throughput, next to raw rdkafka consume + produce, measured the
//! same way in the same run against the same broker.
//!
//! Seeds `N` messages of 100 bytes into a 4-partition topic, then copies the topic to a
//! new topic with (a) one thread of raw rdkafka (one consumer assigned all partitions,
//! one producer), flushing once at the end or whenever the consumer's local queue is
//! drained, and (b) a bwx flow `kafka::input` → `kafka::output` on 1 and 2 workers (which
//! flushes after each activation of the sink, for at-least-once). Each copy ends when every message is
//! read (tail off) and acknowledged by the broker.
//!
//! ```sh
//! cargo run --release --example kafka_bench --features kafka -- 127.0.0.1:29092 500000
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

/// One thread: consume every partition to its end and produce each message to `to`;
/// with `flush_every_poll`, flush whenever the consumer's local queue is drained (the
/// sink's at-least-once discipline), otherwise once at the end.
fn raw_copy(brokers: &str, from: &str, to: &str, n: u64, flush_every_poll: bool) -> anyhow::Result<Duration> {
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
            None if flush_every_poll => flush(&p)?,
            None => {}
        }
    }
    flush(&p)?;
    Ok(started.elapsed())
}

fn bwx_copy(brokers: &str, from: &str, to: &str, workers: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let config = KafkaConfig::new(brokers);
    let flow = Dataflow::new("copy");
    let msgs = kafka::input(&flow, "in", KafkaSource::new(config.clone(), [from]).tail(false));
    msgs.errs.map("why", |e| e.error).raises("consumer_error");
    kafka::output(&msgs.oks, "out", KafkaSink::new(config, Some(to)));
    bwx::run_workers(&flow, workers, RunConfig::default())?;
    Ok(started.elapsed())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:29092".into());
    let n: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(500_000);
    let id = std::process::id();
    let source = format!("bench-in-{id}");
    create_topic(&brokers, &source)?;
    let t = Instant::now();
    seed(&brokers, &source, n)?;
    let seeded = t.elapsed();
    println!(
        "broker {brokers}, {n} messages of 100 B, {PARTITIONS} partitions; seeding (produce only): {:.0} msg/s",
        n as f64 / seeded.as_secs_f64()
    );
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    for round in 0..2 {
        let out = format!("bench-raw-{id}-{round}");
        create_topic(&brokers, &out)?;
        let d = raw_copy(&brokers, &source, &out, n, false)?;
        println!(
            "raw rdkafka consume+produce, 1 thread, one flush:       {:>9.0} msg/s ({d:.2?})",
            rate(d)
        );
        let out = format!("bench-rawf-{id}-{round}");
        create_topic(&brokers, &out)?;
        let d = raw_copy(&brokers, &source, &out, n, true)?;
        println!(
            "raw rdkafka consume+produce, 1 thread, flush per poll:  {:>9.0} msg/s ({d:.2?})",
            rate(d)
        );
        for workers in [1, 2] {
            let out = format!("bench-bwx-{id}-{round}-{workers}");
            create_topic(&brokers, &out)?;
            let d = bwx_copy(&brokers, &source, &out, workers)?;
            println!(
                "bwx Kafka -> Kafka, {workers} worker(s), flush per activation: {:>9.0} msg/s ({d:.2?})",
                rate(d)
            );
        }
    }
    Ok(())
}
