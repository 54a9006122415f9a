//! [`KafkaSink`]: one producer per worker, flushed once per epoch.

use std::sync::Mutex;
use std::time::Duration;

use bwx_runtime::StepId;
use bwx_runtime::inputs::ConnectorError;
use bwx_runtime::outputs::{DynamicSink, StatelessSinkPartition};
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

use super::buffers;
use super::client::ClientLogs;
use super::config::KafkaConfig;
use super::error::KafkaError;
use super::message::KafkaSinkMessage;
use super::produce;
use super::serde::MessageField;

/// Writes [`KafkaSinkMessage`]s to Kafka: a dynamic sink with one producer per worker.
///
/// Each message goes to its own `topic` (or the sink's default), with its key, headers,
/// partition and timestamp. Messages are handed to librdkafka as they come (it batches and
/// sends them in the background) and the producer is **flushed once per epoch**, when the
/// epoch closes: every message of the epoch is then acknowledged, or the flow stops with
/// the first delivery error: a [`KafkaError`] naming step, topic and partition, with
/// librdkafka's code (e.g. a partition the topic does not have). With recovery on, the
/// epoch's snapshots are committed only after that flush, so the sink is
/// **at-least-once**: after a resume, the output of the epochs after the last snapshot is
/// written again. For exactly-once output in Kafka transactions, see
/// [`KafkaSink::exactly_once`].
///
/// Any librdkafka producer setting in the [`KafkaConfig`] is passed through (`acks`,
/// `linger.ms`, `compression.type`, SASL/SSL, ...).
///
/// librdkafka copies each message's key and value when it is handed over; the sink then
/// gives the key and value buffers back to the worker's [`KafkaSource`](super::KafkaSource)
/// partitions, which copy the next messages they read into them. A flow that only forwards
/// messages (`kafka::input` → `kafka::output`) so allocates no key or value buffer per
/// message; nothing changes for flows that build their own messages.
///
/// ```no_run
/// use bwx::connectors::kafka::{KafkaConfig, KafkaSink, KafkaSinkMessage};
/// use bwx::prelude::*;
/// use bwx::testing::TestingSource;
///
/// let flow = Dataflow::new("write");
/// flow.input("in", TestingSource::new(vec!["a", "b"]))
///     .map("msg", |s: &str| KafkaSinkMessage::new(None, Some(s.as_bytes().to_vec())))
///     .output("out", KafkaSink::new(KafkaConfig::new("127.0.0.1:9092"), Some("letters")));
/// bwx::run_main(&flow).unwrap();
/// ```
#[derive(Debug)]
pub struct KafkaSink {
    config: KafkaConfig,
    topic: Option<String>,
}

impl KafkaSink {
    /// A sink writing to `topic` unless a message names its own (`None`: every message must).
    pub fn new(config: KafkaConfig, topic: Option<&str>) -> Self {
        KafkaSink {
            config,
            topic: topic.map(str::to_string),
        }
    }

    pub(crate) fn into_parts(self) -> (KafkaConfig, Option<String>) {
        (self.config, self.topic)
    }
}

impl DynamicSink for KafkaSink {
    type Item = KafkaSinkMessage;
    type Partition = KafkaSinkPartition;

    fn build(
        &self,
        step_id: &StepId,
        _worker: usize,
        _workers: usize,
    ) -> Result<KafkaSinkPartition, ConnectorError> {
        let producer: BaseProducer<SinkContext> = self
            .config
            .client_config(&[])
            .create_with_context(SinkContext::new(format!("step {step_id}: producer")))
            .map_err(|e| format!("cannot create a producer: {}", self.config.scrub(&e.to_string())))?;
        Ok(KafkaSinkPartition {
            producer,
            topic: self.topic.clone(),
            step: step_id.clone(),
        })
    }
}

/// Records the first failed delivery (librdkafka reports deliveries while polling) and
/// logs the client's events.
pub(crate) struct SinkContext {
    logs: ClientLogs,
    failed: Mutex<Option<KafkaError<()>>>,
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.logs.log(level, facility, message);
    }

    fn error(&self, error: RdError, reason: &str) {
        self.logs.error(error, reason);
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result
            && let Ok(mut slot) = self.failed.lock()
            && slot.is_none()
        {
            let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
            let partition = (m.partition() >= 0).then_some(m.partition());
            let mut err = KafkaError::new(
                format!(
                    "cannot deliver a message to {} of topic {:?}: {e}",
                    partition.map_or_else(|| "a partition".to_string(), |p| format!("partition {p}")),
                    m.topic()
                ),
                code,
                (),
            )
            .at(Some(m.topic().into()), partition, None);
            err.fatal = code == RDKafkaErrorCode::Fatal;
            *slot = Some(err);
        }
    }
}

/// A worker's producer; see [`KafkaSink`].
pub struct KafkaSinkPartition {
    producer: BaseProducer<SinkContext>,
    topic: Option<String>,
    step: StepId,
}

impl SinkContext {
    pub(crate) fn new(label: String) -> Self {
        SinkContext {
            logs: ClientLogs::new(label),
            failed: Mutex::new(None),
        }
    }

