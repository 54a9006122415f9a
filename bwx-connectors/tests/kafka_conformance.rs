//! The Kafka source and sink on the conformance kit (`bwx_runtime::testing::conformance`),
//! against real brokers, through the connectors' public API only.
//!
//! They run when `BWX_KAFKA_BROKERS` lists brokers (as `.ci/run` sets it, see
//! `scripts/kafka-brokers.sh`); each test takes the broker of its index in the list. Without
//! it they skip, saying so, unless `BWX_REQUIRE_SERVERS` is set (as under CI): then they fail.
#![cfg(feature = "kafka")]

use std::time::{Duration, Instant};

use bwx_connectors::kafka::rdkafka::ClientConfig;
use bwx_connectors::kafka::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use bwx_connectors::kafka::rdkafka::client::DefaultClientContext;
use bwx_connectors::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use bwx_connectors::kafka::rdkafka::message::Message;
use bwx_connectors::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use bwx_connectors::kafka::rdkafka::{Offset, TopicPartitionList};
use bwx_connectors::kafka::{KafkaConfig, KafkaSink, KafkaSinkMessage, KafkaSource, KafkaSourceMessage};
use bwx_runtime::inputs::ConnectorError;
use bwx_runtime::operators::{DynamicKind, FixedKind};
use bwx_runtime::testing::conformance::{
    Case, Ending, SinkKit, SinkSystem, SourceKit, SourceSystem, server_address, servers_required,
};

/// The broker of index `i` in `BWX_KAFKA_BROKERS`.
fn broker(i: usize) -> Option<String> {
    let listed = server_address("BWX_KAFKA_BROKERS")?;
    let broker = listed.split(',').map(str::trim).filter(|b| !b.is_empty()).nth(i);
    match broker {
        Some(broker) => Some(broker.to_string()),
        None if servers_required() => panic!("BWX_KAFKA_BROKERS ({listed}) names no broker {i}"),
        None => {
            eprintln!("BWX_KAFKA_BROKERS ({listed}) names no broker {i}: skipping");
            None
        }
    }
}

const PARTITIONS: i32 = 3;

fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<(), ConnectorError> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = rt.block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))?;
    for r in results {
        r.map_err(|(t, e)| format!("cannot create topic {t}: {e}"))?;
    }
    Ok(())
}

fn config(brokers: &str) -> KafkaConfig {
    KafkaConfig::new(brokers).set("session.timeout.ms", "6000")
}

/// A topic `<case>` of 3 partitions; record `r` of partition `p` is a message on partition
/// `p` whose value is `r`.
struct Topic {
    brokers: String,
    tail: bool,
}

impl SourceSystem for Topic {
    type Kind = FixedKind;
    type Source = KafkaSource;

    fn describe(&self) -> String {
        format!("KafkaSource at {} (tail {})", self.brokers, self.tail)
    }
    fn partitions(&self) -> usize {
        PARTITIONS as usize
    }
    fn ending(&self) -> Ending {
        if self.tail { Ending::Tails } else { Ending::AtEof }
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        create_topic(&self.brokers, case.name(), PARTITIONS)
    }
    fn append(&self, case: &Case, part: usize, records: &[u64]) -> Result<(), ConnectorError> {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()?;
        for r in records {
            let value = r.to_string();
            let mut record = BaseRecord::<(), _>::to(case.name())
                .payload(&value)
                .partition(part as i32);
            while let Err((e, back)) = producer.send(record) {
                if !matches!(
                    e.rdkafka_error_code(),
                    Some(bwx_connectors::kafka::rdkafka::types::RDKafkaErrorCode::QueueFull)
                ) {
                    return Err(e.into());
                }
                producer.poll(Duration::from_millis(10));
                record = back;
            }
        }
        producer.flush(Duration::from_secs(30))?;
        Ok(())
    }
    fn source(&self, case: &Case) -> Result<KafkaSource, ConnectorError> {
        Ok(KafkaSource::new(config(&self.brokers), [case.name()])
            .tail(self.tail)
            .batch_size(2))
    }
    fn record(&self, message: &KafkaSourceMessage) -> Option<u64> {
        std::str::from_utf8(message.value.as_deref()?).ok()?.parse().ok()
    }
    fn missing(&self, case: &Case) -> Option<Result<KafkaSource, ConnectorError>> {
        let topic = format!("{}_missing", case.name());
        Some(Ok(KafkaSource::new(config(&self.brokers), [topic.as_str()])
            .metadata_timeout(Duration::from_secs(5))))
    }
    fn unreachable(&self, case: &Case) -> Option<Result<KafkaSource, ConnectorError>> {
        Some(Ok(
            KafkaSource::new(config("127.0.0.1:1"), [case.name()]).metadata_timeout(Duration::from_secs(3))
        ))
    }
}

fn source_conforms(index: usize, tail: bool, test: &str) {
    let Some(brokers) = broker(index) else { return };
    SourceKit::new(Topic { brokers, tail }, test)
        .run()
        .assert_passed();
}

#[test]
fn kafka_source_tailing_conforms_on_broker_0() {
    source_conforms(0, true, "kafka_source_tailing_conforms_on_broker_0");
}

#[test]
fn kafka_source_to_the_end_conforms_on_broker_0() {
    source_conforms(0, false, "kafka_source_to_the_end_conforms_on_broker_0");
}

#[test]
fn kafka_source_tailing_conforms_on_broker_1() {
    source_conforms(1, true, "kafka_source_tailing_conforms_on_broker_1");
}

/// The topic `<case>` of one partition written by the sink, read back from the beginning
/// until it stays quiet for a second.
struct Out {
    brokers: String,
}

impl SinkSystem for Out {
    type Kind = DynamicKind;
    type Item = KafkaSinkMessage;
    type Sink = KafkaSink;

    fn describe(&self) -> String {
        format!("KafkaSink at {}", self.brokers)
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        create_topic(&self.brokers, case.name(), 1)
    }
    fn sink(&self, case: &Case) -> Result<KafkaSink, ConnectorError> {
        Ok(KafkaSink::new(config(&self.brokers), Some(case.name())))
    }
    fn item(&self, record: u64) -> KafkaSinkMessage {
        KafkaSinkMessage::new(None, Some(record.to_string().into_bytes()))
    }
    fn read_back(&self, case: &Case) -> Result<Vec<u64>, ConnectorError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", "bwx-conformance-reader")
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(case.name(), 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let mut out = Vec::new();
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < Duration::from_secs(1) {
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                let m = m?;
                let value = std::str::from_utf8(m.payload().unwrap_or_default())?;
                out.push(value.parse()?);
                quiet_since = Instant::now();
            }
        }
        Ok(out)
    }
    fn unreachable(&self, case: &Case) -> Option<Result<KafkaSink, ConnectorError>> {
        let config = config("127.0.0.1:1").set("message.timeout.ms", "3000");
        Some(Ok(KafkaSink::new(config, Some(case.name()))))
    }
}

fn sink_conforms(index: usize, test: &str) {
    let Some(brokers) = broker(index) else { return };
    SinkKit::new(Out { brokers }, test).run().assert_passed();
}

#[test]
fn kafka_sink_conforms_on_broker_0() {
    sink_conforms(0, "kafka_sink_conforms_on_broker_0");
}

#[test]
fn kafka_sink_conforms_on_broker_1() {
    sink_conforms(1, "kafka_sink_conforms_on_broker_1");
}
