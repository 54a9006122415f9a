//! [`KafkaSource`]: one resumable partition per topic-partition, no consumer group.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::ThreadId;
use std::time::Duration;

use bwx_runtime::Data;
use bwx_runtime::StepId;
use bwx_runtime::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::config::KafkaConfig;
use super::lag::{self, LagObserver, LagTarget, LagWatch};
use super::message::{KafkaError, KafkaSourceMessage};

/// Where a partition starts reading when recovery has no position for it; also the
/// partition's snapshot (the next offset to read) once it has read something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartOffset {
    /// The oldest message still in the partition.
    Beginning,
    /// After the last message at the time the partition is opened; resolved to a concrete
    /// offset when opened, so a snapshot taken before any message arrives is exact.
    End,
    /// The offset committed by the consumer group named in the `group.id` setting (bwx
    /// itself never commits; this reads what another consumer stored). Falls back to
    /// `auto.offset.reset` when there is none.
    Stored,
    /// This offset.
    Offset(i64),
}

impl StartOffset {
    fn to_rd(self) -> Offset {
        match self {
            StartOffset::Beginning => Offset::Beginning,
            StartOffset::End => Offset::End,
            StartOffset::Stored => Offset::Stored,
            StartOffset::Offset(o) => Offset::Offset(o),
        }
    }
}

/// How a source treats consumer errors: stop the flow ([`Raise`]) or emit them ([`Emit`]).
pub trait ErrorMode: Send + Sync + 'static {
    /// The items the source emits.
    type Item: Data;
    /// A message read.
    fn ok(message: KafkaSourceMessage) -> Self::Item;
    /// A consumer error: an item, or an error that stops the flow.
    fn err(error: KafkaError<KafkaSourceMessage>) -> Result<Self::Item, ConnectorError>;
}

/// Consumer errors stop the flow with a message naming step, topic and partition.
#[derive(Debug)]
pub enum Raise {}

/// Consumer errors are emitted as `Err` items (see [`crate::kafka::input`]).
#[derive(Debug)]
pub enum Emit {}

impl ErrorMode for Raise {
    type Item = KafkaSourceMessage;
    fn ok(message: KafkaSourceMessage) -> KafkaSourceMessage {
        message
    }
    fn err(error: KafkaError<KafkaSourceMessage>) -> Result<KafkaSourceMessage, ConnectorError> {
        Err(error.error.into())
    }
}

impl ErrorMode for Emit {
    type Item = Result<KafkaSourceMessage, KafkaError<KafkaSourceMessage>>;
    fn ok(message: KafkaSourceMessage) -> Self::Item {
        Ok(message)
    }
    fn err(error: KafkaError<KafkaSourceMessage>) -> Result<Self::Item, ConnectorError> {
        Ok(Err(error))
    }
}

/// Reads Kafka topics: one partition of the source per topic-partition, named
/// `"{partition}-{topic}"`, each read by one worker. The partitions a worker reads share
/// one consumer (one set of broker connections and fetches), each with its own queue.
///
/// - **No consumer group.** Partitions are assigned, never subscribed: `group.id` is
///   replaced (except for [`StartOffset::Stored`]), auto commit and offset store are off.
///   A partition's position (the next offset) is its recovery snapshot, so a resumed flow
///   continues exactly where its last snapshot was taken.
/// - **Partitions are listed when the flow starts.** Partitions added to a topic later are
///   read only after a restart.
/// - `tail(false)` stops each partition at its end (partition EOF) and so ends the flow;
///   the default, `tail(true)`, follows the partitions forever.
/// - Any librdkafka setting in the [`KafkaConfig`] is passed to every consumer
///   (SASL, SSL, fetch sizes, ...); secret values are never printed.
/// - Consumer errors stop the flow with a message naming step, topic and partition;
///   [`crate::kafka::input`] emits them on an `errs` stream instead. Client errors that
///   librdkafka recovers from by itself (a broker disconnecting or restarting) are not
///   errors of the flow: reading resumes when the broker is back. Fatal client errors are.
///
/// ```no_run
/// use bwx::connectors::kafka::{KafkaConfig, KafkaSource, StartOffset};
/// use bwx::prelude::*;
/// use bwx::testing::TestingSink;
///
/// let flow = Dataflow::new("read");
/// let source = KafkaSource::new(KafkaConfig::new("127.0.0.1:9092"), ["events"])
///     .starting_offset(StartOffset::Beginning)
///     .tail(false);
/// flow.input("in", source).map("len", |m| m.value.map_or(0, |v| v.len())).output("out", TestingSink::new());
/// bwx::run_main(&flow).unwrap();
/// ```
pub struct KafkaSource<M = Raise> {
    config: KafkaConfig,
    topics: Vec<String>,
    tail: bool,
    start: StartOffset,
    batch_size: usize,
    timeout: Duration,
    lag: Option<(LagObserver, Duration)>,
    /// Why listing a topic failed, by the placeholder partition name listed instead, so that
    /// opening it fails the flow with the reason (listing itself cannot return an error).
    list_errors: Mutex<Vec<(String, String)>>,
    /// The consumer each worker's partitions share, by worker thread (the engine builds a
    /// worker's partitions on its thread) and group id; gone when its partitions are.
    consumers: Mutex<Vec<(ThreadId, String, Weak<BaseConsumer>)>>,
    _mode: PhantomData<fn() -> M>,
}

