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

/// A record whose schema references a record under another subject (which references an
/// enum under a third) through a real broker: written by a flow with
/// `ConfluentAvroSerializer::with_references`, read back by another flow that has only the
/// registry; a message whose schema references a version the registry lacks goes to `errs`
/// naming that subject and version, and the message's partition and offset.
#[cfg(feature = "avro")]
#[test]
fn avro_with_schema_references_through_a_real_broker() {
    use bwx_connectors::kafka::serde::{
        ConfluentAvroDeserializer, ConfluentAvroSerializer, SchemaReference, SchemaRegistry, SchemaType,
        SubjectName,
    };

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Unit {
        C,
        F,
    }
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Temperature {
        degrees: f64,
        unit: Unit,
    }
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Reading {
        sensor: String,
        temperature: Temperature,
    }
    const UNIT: &str = r#"{"type":"enum","name":"Unit","namespace":"bwx.test","symbols":["C","F"]}"#;
    const TEMPERATURE: &str = r#"{"type":"record","name":"Temperature","namespace":"bwx.test","fields":[
        {"name":"degrees","type":"double"},{"name":"unit","type":"bwx.test.Unit"}]}"#;
    const READING: &str = r#"{"type":"record","name":"Reading","namespace":"bwx.test","fields":[
        {"name":"sensor","type":"string"},{"name":"temperature","type":"bwx.test.Temperature"}]}"#;
    let reference = |name: &str, subject: &str, version| SchemaReference {
        name: name.into(),
        subject: subject.into(),
        version,
    };

    let registry = kafka_common::registry::MockRegistry::start();
    let client = SchemaRegistry::new(&registry.url).unwrap();
    client
        .register("bwx.test.Unit", SchemaType::Avro, UNIT, &[])
        .unwrap();
    client
        .register(
            "bwx.test.Temperature",
            SchemaType::Avro,
            TEMPERATURE,
            &[reference("bwx.test.Unit", "bwx.test.Unit", 1)],
        )
        .unwrap();
    // Another producer's schema that references a version the registry does not have.
    let orphan = client
        .register(
            "orphans-value",
            SchemaType::Avro,
            TEMPERATURE,
            &[reference("bwx.test.Unit", "bwx.test.Unit", 9)],
        )
        .unwrap();
    let orphan_id = u8::try_from(orphan).unwrap();
    for b in brokers() {
        let topic = unique_topic("avro-refs");
        create_topic(&b, &topic, 1);
        let readings: Vec<Reading> = (0..200)
            .map(|i| Reading {
                sensor: format!("s{}", i % 3),
                temperature: Temperature {
                    degrees: f64::from(i) / 2.0,
                    unit: if i % 2 == 0 { Unit::C } else { Unit::F },
                },
            })
            .collect();
        let flow = Dataflow::new("avro_refs_out");
        let msgs = flow
            .input("in", TestingSource::new(readings.clone()))
            .map("msg", {
                let topic = topic.clone();
                move |r: Reading| KafkaSinkMessage::new(Some(r.sensor.clone().into_bytes()), r).topic(&topic)
            });
        let serializer = ConfluentAvroSerializer::with_references(
            SchemaRegistry::new(&registry.url).unwrap(),
            READING,
            &[reference("bwx.test.Temperature", "bwx.test.Temperature", 1)],
            SubjectName::Topic,
        )
        .unwrap();
        let encoded = kafka::serialize_value(&msgs, "encode", serializer);
        encoded.errs.map("why", |e| e.error).raises("encode_failed");
        kafka::output(&encoded.oks, "out", KafkaSink::new(config(&b), Some(&topic)));
        run_workers(&flow, 1, RunConfig::default()).unwrap();
        // One message whose writer schema's reference is missing, at offset 200.
        produce(
            &b,
            &topic,
            [(
                b"x".to_vec(),
                vec![0, 0, 0, 0, orphan_id, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                0,
            )],
        );

        let flow = Dataflow::new("avro_refs_in");
        let (oks, errs) = (TestingSink::new(), TestingSink::new());
        let msgs = kafka::input(
            &flow,
            "in",
            KafkaSource::new(config(&b), [topic.as_str()]).tail(false),
        );
        let decoded = kafka::deserialize_value(
            &msgs.oks,
            "decode",
            ConfluentAvroDeserializer::<Reading>::new(SchemaRegistry::new(&registry.url).unwrap()),
        );
        decoded
            .oks
            .filter_map("v", |m| m.value)
            .output("oks", oks.clone());
        decoded.errs.output("errs", errs.clone());
        run_workers(&flow, 2, RunConfig::default()).unwrap();
        assert_eq!(oks.take(), readings, "{b}: in order, one partition");
        let errs = errs.take();
        assert_eq!(errs.len(), 1, "{b}");
        let e = &errs[0];
        assert_eq!((e.partition, e.offset), (Some(0), Some(200)), "{b}");
        assert!(
            e.error.contains("at offset 200")
                && e.error
                    .contains(r#"references "bwx.test.Unit" as subject "bwx.test.Unit" version 9"#),
            "{b}: {}",
            e.error
        );
    }
}

#[cfg(feature = "avro")]
#[test]
fn avro_round_trip_through_the_schema_registry() {
    use bwx_connectors::kafka::serde::{
        ConfluentAvroDeserializer, ConfluentAvroSerializer, SchemaRegistry, SubjectName,
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
        let readings: Vec<Reading> = (0..500)
            .map(|i| Reading {
                sensor: format!("s{}", i % 5),
                value: i as f64,
            })
            .collect();
        let flow = Dataflow::new("avro_out");
        let msgs = flow
            .input("in", TestingSource::new(readings.clone()))
            .map("msg", {
                let topic = topic.clone();
                move |r: Reading| KafkaSinkMessage::new(Some(r.sensor.clone().into_bytes()), r).topic(&topic)
            });
        let encoded = kafka::serialize_value(
            &msgs,
            "encode",
            ConfluentAvroSerializer::new(
                SchemaRegistry::new(&registry.url).unwrap(),
                SCHEMA,
                SubjectName::Topic,
            )
            .unwrap(),
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
            ConfluentAvroDeserializer::<Reading>::new(SchemaRegistry::new(&registry.url).unwrap()),
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

/// A broker of this test's own (`noida` or `tansu`), on a free port, managed by
/// `scripts/kafka-brokers.sh`; stopped, and its files deleted, when dropped.
struct OwnBroker {
    port: u16,
    kind: &'static str,
}

impl OwnBroker {
    /// Starts a noida-db broker, or `None` (with a message) when the brokers are not installed.
    fn start() -> Option<OwnBroker> {
        Self::start_kind("noida")
    }

    /// Starts a broker of `kind`, or `None` when the brokers are not installed.
    fn start_kind(kind: &'static str) -> Option<OwnBroker> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port")
            .port();
        let broker = OwnBroker { port, kind };
        match broker.script("start").code() {
            Some(0) => Some(broker),
            Some(3) => {
                eprintln!("the brokers are not installed (run scripts/kafka-brokers.sh start): skipping");
                None
            }
            other => panic!("scripts/kafka-brokers.sh start {kind} on port {port} failed: {other:?}"),
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn script(&self, command: &str) -> std::process::ExitStatus {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/kafka-brokers.sh");
        // Both ports name the instance's directory: the same free port keeps it unique.
        std::process::Command::new(script)
            .args([command, self.kind])
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
    let logs = captured_logs();
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
    // The outage the flow survived is told in a few warnings, not in error lines.
    let lines: Vec<String> = logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("step copy."))
        .cloned()
        .collect();
    assert!(!lines.iter().any(|l| l.contains("ERROR")), "{b}: {lines:#?}");
    assert!(lines.len() <= 20, "{b}: {} lines: {lines:#?}", lines.len());
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

/// Log lines at warn level and above, from every thread of this test process (`tracing`
/// and `log` records).
fn captured_logs() -> &'static std::sync::Mutex<Vec<String>> {
    use std::sync::{Mutex, OnceLock};
    static LOGS: OnceLock<&'static Mutex<Vec<String>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<String>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        struct Lines(&'static Mutex<Vec<String>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(buf).into_owned());
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        // `try_init` also forwards the `log` crate's records (rdkafka's default logging).
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Lines(logs))
            .finish()
            .try_init()
            .expect("install the log capture");
        logs
    })
}

fn admin(brokers: &str) -> (AdminClient<DefaultClientContext>, tokio::runtime::Runtime) {
    let admin = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (admin, rt)
}

/// Waits up to `within` for `check` to hold, polling every 100 ms; returns how long it took.
fn wait_for(within: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        if check() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// A tailing flow whose topic is deleted reports it for each partition within seconds, as
/// an error with code `UnknownTopicOrPartition`; a partition added to another topic is
/// reported as a warning. (On brokers that can add partitions and delete topics.)
#[test]
fn deleted_topics_and_added_partitions_are_reported_within_seconds() {
    use bwx_connectors::kafka::rdkafka::admin::NewPartitions;
    use bwx_connectors::kafka::rdkafka::types::RDKafkaErrorCode;
    let logs = captured_logs();
    for b in brokers() {
        let (doomed, growing) = (unique_topic("doomed"), unique_topic("growing"));
        create_topic(&b, &doomed, 2);
        create_topic(&b, &growing, 1);
        produce(
            &b,
            &doomed,
            (0..10u64).map(|i| (vec![], i.to_string().into_bytes(), (i % 2) as i32)),
        );
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flow = Dataflow::new("watch");
        let (oks, errs) = (TestingSink::new(), TestingSink::new());
        let source = KafkaSource::new(config(&b), [doomed.as_str(), growing.as_str()])
            .metadata_interval(Duration::from_secs(1));
        let out = kafka::input(&flow, "in", source);
        out.oks.map("v", |m| value_of(&m)).output("oks", oks.clone());
        out.errs.output("errs", errs.clone());
        let run_config = RunConfig::default().stop_flag(stop.clone());
        let running = std::thread::spawn(move || run_workers(&flow, 2, run_config));
        let mut read = Vec::new();
        assert!(
            wait_for(Duration::from_secs(20), || {
                read.extend(oks.take());
                read.len() == 10
            })
            .is_some(),
            "{b}: the flow reads the topic first: {read:?} {:?}",
            errs.take()
        );

        let (admin, rt) = admin(&b);
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        // tansu does not implement CreatePartitions: that half is checked on the others.
        let added = rt
            .block_on(admin.create_partitions(&[NewPartitions::new(&growing, 3)], &options))
            .map_err(|e| match e {
                bwx_connectors::kafka::rdkafka::error::KafkaError::AdminOp(code) => Some(code),
                other => other.rdkafka_error_code(),
            })
            .and_then(|mut r| r.pop().expect("one result").map_err(|(_, code)| Some(code)));
        let grew = match added {
            Ok(_) => true,
            Err(Some(RDKafkaErrorCode::UnsupportedFeature)) => {
                eprintln!("{b} cannot add partitions to a topic");
                false
            }
            Err(e) => panic!("{b}: cannot add partitions to {growing}: {e:?}"),
        };
        if !grew {
            // tansu (the broker without CreatePartitions) answers metadata requests about a
            // topic deleted under a consumer in a way that crashes librdkafka 2.12.1 (a null
            // topic name reaches its metadata cache): the deletion half runs on the others.
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            running.join().unwrap().unwrap();
            continue;
        }
        rt.block_on(admin.delete_topics(&[doomed.as_str()], &options))
            .expect("delete the topic")
            .into_iter()
            .for_each(|r| {
                r.expect("delete the topic");
            });

        let mut gone = Vec::new();
        let took = wait_for(Duration::from_secs(15), || {
            gone.extend(errs.take());
            gone.len() >= 2
        });
        let warned = wait_for(Duration::from_secs(15), || {
            logs.lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(&growing) && l.contains("has 3 partitions now, 2 more"))
        })
        .is_some();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        running.join().unwrap().unwrap();
        let took = took.unwrap_or_else(|| panic!("{b}: the deleted topic was not reported: {gone:?}"));
        assert!(took < Duration::from_secs(10), "{b}: reported after {took:?}");
        let mut partitions: Vec<i32> = gone.iter().filter_map(|e| e.partition).collect();
        partitions.sort();
        assert_eq!(partitions, [0, 1], "{b}: {gone:?}");
        for e in &gone {
            assert_eq!(e.code, RDKafkaErrorCode::UnknownTopicOrPartition, "{b}");
            assert_eq!(e.topic.as_deref(), Some(doomed.as_str()));
            assert!(
                e.error.contains("the topic was deleted while the flow read it"),
                "{}",
                e.error
            );
        }
        assert!(warned, "{b}: no warning about the added partitions");
    }
}

/// A produce to a partition the topic does not have names the partition and the count.
#[test]
fn a_produce_to_a_missing_partition_names_it() {
    for b in brokers() {
        let topic = unique_topic("p99");
        create_topic(&b, &topic, 4);
        let flow = Dataflow::new("p99");
        flow.input(
            "in",
            TestingSource::new(vec![
                KafkaSinkMessage::new(None, Some(b"x".to_vec())).partition(99),
            ]),
        )
        .output(
            "out",
            KafkaSink::new(config(&b).set("message.timeout.ms", "5000"), Some(&topic)),
        );
        let err = bwx_runtime::run_main(&flow).unwrap_err().report();
        assert!(
            err.contains("p99.out")
                && err.contains(&format!("partition 99 of topic {topic:?}"))
                && err.contains("(the topic has 4 partitions)"),
            "{b}: {err}"
        );
    }
}

/// A run that reads to the end of its partitions writes no error lines: the end of a
/// partition is no error. (The broker-restart test checks the lines of a survived outage.)
#[test]
fn a_run_to_the_partition_ends_logs_no_errors() {
    let logs = captured_logs();
    for b in brokers() {
        let topic = unique_topic("quiet");
        create_topic(&b, &topic, 4);
        produce(
            &b,
            &topic,
            (0..100u64).map(|i| (vec![], i.to_string().into_bytes(), (i % 4) as i32)),
        );
        let before = logs.lock().unwrap().len();
        let flow = Dataflow::new("quiet");
        flow.input("in", KafkaSource::new(config(&b), [topic.as_str()]).tail(false))
            .output("out", TestingSink::new());
        run_workers(&flow, 2, RunConfig::default()).unwrap();
        let lines: Vec<String> = logs.lock().unwrap()[before..].to_vec();
        assert!(
            !lines.iter().any(|l| l.contains("ERROR") && l.contains("quiet")),
            "{b}: {lines:?}"
        );
        assert!(
            !lines.iter().any(|l| l.contains("PartitionEOF")),
            "{b}: {lines:?}"
        );
    }
}

/// Latency, timestamp type, the key-and-value operators and Kafka's primitive formats,
/// through a real broker, read back by a client that is not bwx.
#[test]
fn primitive_serdes_and_message_metadata_on_a_real_broker() {
    use bwx_connectors::kafka::TimestampType;
    use bwx_connectors::kafka::serde::{LongSerde, StringSerde};
    for b in brokers() {
        let (input, output) = (unique_topic("prim-in"), unique_topic("prim-out"));
        create_topic(&b, &input, 1);
        create_topic(&b, &output, 1);
        // Written a minute in the past: the source sees a latency of at least a minute.
        let minute_ago = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            - 60_000;
        let flow = Dataflow::new("prim_out");
        let msgs = flow
            .input("in", TestingSource::new(0..20i64))
            .map("msg", move |i| {
                KafkaSinkMessage::new(format!("k{i}"), i * 1_000_000_007).timestamp(minute_ago + i)
            });
        let encoded = kafka::serialize(&msgs, "encode", StringSerde, LongSerde);
        encoded.errs.map("why", |e| e.error).raises("encode_failed");
        kafka::output(&encoded.oks, "out", KafkaSink::new(config(&b), Some(&input)));
        run_workers(&flow, 1, RunConfig::default()).unwrap();

        let flow = Dataflow::new("prim_in");
        let (oks, errs) = (TestingSink::new(), TestingSink::new());
        let read = kafka::input(
            &flow,
            "in",
            KafkaSource::new(config(&b), [input.as_str()]).tail(false),
        );
        let decoded = kafka::deserialize(&read.oks, "decode", StringSerde, LongSerde);
        decoded
            .oks
            .map("meta", |m| (m.key.clone(), m.value, m.timestamp_type, m.latency))
            .output("oks", oks.clone());
        decoded.errs.output("errs", errs.clone());
        let copy = decoded.oks.map("copy", |m| {
            KafkaSinkMessage::new(m.key.unwrap_or_default(), m.value.unwrap_or_default() + 1)
        });
        let encoded = kafka::serialize(&copy, "encode", StringSerde, LongSerde);
        encoded.errs.map("why", |e| e.error).raises("encode_failed");
        kafka::output(&encoded.oks, "out", KafkaSink::new(config(&b), Some(&output)));
        run_workers(&flow, 1, RunConfig::default()).unwrap();
        assert!(errs.take().is_empty(), "{b}");
        let got = oks.take();
        assert_eq!(got.len(), 20, "{b}");
        for (key, value, ts_type, latency) in got {
            let i: i64 = key.unwrap().trim_start_matches('k').parse().unwrap();
            assert_eq!(value, Some(i * 1_000_000_007), "{b}");
            assert_eq!(ts_type, TimestampType::CreateTime, "{b}");
            assert!(latency.unwrap() >= Duration::from_secs(59), "{b}: {latency:?}");
        }
        // An independent client reads 8-byte big-endian longs and UTF-8 keys.
        let back = python_read_back(&b, &output, 20);
        let mut values: Vec<(String, i64)> = back
            .into_iter()
            .map(|(k, v)| (k, i64::from_be_bytes(v.try_into().expect("8 bytes"))))
            .collect();
        values.sort();
        let mut want: Vec<(String, i64)> = (0..20)
            .map(|i| (format!("k{i}"), i * 1_000_000_007 + 1))
            .collect();
        want.sort();
        assert_eq!(values, want, "{b}");
    }
}

/// The Python of the brokers' environment (`scripts/kafka-brokers.sh` installs kafka-python
/// there), or `BWX_KAFKA_PYTHON`.
fn python() -> String {
    std::env::var("BWX_KAFKA_PYTHON").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/kafka-brokers/venv/bin/python"
        )
        .to_string()
    })
}

