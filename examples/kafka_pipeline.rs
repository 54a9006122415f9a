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
    self, Bytes, JsonDeserializer, JsonSerializer, KafkaConfig, KafkaSink, KafkaSinkMessage, KafkaSource,
    KafkaSourceMessage, SinkOut, SourceOut,
};
use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};
use serde::{Deserialize, Serialize};

const READINGS: &str = "bwx-readings";
const STATS: &str = "bwx-stats";
/// How many sensors the seeded readings come from.
pub const SENSORS: u64 = 10;

/// One reading, as JSON in the input topic.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reading {
    /// The sensor's name, `sensor-N`.
    pub sensor: String,
    /// What it measured.
    pub value: f64,
}

/// A sensor's summary, as JSON in the output topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of readings.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Stats {
    /// No readings yet.
    pub fn empty() -> Self {
        Stats {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Adds a reading.
    pub fn with_reading(mut self, v: f64) -> Self {
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

/// The seeded reading `i`: JSON for a sensor, or (one in 1000) not JSON at all, to show the
/// `errs` stream.
pub fn seed_message(i: u64, topic: &str) -> KafkaSinkMessage {
    let sensor = format!("sensor-{}", i % SENSORS);
    let value = if i % 1000 == 999 {
        b"{broken".to_vec()
    } else {
        format!(r#"{{"sensor":"{sensor}","value":{}}}"#, (i % 97) as f64 / 10.0).into_bytes()
    };
    KafkaSinkMessage::new(Some(sensor.into_bytes()), Some(value)).topic(topic)
}

/// Writes `n` readings to `topic`.
pub fn seed_flow(config: &KafkaConfig, topic: &str, n: u64) -> Dataflow {
    let topic = topic.to_string();
    bwx::dataflow!(seed {
        nums = input(TestingSource::new(0..n).batch_size(1000));
        msg  = nums.map(move |i: u64| seed_message(i, &topic));
        out  = msg.output(KafkaSink::new(config.clone(), None));
    })
}

// `dataflow!` calls a sub-flow as `f(&flow, "binding", args...)` with streams by reference
// (as `kafka::input` is written); the Kafka codec steps take their stream first, so these
// put the flow first.

fn decode_readings(
    _flow: &Dataflow,
    step: &str,
    msgs: &Stream<KafkaSourceMessage>,
) -> SourceOut<Bytes, Option<Reading>, Bytes, Bytes> {
    kafka::deserialize_value(msgs, step, JsonDeserializer::new())
}

fn decode_stats(
    _flow: &Dataflow,
    step: &str,
    msgs: &Stream<KafkaSourceMessage>,
) -> SourceOut<Bytes, Option<Stats>, Bytes, Bytes> {
    kafka::deserialize_value(msgs, step, JsonDeserializer::new())
}

fn encode(
    _flow: &Dataflow,
    step: &str,
    msgs: &Stream<KafkaSinkMessage<Bytes, Stats>>,
) -> SinkOut<Bytes, Bytes, Bytes, Stats> {
    kafka::serialize_value(msgs, step, JsonSerializer)
}

/// The pipeline: Kafka in, decode, aggregate per sensor, encode, Kafka out. The `oks` and
/// `errs` of the Kafka steps are ports of their bindings.
pub fn stats_flow(config: &KafkaConfig, readings_topic: &str, stats_topic: &str) -> Dataflow {
    bwx::dataflow!(sensor_stats {
        readings   = kafka::input(KafkaSource::new(config.clone(), [readings_topic]).tail(false));
        _consumer_errors = readings.errs.inspect(|_, e| eprintln!("consumer error: {}", e.error));
        decoded    = decode_readings(readings.oks);
        _bad_readings = decoded.errs.inspect(|_, e| eprintln!("skipped: {}", e.error));
        by_sensor  = decoded.oks.filter_map(|m| m.value).map(|r: Reading| (r.sensor, r.value));
        stats      = by_sensor.fold_final(Stats::empty, Stats::with_reading);
        msg        = stats.map(|(sensor, s): (String, Stats)| KafkaSinkMessage::new(Some(sensor.into_bytes()), s));
        encoded    = encode(msg);
        _unencodable = encoded.errs.inspect(|_, e| eprintln!("cannot encode: {}", e.error));
        out        = encoded.oks.output(KafkaSink::new(config.clone(), Some(stats_topic)));
    })
}

/// Reads the summaries back into `got` as (sensor, stats).
pub fn check_flow(
    config: &KafkaConfig,
    stats_topic: &str,
    got: TestingSink<(String, Option<Stats>)>,
) -> Dataflow {
    bwx::dataflow!(check {
        msgs    = kafka::input(KafkaSource::new(config.clone(), [stats_topic]).tail(false));
        _errs   = msgs.errs.inspect(|_, e| eprintln!("consumer error: {}", e.error));
        decoded = decode_stats(msgs.oks);
        pair    = decoded.oks.map(|m| (String::from_utf8_lossy(&m.key.unwrap_or_default()).into_owned(), m.value));
        out     = pair.output(got);
    })
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

    // 1. Seed the input topic.
    bwx::run_main(&seed_flow(&config, &readings_topic, n))?;

    // 2. The pipeline, on 2 workers.
    let started = Instant::now();
    bwx::run_workers(
        &stats_flow(&config, &readings_topic, &stats_topic),
        2,
        RunConfig::default(),
    )?;
    println!("aggregated {n} readings in {:.2?}", started.elapsed());

    // 3. Read the summaries back.
    let got = TestingSink::new();
    bwx::run_main(&check_flow(&config, &stats_topic, got.clone()))?;
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