/// The group id set on consumers; no group is ever joined.
const IGNORED_GROUP: &str = "bwx-ignored";

impl KafkaSource<Raise> {
    /// A source reading `topics` from the beginning, following them (`tail`), in batches of
    /// at most 1000 messages.
    pub fn new<I, S>(config: KafkaConfig, topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        KafkaSource {
            config,
            topics: topics.into_iter().map(Into::into).collect(),
            tail: true,
            start: StartOffset::Beginning,
            batch_size: 1000,
            timeout: Duration::from_secs(10),
            lag: None,
            list_errors: Mutex::new(Vec::new()),
            consumers: Mutex::new(Vec::new()),
            _mode: PhantomData,
        }
    }

    /// Emits consumer errors as `Err` items instead of stopping the flow.
    pub fn emit_errors(self) -> KafkaSource<Emit> {
        KafkaSource {
            config: self.config,
            topics: self.topics,
            tail: self.tail,
            start: self.start,
            batch_size: self.batch_size,
            timeout: self.timeout,
            lag: self.lag,
            list_errors: self.list_errors,
            consumers: self.consumers,
            _mode: PhantomData,
        }
    }
}

impl<M: ErrorMode> KafkaSource<M> {
    /// Follow the partitions (`true`, the default) or stop at their end (`false`).
    pub fn tail(mut self, tail: bool) -> Self {
        self.tail = tail;
        self
    }

    /// Where partitions without a recovery position start (default: the beginning).
    pub fn starting_offset(mut self, start: StartOffset) -> Self {
        self.start = start;
        self
    }

    /// The most messages one poll of a partition emits (default 1000; at least 1).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// How long listing partitions and resolving [`StartOffset::End`] may take (default 10 s).
    pub fn metadata_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Reports every partition's consumer lag to `observer` about once per `interval`,
    /// from a thread per partition (see [`super::ConsumerLag`]).
    pub fn on_lag(
        mut self,
        interval: Duration,
        observer: impl Fn(&super::ConsumerLag) + Send + Sync + 'static,
    ) -> Self {
        self.lag = Some((Arc::new(observer), interval));
        self
    }

    fn list_topic(&self, consumer: &BaseConsumer, topic: &str) -> Result<Vec<String>, String> {
        let metadata = consumer
            .fetch_metadata(Some(topic), self.timeout)
            .map_err(|e| self.config.scrub(&e.to_string()))?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err("the broker did not describe it".into());
        };
        if let Some(err) = t.error() {
            return Err(format!("{:?}", rdkafka::types::RDKafkaErrorCode::from(err)));
        }
        if t.partitions().is_empty() {
            return Err("it has no partitions (does it exist?)".into());
        }
        Ok(t.partitions()
            .iter()
            .map(|p| format!("{}-{topic}", p.id()))
            .collect())
    }

    /// The consumer this worker's partitions with `group` share, created on first use.
    fn worker_consumer(&self, group: &str) -> Result<Arc<BaseConsumer>, String> {
        let me = std::thread::current().id();
        let mut cache = self
            .consumers
            .lock()
            .map_err(|_| "the shared consumer lock is poisoned".to_string())?;
        cache.retain(|(_, _, c)| c.strong_count() > 0);
        if let Some(c) = cache
            .iter()
            .find(|(t, g, _)| *t == me && g == group)
            .and_then(|(_, _, c)| c.upgrade())
        {
            return Ok(c);
        }
        let forced = [
            ("group.id", group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", if self.tail { "false" } else { "true" }),
        ];
        let consumer: Arc<BaseConsumer> = Arc::new(
            self.config
                .client_config(&forced)
                .create()
                .map_err(|e| format!("cannot create a consumer: {}", self.config.scrub(&e.to_string())))?,
        );
        cache.push((me, group.to_string(), Arc::downgrade(&consumer)));
        Ok(consumer)
    }

    fn listing_error(&self, for_part: &str) -> Option<String> {
        let errors = self.list_errors.lock().ok()?;
        errors.iter().find(|(p, _)| p == for_part).map(|(_, e)| e.clone())
    }
}

