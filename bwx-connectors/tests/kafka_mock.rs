//! Kafka connector tests against librdkafka's in-process mock cluster (feature `kafka`).
#![cfg(feature = "kafka")]

mod kafka_common;

use std::sync::Arc;

use bwx_connectors::kafka::rdkafka::types::RDKafkaErrorCode;
use bwx_connectors::kafka::{
    self, JsonDeserializer, JsonSerializer, KafkaConfig, KafkaSink, KafkaSinkMessage, KafkaSource,
    OnOffsetsLost, StartOffset,
};
use bwx_runtime::prelude::*;
use bwx_runtime::testing::{TestingSink, TestingSource};
use bwx_runtime::{run_main, run_workers};
use kafka_common::{MemoryRecovery, produce, read_all, unique_topic};
use rdkafka::mocking::MockCluster;

fn cluster(
    topic: &str,
    partitions: i32,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let mock = MockCluster::new(1).expect("start the mock cluster");
    mock.create_topic(topic, partitions, 1).expect("create the topic");
    let brokers = mock.bootstrap_servers();
    (mock, brokers)
}

fn numbered(n: usize, partitions: i32) -> impl Iterator<Item = (Vec<u8>, Vec<u8>, i32)> {
    (0..n).map(move |i| {
        (
            format!("k{}", i % 7).into_bytes(),
            i.to_string().into_bytes(),
            (i % partitions as usize) as i32,
        )
    })
}

