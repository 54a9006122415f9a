//! Kafka in, aggregate, Kafka out.
//!
//! Writes `N` JSON sensor readings to the topic `bwx-readings` (3 partitions), then runs
//! the pipeline on 2 workers: read the readings until the end of the partitions, decode
//! them (undecodable ones are printed from the `errs` stream), compute count / mean /
//! min / max per sensor, and write one JSON summary per sensor to `bwx-stats`, keyed by
//! sensor. Finally it reads `bwx-stats` back and prints it.
//!
//! Start a broker (see `scripts/kafka-brokers.sh start`), then:
//!
//! ```sh
//! cargo run --example kafka_pipeline --features kafka -- 127.0.0.1:19092 100000
//! ```

use std::time::{Duration, Instant};

use bwx::connectors::kafka::rdkafka::ClientConfig;
use bwx::connectors::kafka::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use bwx::connectors::kafka::rdkafka::client::DefaultClientContext;
use bwx::connectors::kafka::rdkafka::types::RDKafkaErrorCode;
use bwx::connectors::kafka::{
    self, JsonDeserializer, JsonSerializer, KafkaConfig, KafkaSink, KafkaSinkMessage, KafkaSource,
};
use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};
use serde::{Deserialize, Serialize};

const READINGS: &str = "bwx-readings";
const STATS: &str = "bwx-stats";
const SENSORS: u64 = 10;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    value: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stats {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn new() -> Self {
        Stats {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    fn add(mut self, v: f64) -> Self {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self
    }
}

/// Creates a topic unless it exists.
fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = rt.block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &options,
    ))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("cannot create topic {t}: {e}"),
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:19092".into());
    let n: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let config = KafkaConfig::new(&brokers);
    let suffix = std::process::id();
    let (readings_topic, stats_topic) = (format!("{READINGS}-{suffix}"), format!("{STATS}-{suffix}"));
    create_topic(&brokers, &readings_topic, 3)?;
    create_topic(&brokers, &stats_topic, 1)?;

    // 1. Seed the input topic; one reading in 1000 is not JSON, to show the errs stream.
    let seed = Dataflow::new("seed");
    let topic = readings_topic.clone();
    seed.input("gen", TestingSource::new(0..n).batch_size(1000))
        .map("msg", move |i: u64| {
            let sensor = format!("sensor-{}", i % SENSORS);
            let value = if i % 1000 == 999 {
                b"{broken".to_vec()
            } else {
                format!(r#"{{"sensor":"{sensor}","value":{}}}"#, (i % 97) as f64 / 10.0).into_bytes()
            };
            KafkaSinkMessage::new(Some(sensor.into_bytes()), Some(value)).topic(&topic)
        })
        .output("out", KafkaSink::new(config.clone(), None));
    bwx::run_main(&seed)?;

    // 2. The pipeline: Kafka in, decode, aggregate per sensor, encode, Kafka out.
    let started = Instant::now();
    let flow = Dataflow::new("sensor_stats");
    let input = kafka::input(
        &flow,
        "in",
        KafkaSource::new(config.clone(), [readings_topic.as_str()]).tail(false),
    );
    input
        .errs
        .inspect("consumer_errors", |_, e| eprintln!("consumer error: {}", e.error));
    let decoded = kafka::deserialize_value(&input.oks, "decode", JsonDeserializer::<Reading>::new());
    decoded
        .errs
        .inspect("bad_readings", |_, e| eprintln!("skipped: {}", e.error));
    let stats = decoded
        .oks
        .filter_map("reading", |m| m.value)
        .map("key", |r: Reading| (r.sensor, r.value))
        .fold_final("stats", Stats::new, Stats::add);
    let out = stats.map("msg", |(sensor, s): (String, Stats)| {
        KafkaSinkMessage::new(Some(sensor.into_bytes()), s)
    });
    let encoded = kafka::serialize_value(&out, "encode", JsonSerializer);
    encoded
        .errs
        .inspect("unencodable", |_, e| eprintln!("cannot encode: {}", e.error));
    kafka::output(
        &encoded.oks,
        "out",
        KafkaSink::new(config.clone(), Some(&stats_topic)),
    );
    bwx::run_workers(&flow, 2, RunConfig::default())?;
    println!("aggregated {n} readings in {:.2?}", started.elapsed());

    // 3. Read the summaries back.
    let check = Dataflow::new("check");
    let got = TestingSink::new();
    let msgs = kafka::input(
        &check,
        "in",
        KafkaSource::new(config, [stats_topic.as_str()]).tail(false),
    );
    msgs.errs
        .inspect("errs", |_, e| eprintln!("consumer error: {}", e.error));
    kafka::deserialize_value(&msgs.oks, "decode", JsonDeserializer::<Stats>::new())
        .oks
        .map("pair", |m| {
            (
                String::from_utf8_lossy(&m.key.unwrap_or_default()).into_owned(),
                m.value,
            )
        })
        .output("out", got.clone());
    bwx::run_main(&check)?;
    let mut rows = got.take();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    for (sensor, s) in rows.into_iter().filter_map(|(k, s)| Some((k, s?))) {
        println!(
            "{sensor}: count {} mean {:.3} min {} max {}",
            s.count,
            s.sum / s.count as f64,
            s.min,
            s.max
        );
    }
    Ok(())
}