impl<M: ErrorMode> FixedPartitionedSource for KafkaSource<M> {
    type Item = M::Item;
    type State = StartOffset;
    type Partition = KafkaSourcePartition<M>;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        let consumer: Result<BaseConsumer, _> =
            self.config.client_config(&[("group.id", IGNORED_GROUP)]).create();
        let mut parts = Vec::new();
        let mut errors = Vec::new();
        for topic in &self.topics {
            let listed = match &consumer {
                Ok(c) => self.list_topic(c, topic),
                Err(e) => Err(format!(
                    "cannot create a consumer: {}",
                    self.config.scrub(&e.to_string())
                )),
            };
            match listed {
                Ok(p) => parts.extend(p),
                Err(why) => {
                    // A name that is not `{partition}-{topic}`: opening it reports `why`.
                    let placeholder = format!("unlisted-{topic}");
                    errors.push((
                        placeholder.clone(),
                        format!(
                            "cannot list the partitions of topic {topic:?} at {}: {why}",
                            self.config.brokers()
                        ),
                    ));
                    parts.push(placeholder);
                }
            }
        }
        if let Ok(mut slot) = self.list_errors.lock() {
            *slot = errors;
        }
        Ok(parts)
    }

    fn build_part(
        &self,
        step_id: &StepId,
        for_part: &str,
        resume_state: Option<StartOffset>,
    ) -> Result<KafkaSourcePartition<M>, ConnectorError> {
        let parsed = for_part
            .split_once('-')
            .and_then(|(p, t)| Some((p.parse::<i32>().ok()?, t)));
        let Some((partition, topic)) = parsed else {
            return Err(self
                .listing_error(for_part)
                .unwrap_or_else(|| {
                    format!("{for_part:?} is not a Kafka partition name (`{{partition}}-{{topic}}`)")
                })
                .into());
        };
        let start = resume_state.unwrap_or(self.start);
        let group = match start {
            StartOffset::Stored => self
                .config
                .get("group.id")
                .ok_or("StartOffset::Stored reads a consumer group's committed offsets: set `group.id`")?,
            _ => IGNORED_GROUP,
        };
        let consumer = self.worker_consumer(group)?;
        let start = match start {
            StartOffset::End => {
                let (_, high) = consumer
                    .fetch_watermarks(topic, partition, self.timeout)
                    .map_err(|e| format!("cannot find the end of the partition: {e}"))?;
                StartOffset::Offset(high)
            }
            other => other,
        };
        // The queue is split off before the partition is assigned, so that none of its
        // messages lands on the shared queue; assignments add up (a plain `assign` would
        // replace the worker's other partitions and undo their split queues).
        let queue = consumer
            .split_partition_queue(topic, partition)
            .ok_or_else(|| format!("cannot make a queue for partition {partition} of topic {topic:?}"))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, start.to_rd())
            .and_then(|()| consumer.incremental_assign(&tpl))
            .map_err(|e| format!("cannot assign partition {partition} of topic {topic:?}: {e}"))?;
        let next = Arc::new(AtomicI64::new(match start {
            StartOffset::Offset(o) => o,
            _ => lag::UNKNOWN,
        }));
        let lag_watch = match &self.lag {
            Some((observer, interval)) => Some(lag::watch(
                &self.config,
                LagTarget {
                    step_id: step_id.to_string(),
                    topic: topic.to_string(),
                    partition,
                    next: next.clone(),
                },
                observer.clone(),
                *interval,
            )?),
            None => None,
        };
        Ok(KafkaSourcePartition {
            queue,
            consumer,
            next_shared: next,
            _lag_watch: lag_watch,
            topic: topic.into(),
            partition,
            next: start,
            tail: self.tail,
            batch_size: self.batch_size,
            step: step_id.clone(),
            _mode: PhantomData,
        })
    }
}

/// One topic-partition being read; see [`KafkaSource`].
pub struct KafkaSourcePartition<M> {
    /// This partition's messages and errors.
    queue: PartitionQueue<DefaultConsumerContext>,
    /// The worker's shared consumer, polled for client-level events.
    consumer: Arc<BaseConsumer>,
    /// The next offset, for the lag thread; updated once per batch.
    next_shared: Arc<AtomicI64>,
    _lag_watch: Option<LagWatch>,
    topic: Arc<str>,
    partition: i32,
    next: StartOffset,
    tail: bool,
    batch_size: usize,
    step: StepId,
    _mode: PhantomData<fn() -> M>,
}