/// Reads `n` messages of `topic` with kafka-python: (UTF-8 key, value bytes).
fn python_read_back(brokers: &str, topic: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    let script = r#"
import sys, json
from kafka import KafkaConsumer
brokers, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = KafkaConsumer(topic, bootstrap_servers=brokers, auto_offset_reset="earliest",
                  enable_auto_commit=False, consumer_timeout_ms=20000)
out = []
for m in c:
    out.append([m.key.decode(), m.value.hex()])
    if len(out) >= n:
        break
print(json.dumps(out))
"#;
    let result = std::process::Command::new(python())
        .args(["-c", script, brokers, topic, &n.to_string()])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (scripts/kafka-brokers.sh start installs it): {e}",
                python()
            )
        });
    assert!(
        result.status.success(),
        "kafka-python failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let rows: Vec<(String, String)> = serde_json::from_slice(&result.stdout).expect("JSON from the reader");
    rows.into_iter()
        .map(|(k, hex)| {
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (k, bytes)
        })
        .collect()
}

/// A topic deleted and created again under a flow that read 30 messages (as after a broker
/// that lost its data): its partition ends at 0, before the next offset (offsets went
/// backwards); the flow reports it and reads every message written afterwards
/// (`OnOffsetsLost::ReadOn`). On a noida-db broker of the test's own (tansu answers
/// metadata about a missing topic in a way that crashes librdkafka 2.12.1).
#[test]
fn offsets_going_backwards_after_a_broker_lost_its_data_are_reported_and_read_on() {
    use bwx_connectors::kafka::rdkafka::types::RDKafkaErrorCode;
    if brokers().is_empty() {
        return;
    }
    let Some(broker) = OwnBroker::start() else { return };
    let b = broker.address();
    let topic = unique_topic("lost");
    create_topic(&b, &topic, 1);
    produce(
        &b,
        &topic,
        (0..30u64).map(|i| (vec![], i.to_string().into_bytes(), 0)),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flow = Dataflow::new("lost");
    let (oks, errs) = (TestingSink::new(), TestingSink::new());
    let source = KafkaSource::new(config(&b), [topic.as_str()]).metadata_interval(Duration::from_secs(1));
    let out = kafka::input(&flow, "in", source);
    out.oks
        .map("v", |m| (m.offset, value_of(&m)))
        .output("oks", oks.clone());
    out.errs.output("errs", errs.clone());
    let run_config = RunConfig::default().stop_flag(stop.clone());
    let running = std::thread::spawn(move || run_workers(&flow, 1, run_config));
    let mut read = Vec::new();
    assert!(
        wait_for(Duration::from_secs(30), || {
            read.extend(oks.take());
            read.len() == 30
        })
        .is_some(),
        "the flow reads the first 30: {read:?}"
    );
    let (admin, rt) = admin(&b);
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in rt
        .block_on(admin.delete_topics(&[topic.as_str()], &options))
        .expect("delete the topic")
    {
        r.expect("delete the topic");
    }
    std::thread::sleep(Duration::from_secs(2));
    create_topic(&b, &topic, 1);
    let mut reports = Vec::new();
    let reported = wait_for(Duration::from_secs(30), || {
        reports.extend(errs.take());
        reports
            .iter()
            .any(|e| e.code == RDKafkaErrorCode::AutoOffsetReset)
    });
    // Written after the report, so that where reading goes on is certain.
    produce(
        &b,
        &topic,
        (100..110u64).map(|i| (vec![], i.to_string().into_bytes(), 0)),
    );
    let mut after = Vec::new();
    let read_on = wait_for(Duration::from_secs(30), || {
        after.extend(oks.take());
        after.len() >= 10
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    running.join().unwrap().unwrap();
    assert!(
        reported.is_some(),
        "offsets going backwards were not reported: {reports:?}"
    );
    let report = reports
        .iter()
        .find(|e| e.code == RDKafkaErrorCode::AutoOffsetReset)
        .unwrap();
    assert!(
        report
            .error
            .contains("offsets went backwards: the next offset to read is 30 but the partition ends at 0"),
        "{}",
        report.error
    );
    assert!(
        read_on.is_some(),
        "the messages written after it were not read: {after:?}"
    );
    assert_eq!(
        after,
        (100..110u64)
            .enumerate()
            .map(|(o, v)| (o as i64, v))
            .collect::<Vec<_>>()
    );
}

/// JSON Schema and Protobuf in the Confluent wire format through a real broker: written by
/// bwx, the frames read back by kafka-python, decoded again by bwx.
#[cfg(all(feature = "json-schema", feature = "protobuf"))]
#[test]
fn json_schema_and_protobuf_through_a_real_broker() {
    use bwx_connectors::kafka::serde::{
        ConfluentJsonDeserializer, ConfluentJsonSerializer, ConfluentProtobufDeserializer,
        ConfluentProtobufSerializer, SchemaRegistry, SubjectName,
    };

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Reading {
        sensor: String,
        value: f64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct ProtoReading {
        #[prost(string, tag = "1")]
        sensor: String,
        #[prost(double, tag = "2")]
        value: f64,
    }
    const SCHEMA: &str = r#"{"title":"Reading","type":"object","required":["sensor","value"],
        "properties":{"sensor":{"type":"string"},"value":{"type":"number"}}}"#;
    const PROTO: &str =
        "syntax = \"proto3\";\npackage s;\nmessage Reading { string sensor = 1; double value = 2; }\n";

    let registry = kafka_common::registry::MockRegistry::start();
    let client = SchemaRegistry::new(&registry.url).unwrap();
    for b in brokers() {
        let (json_topic, proto_topic) = (unique_topic("jsonschema"), unique_topic("protobuf"));
        create_topic(&b, &json_topic, 1);
        create_topic(&b, &proto_topic, 1);
        let flow = Dataflow::new("formats_out");
        let readings = flow
            .input("in", TestingSource::new(0..30u32))
            .map("r", |i| Reading {
                sensor: format!("s{i}"),
                value: f64::from(i),
            });
        let jt = json_topic.clone();
        let as_json = readings.map("json_msg", move |r: Reading| {
            KafkaSinkMessage::new(r.sensor.clone(), r).topic(&jt)
        });
        let json = kafka::serialize(
            &as_json,
            "json",
            bwx_connectors::kafka::serde::StringSerde,
            ConfluentJsonSerializer::new(client.clone(), SCHEMA, SubjectName::Topic).unwrap(),
        );
        json.errs.map("json_why", |e| e.error).raises("json_failed");
        kafka::output(&json.oks, "json_out", KafkaSink::new(config(&b), None));
        let pt = proto_topic.clone();
        let as_proto = readings.map("proto_msg", move |r: Reading| {
            KafkaSinkMessage::new(
                r.sensor.clone(),
                ProtoReading {
                    sensor: r.sensor,
                    value: r.value,
                },
            )
            .topic(&pt)
        });
        let proto = kafka::serialize(
            &as_proto,
            "proto",
            bwx_connectors::kafka::serde::StringSerde,
            ConfluentProtobufSerializer::<ProtoReading>::new(
                client.clone(),
                PROTO,
                "s.Reading",
                SubjectName::Topic,
            )
            .unwrap(),
        );
        proto.errs.map("proto_why", |e| e.error).raises("proto_failed");
        kafka::output(&proto.oks, "proto_out", KafkaSink::new(config(&b), None));
        run_workers(&flow, 1, RunConfig::default()).unwrap();

        // kafka-python sees the frames: magic byte, schema id, then JSON or indexes + message.
        let json_id = client.latest(&format!("{json_topic}-value")).unwrap().id.unwrap();
        for (key, value) in python_read_back(&b, &json_topic, 30) {
            assert_eq!(&value[..5], &[0, 0, 0, 0, json_id as u8][..], "{b}");
            let r: Reading = serde_json::from_slice(&value[5..]).unwrap();
            assert_eq!(r.sensor, key, "{b}");
        }
        let proto_id = client
            .latest(&format!("{proto_topic}-value"))
            .unwrap()
            .id
            .unwrap();
        for (_, value) in python_read_back(&b, &proto_topic, 30) {
            assert_eq!(&value[..6], &[0, 0, 0, 0, proto_id as u8, 0][..], "{b}");
        }

        let flow = Dataflow::new("formats_in");
        let (jsons, protos, errs) = (TestingSink::new(), TestingSink::new(), TestingSink::new());
        let j = kafka::input(
            &flow,
            "jin",
            KafkaSource::new(config(&b), [json_topic.as_str()]).tail(false),
        );
        let jd = kafka::deserialize_value(
            &j.oks,
            "jde",
            ConfluentJsonDeserializer::<Reading>::new(client.clone()),
        );
        jd.oks
            .filter_map("jv", |m| m.value)
            .output("jsons", jsons.clone());
        jd.errs.map("jwhy", |e| e.error).output("jerrs", errs.clone());
        let p = kafka::input(
            &flow,
            "pin",
            KafkaSource::new(config(&b), [proto_topic.as_str()]).tail(false),
        );
        let pd = kafka::deserialize_value(
            &p.oks,
            "pde",
            ConfluentProtobufDeserializer::<ProtoReading>::new(client.clone(), "s.Reading"),
        );
        pd.oks
            .filter_map("pv", |m| m.value.map(|r| r.value))
            .output("protos", protos.clone());
        pd.errs.map("pwhy", |e| e.error).output("perrs", errs.clone());
        run_workers(&flow, 1, RunConfig::default()).unwrap();
        assert_eq!(errs.take(), Vec::<String>::new(), "{b}");
        let mut got: Vec<f64> = jsons.take().into_iter().map(|r| r.value).collect();
        got.sort_by(f64::total_cmp);
        assert_eq!(got, (0..30).map(f64::from).collect::<Vec<_>>(), "{b}");
        let mut got = protos.take();
        got.sort_by(f64::total_cmp);
        assert_eq!(got, (0..30).map(f64::from).collect::<Vec<_>>(), "{b}");
    }
}

/// Plain Avro whose schema references a named schema, with the writer's schema fetched as
/// a subject's latest version (Bytewax's recipe), through a real broker; the combined
/// `serialize` / `deserialize` operators on both sides.
#[cfg(feature = "avro")]
#[test]
fn plain_avro_with_named_schemas_from_the_latest_version_through_a_real_broker() {
    use bwx_connectors::kafka::serde::{
        PlainAvroDeserializer, PlainAvroSerializer, SchemaRegistry, StringSerde,
    };

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Point {
        x: i64,
        y: i64,
    }
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Line {
        from: Point,
        to: Point,
    }
    const POINT: &str = r#"{"type":"record","name":"Point","namespace":"geo","fields":[
        {"name":"x","type":"long"},{"name":"y","type":"long"}]}"#;
    const LINE: &str = r#"{"type":"record","name":"Line","namespace":"geo","fields":[
        {"name":"from","type":"geo.Point"},{"name":"to","type":"geo.Point"}]}"#;

    for flavor in [
        kafka_common::registry::Flavor::Confluent,
        kafka_common::registry::Flavor::Redpanda,
    ] {
        let registry = kafka_common::registry::MockRegistry::start_flavor(flavor);
        registry.register("geo.Point", "AVRO", POINT);
        registry.register("lines-value", "AVRO", r#"{"type":"string"}"#);
        registry.register("lines-value", "AVRO", LINE);
        let client = SchemaRegistry::new(&registry.url).unwrap();
        let latest = client.latest("lines-value").unwrap();
        let point = client.latest("geo.Point").unwrap();
        for b in brokers() {
            let topic = unique_topic("lines");
            create_topic(&b, &topic, 1);
            let lines: Vec<Line> = (0..20)
                .map(|i| Line {
                    from: Point { x: i, y: -i },
                    to: Point { x: 2 * i, y: 0 },
                })
                .collect();
            let flow = Dataflow::new("lines_out");
            let msgs = flow
                .input("in", TestingSource::new(lines.clone()))
                .map("msg", |l: Line| KafkaSinkMessage::new(format!("{}", l.from.x), l));
            let encoded = kafka::serialize(
                &msgs,
                "encode",
                StringSerde,
                PlainAvroSerializer::with_named_schemas(&latest.schema, &[point.schema.as_str()]).unwrap(),
            );
            encoded.errs.map("why", |e| e.error).raises("encode_failed");
            kafka::output(&encoded.oks, "out", KafkaSink::new(config(&b), Some(&topic)));
            run_workers(&flow, 1, RunConfig::default()).unwrap();

            let flow = Dataflow::new("lines_in");
            let (oks, errs) = (TestingSink::new(), TestingSink::new());
            let read = kafka::input(
                &flow,
                "in",
                KafkaSource::new(config(&b), [topic.as_str()]).tail(false),
            );
            let decoded = kafka::deserialize(
                &read.oks,
                "decode",
                StringSerde,
                PlainAvroDeserializer::<Line>::with_named_schemas(&latest.schema, &[point.schema.as_str()])
                    .unwrap(),
            );
            decoded
                .oks
                .map("kv", |m| (m.key.unwrap(), m.value.unwrap()))
                .output("oks", oks.clone());
            decoded.errs.map("why", |e| e.error).output("errs", errs.clone());
            run_workers(&flow, 1, RunConfig::default()).unwrap();
            assert_eq!(errs.take(), Vec::<String>::new(), "{b} {flavor:?}");
            let got = oks.take();
            assert_eq!(got.len(), 20, "{b} {flavor:?}");
            for (key, line) in got {
                assert_eq!(key, line.from.x.to_string());
                assert!(lines.contains(&line));
            }
        }
    }
}