#[test]
fn source_reads_every_partition_and_stops_at_the_end() {
    let topic = unique_topic("read");
    let (_mock, brokers) = cluster(&topic, 3);
    produce(&brokers, &topic, numbered(300, 3));

    let flow = Dataflow::new("read");
    let (oks, errs) = (TestingSink::new(), TestingSink::new());
    let source = KafkaSource::new(KafkaConfig::new(&brokers), [topic.as_str()])
        .tail(false)
        .batch_size(50);
    let out = kafka::input(&flow, "in", source);
    out.oks.output("oks", oks.clone());
    out.errs.output("errs", errs.clone());
    run_workers(&flow, 2, RunConfig::default()).unwrap();

    let msgs = oks.take();
    assert!(errs.take().is_empty());
    let mut values: Vec<usize> = msgs
        .iter()
        .map(|m| {
            String::from_utf8(m.value.clone().unwrap())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    values.sort();
    assert_eq!(values, (0..300).collect::<Vec<_>>());
    for m in &msgs {
        let v: usize = String::from_utf8(m.value.clone().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(m.partition as usize, v % 3);
        assert_eq!(
            m.offset as usize,
            v / 3,
            "offsets follow the produce order per partition"
        );
        assert_eq!(&*m.topic, topic.as_str());
        assert_eq!(m.key.as_deref(), Some(format!("k{}", v % 7).as_bytes()));
        assert!(m.timestamp.is_some());
    }
}

#[test]
fn starting_at_the_end_reads_nothing_old() {
    let topic = unique_topic("end");
    let (_mock, brokers) = cluster(&topic, 2);
    produce(&brokers, &topic, numbered(20, 2));
    let flow = Dataflow::new("end");
    let out = TestingSink::new();
    let source = KafkaSource::new(KafkaConfig::new(&brokers), [topic.as_str()])
        .tail(false)
        .starting_offset(StartOffset::End);
    flow.input("in", source).output("out", out.clone());
    run_main(&flow).unwrap();
    assert!(out.take().is_empty());
}

#[test]
fn a_resumed_flow_continues_from_the_stored_offsets() {
    let topic = unique_topic("resume");
    let (_mock, brokers) = cluster(&topic, 3);
    let hook = Arc::new(MemoryRecovery::default());
    let run = |out: &TestingSink<i64>| {
        let flow = Dataflow::new("resume");
        let source = KafkaSource::new(KafkaConfig::new(&brokers), [topic.as_str()]).tail(false);
        flow.input("in", source)
            .map("value", |m| {
                String::from_utf8(m.value.unwrap())
                    .unwrap()
                    .parse::<i64>()
                    .unwrap()
            })
            .output("out", out.clone());
        run_workers(&flow, 2, RunConfig::default().recovery(hook.next())).unwrap();
    };
    produce(&brokers, &topic, numbered(90, 3));
    let first = TestingSink::new();
    run(&first);
    assert_eq!(hook.states_of("resume.in"), 3, "one snapshot per partition");
    produce(
        &brokers,
        &topic,
        (90..150).map(|i| (vec![], i.to_string().into_bytes(), i % 3)),
    );
    let second = TestingSink::new();
    run(&second);
    let (mut a, mut b) = (first.take(), second.take());
    a.sort();
    b.sort();
    assert_eq!(a, (0..90).collect::<Vec<_>>());
    assert_eq!(
        b,
        (90..150).collect::<Vec<_>>(),
        "no loss and no duplicates at the source"
    );
}

/// A source positioned past a partition's end (as after a broker lost messages the flow had
/// read) reports it with the offsets, and reads on from the end or stops, per policy.
#[test]
fn offsets_past_the_end_are_reported_and_follow_the_policy() {
    let topic = unique_topic("oor");
    let (_mock, brokers) = cluster(&topic, 1);
    produce(&brokers, &topic, numbered(5, 1));
    let source = || {
        KafkaSource::new(KafkaConfig::new(&brokers), [topic.as_str()])
            .tail(false)
            .starting_offset(StartOffset::Offset(1000))
    };
    let flow = Dataflow::new("errs");
    let (oks, errs) = (TestingSink::new(), TestingSink::new());
    let out = kafka::input(&flow, "in", source());
    out.oks.output("oks", oks.clone());
    out.errs.output("errs", errs.clone());
    run_main(&flow).unwrap();
    assert!(oks.take().is_empty());
    let errs = errs.take();
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = &errs[0];
    assert_eq!(
        (e.code, e.partition, e.offset, e.topic.as_deref()),
        (
            RDKafkaErrorCode::AutoOffsetReset,
            Some(0),
            Some(1000),
            Some(topic.as_str())
        )
    );
    assert!(
        e.error
            .contains("offsets went backwards: the next offset to read is 1000 but the partition ends at 5")
            && e.error.contains("reading on at offset 5")
            && e.error.contains("errs.in"),
        "{}",
        e.error
    );

    let flow = Dataflow::new("raise");
    flow.input("in", source().on_offsets_lost(OnOffsetsLost::Stop))
        .output("out", TestingSink::new());
    let err = run_main(&flow).unwrap_err().report();
    assert!(
        err.contains("raise.in") && err.contains(&topic) && err.contains("OnOffsetsLost::Stop"),
        "{err}"
    );
}

#[test]
fn a_missing_topic_is_a_clear_error() {
    let (_mock, brokers) = cluster("other", 1);
    let flow = Dataflow::new("missing");
    flow.input(
        "in",
        KafkaSource::new(KafkaConfig::new(&brokers), ["nope"]).tail(false),
    )
    .output("out", TestingSink::new());
    let err = run_main(&flow).unwrap_err().report();
    assert!(
        err.contains("cannot list the partitions of topic \"nope\""),
        "{err}"
    );
}

#[test]
fn secrets_stay_out_of_errors() {
    let flow = Dataflow::new("secret");
    let config = KafkaConfig::new("127.0.0.1:1")
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.password", "hunter2")
        .set("sasl.mechanism", "hunter2")
        .set("message.timeout.ms", "2000");
    flow.input("in", TestingSource::new(vec![KafkaSinkMessage::new(None, None)]))
        .output("out", KafkaSink::new(config, Some("t")));
    let err = run_main(&flow).unwrap_err().report();
    assert!(err.contains("cannot create a producer"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn sink_writes_topic_key_headers_and_partition_per_message() {
    let topic = unique_topic("sink");
    let (mock, brokers) = cluster(&topic, 4);
    let other = unique_topic("sink-other");
    mock.create_topic(&other, 1, 1).unwrap();
    let msgs = vec![
        KafkaSinkMessage::new(Some(b"a".to_vec()), Some(b"1".to_vec()))
            .partition(2)
            .header("h", Some(b"x".to_vec())),
        KafkaSinkMessage::new(None, Some(b"2".to_vec())).partition(3),
        KafkaSinkMessage::new(Some(b"c".to_vec()), None)
            .topic(&other)
            .partition(0)
            .timestamp(1234),
    ];
    let flow = Dataflow::new("sink");
    flow.input("in", TestingSource::new(msgs))
        .output("out", KafkaSink::new(KafkaConfig::new(&brokers), Some(&topic)));
    run_main(&flow).unwrap();
    let mut main = read_all(&brokers, &topic, 4, 2);
    main.sort_by_key(|r| r.3);
    assert_eq!(main.len(), 2);
    assert_eq!(
        main[0],
        (
            Some(b"a".to_vec()),
            Some(b"1".to_vec()),
            vec![("h".into(), Some(b"x".to_vec()))],
            2,
            0
        )
    );
    assert_eq!(main[1], (None, Some(b"2".to_vec()), vec![], 3, 0));
    let side = read_all(&brokers, &other, 1, 1);
    assert_eq!(side, vec![(Some(b"c".to_vec()), None, vec![], 0, 0)]);
}

/// Messages without headers are handed to librdkafka without rdkafka's `send` (no
/// allocation per message): null and empty keys and values stay apart, a message's own
/// topic, partition and timestamp are kept, and a partition the topic lacks is named.
#[test]
fn messages_without_headers_keep_null_empty_partition_and_timestamp() {
    use rdkafka::message::{Message, Timestamp};

    let topic = unique_topic("plain");
    let (mock, brokers) = cluster(&topic, 2);
    let other = unique_topic("plain-other");
    mock.create_topic(&other, 1, 1).unwrap();
    let msgs = vec![
        KafkaSinkMessage::new(None, Some(Vec::new()))
            .partition(0)
            .timestamp(1_234),
        KafkaSinkMessage::new(Some(Vec::new()), None)
            .partition(0)
            .timestamp(5_678),
        KafkaSinkMessage::new(Some(b"k".to_vec()), Some(b"v".to_vec()))
            .topic(&other)
            .timestamp(42),
    ];
    let flow = Dataflow::new("plain");
    flow.input("in", TestingSource::new(msgs))
        .output("out", KafkaSink::new(KafkaConfig::new(&brokers), Some(&topic)));
    run_main(&flow).unwrap();
    let read = |topic: &str, n: usize| {
        let consumer = kafka_common::reader_from_beginning(&brokers, topic, 1);
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while out.len() < n && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(std::time::Duration::from_millis(100)) {
                let ts = match m.timestamp() {
                    Timestamp::CreateTime(t) => Some(t),
                    _ => None,
                };
                out.push((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec), ts));
            }
        }
        out
    };
    assert_eq!(
        read(&topic, 2),
        vec![
            (None, Some(Vec::new()), Some(1_234)),
            (Some(Vec::new()), None, Some(5_678)),
        ]
    );
    assert_eq!(
        read(&other, 1),
        vec![(Some(b"k".to_vec()), Some(b"v".to_vec()), Some(42))]
    );

    let flow = Dataflow::new("plain-missing");
    flow.input(
        "in",
        TestingSource::new(vec![
            KafkaSinkMessage::new(None, Some(b"x".to_vec())).partition(7),
        ]),
    )
    .output("out", KafkaSink::new(KafkaConfig::new(&brokers), Some(&topic)));
    let err = run_main(&flow).unwrap_err().report();
    assert!(err.contains(&format!("partition 7 of topic {topic:?}")), "{err}");
}

#[test]
fn a_message_without_topic_stops_the_flow() {
    let (_mock, brokers) = cluster("t", 1);
    let flow = Dataflow::new("notopic");
    flow.input("in", TestingSource::new(vec![KafkaSinkMessage::new(None, None)]))
        .output("out", KafkaSink::new(KafkaConfig::new(&brokers), None));
    let err = run_main(&flow).unwrap_err().report();
    assert!(err.contains("no default topic"), "{err}");
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Reading {
    sensor: String,
    value: f64,
}

#[test]
fn corrupt_payloads_go_to_errs_with_their_message() {
    let topic = unique_topic("json");
    let (_mock, brokers) = cluster(&topic, 1);
    let good = serde_json::to_vec(&Reading {
        sensor: "a".into(),
        value: 1.0,
    })
    .unwrap();
    produce(
        &brokers,
        &topic,
        vec![
            (b"k".to_vec(), good.clone(), 0),
            (b"k".to_vec(), b"{not json".to_vec(), 0),
            (b"k".to_vec(), good, 0),
        ],
    );
    let flow = Dataflow::new("json");
    let (oks, errs) = (TestingSink::new(), TestingSink::new());
    let msgs = kafka::input(
        &flow,
        "in",
        KafkaSource::new(KafkaConfig::new(&brokers), [topic.as_str()]).tail(false),
    );
    let decoded = kafka::deserialize_value(&msgs.oks, "decode", JsonDeserializer::<Reading>::new());
    decoded
        .oks
        .map("v", |m| (m.offset, m.value))
        .output("oks", oks.clone());
    decoded.errs.output("errs", errs.clone());
    run_main(&flow).unwrap();
    let r = Reading {
        sensor: "a".into(),
        value: 1.0,
    };
    assert_eq!(oks.take(), vec![(0, Some(r.clone())), (2, Some(r))]);
    let errs = errs.take();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].message.offset, 1);
    assert_eq!(errs[0].message.value.as_deref(), Some(&b"{not json"[..]));
    assert!(
        errs[0].error.contains("json.decode") && errs[0].error.contains("offset 1"),
        "{}",
        errs[0].error
    );
}

#[test]
fn kafka_in_serialize_kafka_out_round_trip() {
    let topic = unique_topic("in");
    let (mock, brokers) = cluster(&topic, 2);
    let out_topic = unique_topic("out");
    mock.create_topic(&out_topic, 2, 1).unwrap();
    produce(&brokers, &topic, numbered(40, 2));
    let flow = Dataflow::new("pipe");
    let config = KafkaConfig::new(&brokers);
    let msgs = kafka::input(
        &flow,
        "in",
        KafkaSource::new(config.clone(), [topic.as_str()]).tail(false),
    );
    let target = out_topic.clone();
    let readings = msgs.oks.map("to_reading", move |m| {
        let v: f64 = String::from_utf8_lossy(&m.value.unwrap_or_default())
            .parse()
            .unwrap_or(f64::NAN);
        KafkaSinkMessage::new(
            m.key,
            Reading {
                sensor: "s".into(),
                value: v,
            },
        )
        .topic(&target)
    });
    let encoded = kafka::serialize_value(&readings, "encode", JsonSerializer);
    encoded.errs.map("why", |e| e.error).raises("bad");
    kafka::output(&encoded.oks, "out", KafkaSink::new(config, None));
    run_workers(&flow, 2, RunConfig::default()).unwrap();
    let mut back: Vec<f64> = read_all(&brokers, &out_topic, 2, 40)
        .into_iter()
        .map(|r| serde_json::from_slice::<Reading>(&r.1.unwrap()).unwrap().value)
        .collect();
    back.sort_by(f64::total_cmp);
    assert_eq!(back, (0..40).map(f64::from).collect::<Vec<_>>());
}

#[test]
fn consumer_lag_reaches_the_observer() {
    use std::sync::Mutex;
    let topic = unique_topic("lag");
    let (_mock, brokers) = cluster(&topic, 1);
    produce(&brokers, &topic, numbered(6, 1));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let source = KafkaSource::new(
        KafkaConfig::new(&brokers).set("statistics.interval.ms", "50"),
        [topic.as_str()],
    )
    .tail(false)
    .batch_size(1)
    .on_lag(std::time::Duration::from_millis(50), move |lag| {
        log.lock().unwrap().push(lag.clone())
    });
    let flow = Dataflow::new("lag");
    // Slow items keep the partition open long enough for several statistics intervals.
    flow.input("in", source)
        .inspect("slow", |_, _| {
            std::thread::sleep(std::time::Duration::from_millis(60))
        })
        .output("out", TestingSink::new());
    run_main(&flow).unwrap();
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "no lag report");
    assert!(
        seen.iter().any(|l| l.lag > 0),
        "the backlog shows as lag: {seen:?}"
    );
    for lag in seen.iter() {
        assert_eq!(
            (lag.step_id.as_str(), lag.topic.as_str(), lag.partition),
            ("lag.in", topic.as_str(), 0)
        );
        assert!((0..=6).contains(&lag.lag), "{lag:?}");
    }
}

#[test]
fn after_a_crash_the_flow_resumes_from_the_last_snapshot_without_loss() {
    use std::collections::BTreeSet;
    let topic = unique_topic("crash");
    let (_mock, brokers) = cluster(&topic, 3);
    produce(&brokers, &topic, numbered(3000, 3));
    let hook = Arc::new(MemoryRecovery::default());
    let run = |out: &TestingSink<i64>, crash_at: Option<i64>| {
        let flow = Dataflow::new("crash");
        let values = flow
            .input(
                "in",
                KafkaSource::new(KafkaConfig::new(&brokers), [topic.as_str()])
                    .tail(false)
                    .batch_size(50),
            )
            .map("value", |m| {
                String::from_utf8(m.value.unwrap())
                    .unwrap()
                    .parse::<i64>()
                    .unwrap()
            });
        values.output("out", out.clone());
        if let Some(at) = crash_at {
            // Slow the first run down so that many epochs close (and their source positions
            // are stored) before the crash; otherwise all could happen inside one epoch.
            values
                .inspect("pace", |_, _| {
                    std::thread::sleep(std::time::Duration::from_micros(300))
                })
                .filter("at", move |v| *v == at)
                .raises("crash");
        }
        let config = RunConfig::default().epoch_interval(std::time::Duration::from_millis(2));
        run_workers(&flow, 2, config.recovery(hook.next()))
    };
    let first = TestingSink::new();
    let err = run(&first, Some(2400)).unwrap_err().report();
    assert!(err.contains("crash.crash"), "{err}");
    assert!(
        hook.states_of("crash.in") > 0,
        "source positions were stored before the crash"
    );
    let second = TestingSink::new();
    run(&second, None).unwrap();
    let (a, b) = (first.take(), second.take());
    let b_set: BTreeSet<i64> = b.iter().copied().collect();
    assert_eq!(b_set.len(), b.len(), "the resumed run reads each message once");
    let all: BTreeSet<i64> = a.iter().chain(b.iter()).copied().collect();
    assert_eq!(all, (0..3000).collect(), "no message lost across the crash");
    assert!(
        b.len() < 3000,
        "the resumed run starts at the stored offsets, not the beginning"
    );
}

#[cfg(feature = "avro")]
mod confluent_avro {
    use std::time::Duration;

    use bwx_connectors::kafka::serde::{ConfluentAvroDeserializer, RetryPolicy, SchemaRegistry};

    use super::kafka_common::registry::MockRegistry;
    use super::*;

    const REC: &str = r#"{"type":"record","name":"Rec","fields":[
        {"name":"id","type":"long"},{"name":"name","type":"string"}]}"#;

    /// Offsets and decoded values.
    type Decoded = TestingSink<(i64, Option<serde_json::Value>)>;
    /// Decoding errors.
    type Failed = TestingSink<kafka::KafkaError<kafka::KafkaSourceMessage>>;

    /// Reads `topic` through a Confluent Avro deserializer into `oks` and `errs`.
    fn decode_flow(brokers: &str, topic: &str, registry: SchemaRegistry) -> (Dataflow, Decoded, Failed) {
        let flow = Dataflow::new("avro");
        let (oks, errs) = (TestingSink::new(), TestingSink::new());
        let msgs = kafka::input(
            &flow,
            "in",
            KafkaSource::new(KafkaConfig::new(brokers), [topic]).tail(false),
        );
        let decoded = kafka::deserialize_value(
            &msgs.oks,
            "decode",
            ConfluentAvroDeserializer::<serde_json::Value>::new(registry),
        );
        decoded
            .oks
            .map("v", |m| (m.offset, m.value))
            .output("oks", oks.clone());
        decoded.errs.output("errs", errs.clone());
        (flow, oks, errs)
    }

    /// The payloads of the strict-decoding report land on `errs` with topic, partition,
    /// offset and what was wrong; they used to be accepted as `{"id":4,"name":null}` and
    /// `{"id":7,"name":"g"}`.
    #[test]
    fn corrupt_confluent_avro_goes_to_errs_with_where_and_why() {
        let topic = unique_topic("corrupt-avro");
        let (_mock, brokers) = cluster(&topic, 1);
        let registry = MockRegistry::start();
        assert_eq!(registry.register(&format!("{topic}-value"), "AVRO", REC), 1);
        let truncated = vec![0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x0c, 0x64, 0x64, 0x64];
        let trailing = vec![0x00, 0x00, 0x00, 0x00, 0x01, 0x0e, 0x02, 0x67, 0x00, 0x01, 0x02];
        let good = vec![0x00, 0x00, 0x00, 0x00, 0x01, 0x0e, 0x02, 0x67];
        produce(
            &brokers,
            &topic,
            [truncated, trailing, good].map(|v| (vec![], v, 0)),
        );
        let (flow, oks, errs) = decode_flow(&brokers, &topic, SchemaRegistry::new(&registry.url).unwrap());
        run_main(&flow).unwrap();
        assert_eq!(
            oks.take(),
            vec![(2, Some(serde_json::json!({"id": 7, "name": "g"})))]
        );
        let errs = errs.take();
        assert_eq!(errs.len(), 2);
        for (e, offset, why) in [
            (&errs[0], 0, "truncated"),
            (&errs[1], 1, "3 bytes left after a complete datum"),
        ] {
            assert_eq!(
                (e.code, e.topic.as_deref(), e.partition, e.offset, e.retriable),
                (
                    RDKafkaErrorCode::ValueDeserialization,
                    Some(topic.as_str()),
                    Some(0),
                    Some(offset),
                    false
                )
            );
            assert!(
                e.error.contains("avro.decode")
                    && e.error
                        .contains(&format!("partition 0 of topic {topic:?} at offset {offset}"))
                    && e.error.contains(why),
                "{}",
                e.error
            );
        }
    }

    /// With the registry down, the partition waits (nothing reaches `oks` or `errs`); once
    /// it is back, every message is decoded and none was diverted.
    #[test]
    fn a_registry_outage_holds_the_partition_and_diverts_nothing() {
        let topic = unique_topic("outage");
        let (_mock, brokers) = cluster(&topic, 2);
        let registry = MockRegistry::start();
        let id = registry.register(&format!("{topic}-value"), "AVRO", REC);
        let n = 200i64;
        produce(
            &brokers,
            &topic,
            (0..n).map(|i| {
                // The frame, then Rec{id: i % 64 (a one-byte zigzag varint), name: "x"}.
                let v = vec![0, 0, 0, 0, id as u8, ((i % 64) as u8) << 1, 0x02, b'x'];
                (vec![], v, (i % 2) as i32)
            }),
        );
        registry.stop();
        let client = SchemaRegistry::new(&registry.url)
            .unwrap()
            .retry(RetryPolicy::up_to(Duration::from_secs(60)));
        let (flow, oks, errs) = decode_flow(&brokers, &topic, client);
        let running = std::thread::spawn(move || run_workers(&flow, 2, RunConfig::default()));
        std::thread::sleep(Duration::from_secs(2));
        assert!(
            oks.take().is_empty(),
            "nothing decodes while the registry is down"
        );
        assert!(
            errs.take().is_empty(),
            "nothing is diverted while the registry is down"
        );
        assert!(!running.is_finished(), "the flow waits for the registry");
        registry.restart();
        running.join().unwrap().unwrap();
        assert_eq!(oks.take().len(), n as usize, "every message decoded");
        assert!(errs.take().is_empty());
    }

    /// A registry down for longer than the retry limit stops the flow, naming the registry
    /// and the limit; nothing goes to `errs`.
    #[test]
    fn a_registry_down_past_the_retry_limit_stops_the_flow() {
        let topic = unique_topic("down");
        let (_mock, brokers) = cluster(&topic, 1);
        let registry = MockRegistry::start();
        let id = registry.register(&format!("{topic}-value"), "AVRO", REC);
        produce(
            &brokers,
            &topic,
            [(vec![], vec![0, 0, 0, 0, id as u8, 0x0e, 0x02, 0x67], 0)],
        );
        registry.stop();
        let client = SchemaRegistry::new(&registry.url)
            .unwrap()
            .retry(RetryPolicy::up_to(Duration::from_millis(800)));
        let (flow, oks, errs) = decode_flow(&brokers, &topic, client);
        let err = run_main(&flow).unwrap_err().report();
        assert!(
            err.contains("avro.decode")
                && err.contains("offset 0")
                && err.contains(&registry.url)
                && err.contains("the retry limit is 800ms")
                && err.contains("stops rather than put a message that is not at fault"),
            "{err}"
        );
        assert!(oks.take().is_empty() && errs.take().is_empty());
    }
}
