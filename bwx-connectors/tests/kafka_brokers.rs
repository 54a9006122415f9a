//! Kafka connector tests against real brokers (feature `kafka`; Avro with `avro`).
//!
//! They run only when `BWX_KAFKA_BROKERS` lists brokers (comma-separated, each an
//! independent broker, e.g. `127.0.0.1:19092,127.0.0.1:29092` as started by
//! `scripts/kafka-brokers.sh start`); every test runs against each broker in turn, except
//! the broker-restart test, which starts (and restarts) a noida-db broker of its own on a
//! free port through the same script, and skips when the brokers are not installed.
#![cfg(feature = "kafka")]

mod kafka_common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bwx_connectors::kafka::{self, JsonDeserializer, KafkaConfig, KafkaSink, KafkaSinkMessage, KafkaSource};
use bwx_runtime::prelude::*;
use bwx_runtime::run_workers;
use bwx_runtime::testing::{TestingSink, TestingSource};
use kafka_common::{MemoryRecovery, produce, unique_topic};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

fn brokers() -> Vec<String> {
    match std::env::var("BWX_KAFKA_BROKERS") {
        Ok(list) => list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        Err(_) => {
            eprintln!("BWX_KAFKA_BROKERS is not set: skipping the real-broker tests");
            Vec::new()
        }
    }
}

fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create topic");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t} on {brokers}: {e}"));
    }
}

fn config(brokers: &str) -> KafkaConfig {
    KafkaConfig::new(brokers).set("session.timeout.ms", "6000")
}

fn value_of(m: &bwx_connectors::kafka::KafkaSourceMessage) -> u64 {
    String::from_utf8_lossy(m.value.as_deref().unwrap_or_default())
        .parse()
        .unwrap_or(u64::MAX)
}

const N: u64 = 100_000;

#[test]
fn produce_and_consume_100k_messages() {
    for b in brokers() {
        let topic = unique_topic("big");
        create_topic(&b, &topic, 4);
        // Write with a flow on two workers...
        let flow = Dataflow::new("write");
        flow.input("in", TestingSource::new(0..N).batch_size(1000))
            .map("msg", |i: u64| {
                KafkaSinkMessage::new(
                    Some((i % 13).to_string().into_bytes()),
                    Some(i.to_string().into_bytes()),
                )
                .partition((i % 4) as i32)
            })
            .output("out", KafkaSink::new(config(&b), Some(&topic)));
        run_workers(&flow, 2, RunConfig::default()).unwrap();
        // ...and read it back with a flow on two workers.
        let flow = Dataflow::new("read");
        let (oks, errs) = (TestingSink::new(), TestingSink::new());
        let out = kafka::input(
            &flow,
            "in",
            KafkaSource::new(config(&b), [topic.as_str()]).tail(false),
        );
        out.oks.map("v", |m| value_of(&m)).output("oks", oks.clone());
        out.errs.output("errs", errs.clone());
        run_workers(&flow, 2, RunConfig::default()).unwrap();
        let got = oks.take();
        assert!(errs.take().is_empty(), "{b}");
        assert_eq!(got.len() as u64, N, "{b}: every message once");
        let unique: BTreeSet<u64> = got.into_iter().collect();
        assert_eq!(unique, (0..N).collect(), "{b}");
    }
}

#[test]
fn resume_from_stored_offsets_loses_and_repeats_nothing() {
    for b in brokers() {
        let topic = unique_topic("resume");
        create_topic(&b, &topic, 3);
        let hook = Arc::new(MemoryRecovery::default());
        let run = |out: &TestingSink<u64>| {
            let flow = Dataflow::new("resume");
            flow.input(
                "in",
                KafkaSource::new(config(&b), [topic.as_str()])
                    .tail(false)
                    .batch_size(100),
            )
            .map("v", |m| value_of(&m))
            .output("out", out.clone());
            run_workers(&flow, 2, RunConfig::default().recovery(hook.next())).unwrap();
        };
        produce(
            &b,
            &topic,
            (0..3000u64).map(|i| (vec![], i.to_string().into_bytes(), (i % 3) as i32)),
        );
        let first = TestingSink::new();
        run(&first);
        produce(
            &b,
            &topic,
            (3000..5000u64).map(|i| (vec![], i.to_string().into_bytes(), (i % 3) as i32)),
        );
        let second = TestingSink::new();
        run(&second);
        let (mut a, mut c) = (first.take(), second.take());
        a.sort();
        c.sort();
        assert_eq!(a, (0..3000).collect::<Vec<_>>(), "{b}");
        assert_eq!(
            c,
            (3000..5000).collect::<Vec<_>>(),
            "{b}: the second run starts at the stored offsets"
        );
    }
}