    /// The first delivery that failed since the last call, naming the step and, for a
    /// partition the topic lacks, how many partitions it has.
    pub(crate) fn take_failure(
        &self,
        producer: &BaseProducer<SinkContext>,
        step: &StepId,
    ) -> Result<(), ConnectorError> {
        match self.failed.lock() {
            Ok(mut slot) => match slot.take() {
                Some(mut e) => {
                    // Asked here, not in the delivery callback, which runs inside a poll.
                    let has = match (&e.topic, e.code) {
                        (Some(t), RDKafkaErrorCode::UnknownPartition) => partition_count(producer, t),
                        _ => String::new(),
                    };
                    e.error = format!("step {step}: {}{has}", e.error);
                    Err(Box::new(e))
                }
                None => Ok(()),
            },
            Err(_) => Err(format!("step {step}: the delivery report lock is poisoned").into()),
        }
    }
}

/// Hands one message to librdkafka: to its own topic, else `default_topic`. Without headers,
/// without an allocation ([`produce`]).
pub(crate) fn send_message(
    producer: &BaseProducer<SinkContext>,
    default_topic: Option<&str>,
    step: &StepId,
    m: &KafkaSinkMessage,
) -> Result<(), ConnectorError> {
    let topic = match (&m.topic, default_topic) {
        (Some(t), _) => &**t,
        (None, Some(t)) => t,
        (None, None) => {
            return Err(
                format!("step {step}: a message has no topic and the sink has no default topic").into(),
            );
        }
    };
    if m.headers.is_empty() {
        let record = produce::Record {
            topic,
            key: m.key.as_deref(),
            value: m.value.as_deref(),
            partition: m.partition,
            timestamp: m.timestamp,
        };
        loop {
            match produce::produce(producer, &record) {
                None => break,
                Some(Ok(())) => return Ok(()),
                // The local queue is full: serve deliveries to make room, then retry.
                Some(Err(RDKafkaErrorCode::QueueFull)) => {
                    producer.poll(Duration::from_millis(10));
                }
                Some(Err(code)) => {
                    let e = RdError::MessageProduction(code);
                    return Err(Box::new(produce_error(producer, step, topic, m.partition, &e)));
                }
            }
        }
    }
    let mut record = BaseRecord::<[u8], [u8]>::to(topic);
    if let Some(k) = &m.key {
        record = record.key(k.as_slice());
    }
    if let Some(v) = &m.value {
        record = record.payload(v.as_slice());
    }
    if let Some(p) = m.partition {
        record = record.partition(p);
    }
    if let Some(ts) = m.timestamp {
        record = record.timestamp(ts);
    }
    if !m.headers.is_empty() {
        let headers = m.headers.iter().fold(
            OwnedHeaders::new_with_capacity(m.headers.len()),
            |hs, (key, value)| {
                hs.insert(Header {
                    key,
                    value: value.as_ref(),
                })
            },
        );
        record = record.headers(headers);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            // The local queue is full: serve deliveries to make room, then retry.
            Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                producer.poll(Duration::from_millis(10));
                record = r;
            }
            Err((e, _)) => return Err(Box::new(produce_error(producer, step, topic, m.partition, &e))),
        }
    }
}

/// A message librdkafka refused, naming the partition asked for and, when it does not
/// exist, how many the topic has.
fn produce_error(
    producer: &BaseProducer<SinkContext>,
    step: &StepId,
    topic: &str,
    partition: Option<i32>,
    e: &RdError,
) -> KafkaError<()> {
    let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
    let target = match partition {
        Some(p) => format!("partition {p} of topic {topic:?}"),
        None => format!("topic {topic:?}"),
    };
    let has = match code {
        RDKafkaErrorCode::UnknownPartition => partition_count(producer, topic),
        _ => String::new(),
    };
    KafkaError::new(
        format!("step {step}: cannot produce to {target}{has}: {e}"),
        code,
        (),
    )
    .at(Some(topic.into()), partition, None)
}

/// ` (the topic has N partitions)`, when the broker says.
fn partition_count(producer: &BaseProducer<SinkContext>, topic: &str) -> String {
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()
        .and_then(|md| {
            md.topics()
                .iter()
                .find(|t| t.name() == topic)
                .map(|t| t.partitions().len())
        })
        .map_or_else(String::new, |n| format!(" (the topic has {n} partitions)"))
}

impl KafkaSinkPartition {
    /// Waits until every message sent is acknowledged or failed, then reports a failure.
    fn wait_for_deliveries(&self) -> Result<(), ConnectorError> {
        // rdkafka's `flush(timeout)` serves events in 100 ms slices until the timeout ends,
        // so one long flush costs at least 100 ms. Short flushes in a loop return within
        // about 1 ms of the last acknowledgement; they end when every message is delivered
        // or failed (after `message.timeout.ms`).
        loop {
            match self.producer.flush(Duration::from_millis(1)) {
                Ok(()) => break,
                Err(RdError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {}
                Err(e) => return Err(format!("step {}: cannot flush the producer: {e}", self.step).into()),
            }
        }
        self.producer.context().take_failure(&self.producer, &self.step)
    }
}

impl StatelessSinkPartition for KafkaSinkPartition {
    type Item = KafkaSinkMessage;

    fn write_batch(&mut self, items: &mut Vec<KafkaSinkMessage>) -> Result<(), ConnectorError> {
        for m in items.drain(..) {
            send_message(&self.producer, self.topic.as_deref(), &self.step, &m)?;
            // librdkafka copied the bytes: the buffers go back to this worker's source.
            if let Some(key) = m.key {
                buffers::recycle(MessageField::Key, key);
            }
            if let Some(value) = m.value {
                buffers::recycle(MessageField::Value, value);
            }
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn pre_commit(&mut self, _epoch: u64) -> Result<(), ConnectorError> {
        self.wait_for_deliveries()
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        self.wait_for_deliveries()
    }
}