impl<M> KafkaSourcePartition<M> {
    fn convert(&self, m: &BorrowedMessage<'_>) -> KafkaSourceMessage {
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        KafkaSourceMessage {
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            topic: self.topic.clone(),
            headers,
            offset: m.offset(),
            partition: self.partition,
            timestamp: m.timestamp().to_millis(),
        }
    }

    fn error(&self, e: &RdError) -> KafkaError<KafkaSourceMessage> {
        let offset = match self.next {
            StartOffset::Offset(o) => o,
            _ => -1,
        };
        KafkaError {
            error: format!(
                "step {}: cannot read partition {} of topic {:?}: {e}",
                self.step, self.partition, self.topic
            ),
            message: KafkaSourceMessage {
                key: None,
                value: None,
                topic: self.topic.clone(),
                headers: Vec::new(),
                offset,
                partition: self.partition,
                timestamp: None,
            },
        }
    }
}

impl<M: ErrorMode> StatefulSourcePartition for KafkaSourcePartition<M> {
    type Item = M::Item;
    type State = StartOffset;

    fn next_batch(&mut self, batch: &mut Vec<M::Item>) -> Result<BatchStatus, ConnectorError> {
        // librdkafka prefetches into a local queue; polling with no wait drains it, and an
        // empty poll lets the engine cool down for 1 ms instead of blocking the worker.
        while batch.len() < self.batch_size {
            match self.queue.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => {
                    self.next = StartOffset::Offset(m.offset() + 1);
                    let item = self.convert(&m);
                    batch.push(M::ok(item));
                }
                Some(Err(RdError::PartitionEOF(_))) => {
                    if !self.tail {
                        return Ok(BatchStatus::Eof);
                    }
                }
                Some(Err(e)) => {
                    let err = self.error(&e);
                    batch.push(M::err(err)?);
                }
            }
        }
        // The shared queue carries client-level events only (every partition has its own).
        match self.consumer.poll(Duration::ZERO) {
            None => {}
            Some(Err(e @ RdError::MessageConsumptionFatal(_))) => {
                let err = self.error(&e);
                batch.push(M::err(err)?);
            }
            // librdkafka reconnects and refetches by itself (e.g. after "all brokers down"),
            // so the flow goes on; the operator still hears of it.
            Some(Err(e)) => tracing::warn!(
                "step {}: the Kafka client reports (it retries by itself): {e}",
                self.step
            ),
            Some(Ok(m)) => {
                return Err(format!(
                    "step {}: a message of partition {} of topic {:?} arrived on the worker's shared queue instead of its own",
                    self.step,
                    m.partition(),
                    m.topic()
                )
                .into());
            }
        }
        if let StartOffset::Offset(o) = self.next {
            self.next_shared.store(o, Ordering::Relaxed);
        }
        Ok(BatchStatus::Active)
    }

    fn snapshot(&self) -> StartOffset {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::mocking::MockCluster;
    use serde::de::value::Error as ValueError;
    use serde::de::{Deserialize, IntoDeserializer};

    use super::*;

    #[test]
    fn a_workers_partitions_share_one_consumer_and_workers_do_not() {
        let mock = MockCluster::new(1).unwrap();
        mock.create_topic("t", 3, 1).unwrap();
        let source = KafkaSource::new(KafkaConfig::new(mock.bootstrap_servers()), ["t"]);
        let step = StepId::deserialize(IntoDeserializer::<ValueError>::into_deserializer("f.in")).unwrap();
        let (a, b) = (
            source.build_part(&step, "0-t", None).unwrap(),
            source.build_part(&step, "1-t", None).unwrap(),
        );
        assert!(Arc::ptr_eq(&a.consumer, &b.consumer));
        let other = std::thread::scope(|s| {
            s.spawn(|| source.build_part(&step, "2-t", None).map(|p| p.consumer))
                .join()
                .unwrap()
                .unwrap()
        });
        assert!(!Arc::ptr_eq(&a.consumer, &other));
        // Once this thread's partitions are gone, a new one gets a new consumer and the
        // cache forgets the old one (the other thread's is still alive).
        let old = Arc::downgrade(&a.consumer);
        drop((a, b));
        let again = source.build_part(&step, "0-t", None).unwrap();
        assert!(old.upgrade().is_none());
        assert_eq!(source.consumers.lock().unwrap().len(), 2);
        drop((again, other));
    }
}