#[test]
fn corrupt_payloads_go_to_errs() {
    for b in brokers() {
        let topic = unique_topic("corrupt");
        create_topic(&b, &topic, 2);
        let msgs = (0..200u64).map(|i| {
            let v = if i % 10 == 3 {
                b"\xff{garbage".to_vec()
            } else {
                format!("[{i}]").into_bytes()
            };
            (vec![], v, (i % 2) as i32)
        });
        produce(&b, &topic, msgs);
        let flow = Dataflow::new("corrupt");
        let (oks, errs) = (TestingSink::new(), TestingSink::new());
        let msgs = kafka::input(
            &flow,
            "in",
            KafkaSource::new(config(&b), [topic.as_str()]).tail(false),
        );
        let decoded = kafka::deserialize_value(&msgs.oks, "json", JsonDeserializer::<Vec<u64>>::new());
        decoded
            .oks
            .map("v", |m| m.value.unwrap_or_default())
            .output("oks", oks.clone());
        decoded.errs.output("errs", errs.clone());
        run_workers(&flow, 2, RunConfig::default()).unwrap();
        let mut good: Vec<u64> = oks.take().into_iter().flatten().collect();
        good.sort();
        assert_eq!(good, (0..200).filter(|i| i % 10 != 3).collect::<Vec<_>>(), "{b}");
        let errs = errs.take();
        assert_eq!(errs.len(), 20, "{b}");
        assert!(
            errs.iter()
                .all(|e| e.message.value.as_deref() == Some(&b"\xff{garbage"[..]))
        );
        assert!(
            errs.iter().all(|e| e.error.contains("invalid JSON")),
            "{}",
            errs[0].error
        );
    }
}

#[cfg(feature = "avro")]
#[test]
fn avro_round_trip_through_the_schema_registry() {
    use bwx_connectors::kafka::serde::{
        ConfluentAvroDeserializer, ConfluentAvroSerializer, SchemaType, SubjectNameStrategy, SuppliedSchema,
    };

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Reading {
        sensor: String,
        value: f64,
    }
    const SCHEMA: &str = r#"{"type":"record","name":"Reading","namespace":"bwx.test","fields":[
        {"name":"sensor","type":"string"},{"name":"value","type":"double"}]}"#;

    let registry = kafka_common::registry::MockRegistry::start();
    for b in brokers() {
        let topic = unique_topic("avro");
        create_topic(&b, &topic, 2);
        let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
            topic.clone(),
            false,
            SuppliedSchema::new(Some("bwx.test.Reading".into()), SchemaType::Avro, SCHEMA.into()),
        );
        let readings: Vec<Reading> = (0..500)
            .map(|i| Reading {
                sensor: format!("s{}", i % 5),
                value: i as f64,
            })
            .collect();
        let flow = Dataflow::new("avro_out");
        let msgs = flow
            .input("in", TestingSource::new(readings.clone()))
            .map("msg", |r: Reading| {
                KafkaSinkMessage::new(Some(r.sensor.clone().into_bytes()), r)
            });
        let encoded = kafka::serialize_value(
            &msgs,
            "encode",
            ConfluentAvroSerializer::new(&registry.url, strategy),
        );
        encoded.errs.map("why", |e| e.error).raises("encode_failed");
        kafka::output(&encoded.oks, "out", KafkaSink::new(config(&b), Some(&topic)));
        run_workers(&flow, 2, RunConfig::default()).unwrap();
        assert_eq!(registry.schema_count(), 1, "one schema registered");

        // The bytes on the topic are Confluent-framed: magic byte 0 and the schema id.
        let raw = kafka_common::read_all(&b, &topic, 2, 1);
        assert_eq!(
            raw[0].1.as_deref().map(|v| &v[..5]),
            Some(&[0u8, 0, 0, 0, 1][..]),
            "{b}"
        );

        let flow = Dataflow::new("avro_in");
        let (oks, errs) = (TestingSink::new(), TestingSink::new());
        let msgs = kafka::input(
            &flow,
            "in",
            KafkaSource::new(config(&b), [topic.as_str()]).tail(false),
        );
        let decoded = kafka::deserialize_value(
            &msgs.oks,
            "decode",
            ConfluentAvroDeserializer::<Reading>::new(&registry.url),
        );
        decoded
            .oks
            .filter_map("v", |m| m.value)
            .output("oks", oks.clone());
        decoded.errs.output("errs", errs.clone());
        run_workers(&flow, 2, RunConfig::default()).unwrap();
        assert!(errs.take().is_empty(), "{b}");
        let mut got = oks.take();
        got.sort_by(|x, y| x.value.total_cmp(&y.value));
        assert_eq!(got, readings, "{b}");
    }
}

/// A noida-db broker of this test's own, on a free port, managed by `scripts/kafka-brokers.sh`;
/// stopped, and its files deleted, when dropped.
struct OwnBroker {
    port: u16,
}

impl OwnBroker {
    /// Starts the broker, or `None` (with a message) when the brokers are not installed.
    fn start() -> Option<OwnBroker> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port")
            .port();
        let broker = OwnBroker { port };
        match broker.script("start").code() {
            Some(0) => Some(broker),
            Some(3) => {
                eprintln!("the brokers are not installed (run scripts/kafka-brokers.sh start): skipping");
                None
            }
            other => panic!("scripts/kafka-brokers.sh start noida on port {port} failed: {other:?}"),
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn script(&self, command: &str) -> std::process::ExitStatus {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/kafka-brokers.sh");
        // Both ports name the instance's directory: the same free port keeps it unique.
        std::process::Command::new(script)
            .args([command, "noida"])
            .env("KAFKA_NOIDA_PORT", self.port.to_string())
            .env("KAFKA_TANSU_PORT", self.port.to_string())
            .env("KAFKA_NO_INSTALL", "1")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {script}: {e}"))
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.script("clean");
    }
}

/// Reads `topic` from the beginning until every value in `0..n` was seen or `within` passed;
/// returns the values seen (duplicates collapse).
fn values_in(brokers: &str, topic: &str, partitions: i32, n: u64, within: Duration) -> BTreeSet<u64> {
    use rdkafka::message::Message;
    let consumer = kafka_common::reader_from_beginning(brokers, topic, partitions);
    let mut seen = BTreeSet::new();
    let deadline = std::time::Instant::now() + within;
    while (seen.len() as u64) < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).parse::<u64>();
            seen.extend(v.ok().filter(|v| *v < n));
        }
    }
    seen
}

#[test]
fn at_least_once_with_no_loss_across_a_broker_restart() {
    // Runs on a broker of its own (it restarts it), when real-broker tests are on at all.
    if brokers().is_empty() {
        return;
    }
    let Some(broker) = OwnBroker::start() else { return };
    let b = broker.address();
    let (input, output) = (unique_topic("restart-in"), unique_topic("restart-out"));
    create_topic(&b, &input, 2);
    create_topic(&b, &output, 2);
    let numbered = |r: std::ops::Range<u64>| r.map(|i| (vec![], i.to_string().into_bytes(), (i % 2) as i32));
    const TOTAL: u64 = 6000;
    produce(&b, &input, numbered(0..2000));

    // A flow that follows the input topic and copies it, with recovery and short epochs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flow = Dataflow::new("copy");
    let source = KafkaSource::new(config(&b), [input.as_str()]).batch_size(100);
    flow.input("in", source)
        .map("msg", |m| KafkaSinkMessage::new(None, m.value))
        .output("out", KafkaSink::new(config(&b), Some(&output)));
    let run_config = RunConfig::default()
        .epoch_interval(Duration::from_millis(200))
        .recovery(MemoryRecovery::default().next())
        .stop_flag(stop.clone());
    let running = std::thread::spawn(move || run_workers(&flow, 2, run_config));
    let copied = values_in(&b, &output, 2, 2000, Duration::from_secs(20));
    assert_eq!(copied.len(), 2000, "{b}: the flow copies before the restart");

    // Messages go in while the broker restarts (librdkafka buffers and retries them)...
    let during = {
        let b = b.clone();
        let input = input.clone();
        std::thread::spawn(move || {
            for chunk in (2000..4000u64).collect::<Vec<_>>().chunks(200) {
                produce(&b, &input, numbered(chunk[0]..chunk[0] + chunk.len() as u64));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // noida-db's Kafka service restarts in place, keeping its data: every client connection
    // drops (the flow sees "all brokers down"). A restart of the whole process is no good
    // here: noida-db then sometimes loses writes it had acknowledged.
    assert!(
        broker.script("restart-service").success(),
        "{b}: restart the broker"
    );
    during.join().expect("produce during the restart");
    // ...and after it.
    produce(&b, &input, numbered(4000..TOTAL));

    let copied = values_in(&b, &output, 2, TOTAL, Duration::from_secs(30));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    running.join().unwrap().expect("the flow rides out the restart");
    let missing: Vec<u64> = (0..TOTAL).filter(|v| !copied.contains(v)).collect();
    if !missing.is_empty() {
        let stored = values_in(&b, &input, 2, TOTAL, Duration::from_secs(10));
        let in_input = missing.iter().filter(|v| stored.contains(v)).count();
        panic!(
            "{b}: {} of {TOTAL} messages lost across the restart ({in_input} of them are in the input topic), first {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
    }
}
