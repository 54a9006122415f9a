//! [`KafkaSource`]: one resumable partition per topic-partition, no consumer group.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::ThreadId;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bwx_runtime::Data;
use bwx_runtime::StepId;
use bwx_runtime::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{BorrowedMessage, Headers as _, Message, Timestamp};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::buffers;
use super::client::ClientLogs;
use super::config::KafkaConfig;
use super::error::KafkaError;
use super::lag::{self, LagObserver, LagTarget, LagWatch};
use super::message::{KafkaSourceMessage, TimestampType};
use super::serde::MessageField;
use super::watch::{TopicState, TopicWatch};

/// The consumers bwx creates, with its log handling.
pub(crate) type KafkaConsumer = BaseConsumer<ClientLogs>;

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

/// What a partition does when the broker no longer has the offset it reads next.
///
/// Two cases, both reported (an error on `errs` with code `AutoOffsetReset`, or, for a
/// source that raises, an error log line) with the offsets concerned:
/// - **Offsets went backwards:** the next offset is past the partition's end. The broker
///   lost messages it had acknowledged (and this flow had read) and will give their
///   offsets to new messages, or the topic was deleted and created again.
/// - **Messages expired:** the next offset is before the partition's start: retention
///   deleted messages before the flow read them.
///
/// It is noticed when the consumer next fetches the partition (librdkafka's
/// `auto.offset.reset` is set to `error` for this). If producers wrote past the old end
/// before that fetch, a broker that keeps no leader epochs cannot show that anything
/// happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnOffsetsLost {
    /// Report it and read on from the broker's current end (after going backwards: the
    /// first reused offset, so every message written from then on is read) or start
    /// (after expiry). The default.
    #[default]
    ReadOn,
    /// Report it and stop the flow with the error, for a person to decide.
    Stop,
}

/// How a source treats consumer errors: stop the flow ([`Raise`]) or emit them ([`Emit`]).
pub trait ErrorMode: Send + Sync + 'static {
    /// The items the source emits.
    type Item: Data;
    /// A message read.
    fn ok(message: KafkaSourceMessage) -> Self::Item;
    /// A consumer error: an item, or an error that stops the flow.
    fn err(error: KafkaError<KafkaSourceMessage>) -> Result<Self::Item, ConnectorError>;
    /// Whether errors are emitted (`true`) or stop the flow.
    const EMITS: bool;
}

/// Consumer errors stop the flow with a message naming step, topic and partition.
#[derive(Debug)]
pub enum Raise {}

/// Consumer errors are emitted as `Err` items (see [`crate::kafka::input`]).
#[derive(Debug)]
pub enum Emit {}

impl ErrorMode for Raise {
    type Item = KafkaSourceMessage;
    const EMITS: bool = false;
    fn ok(message: KafkaSourceMessage) -> KafkaSourceMessage {
        message
    }
    fn err(error: KafkaError<KafkaSourceMessage>) -> Result<KafkaSourceMessage, ConnectorError> {
        Err(Box::new(error))
    }
}

impl ErrorMode for Emit {
    type Item = Result<KafkaSourceMessage, KafkaError<KafkaSourceMessage>>;
    const EMITS: bool = true;
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
/// - **Partitions are listed when the flow starts.** The topics are watched while the flow
///   runs (every [`metadata_interval`](Self::metadata_interval), 5 s by default): partitions
///   added to a topic are reported as a warning and read after a restart (a resumed flow
///   reads them from `starting_offset`); a topic deleted under the flow is reported by each
///   of its partitions as an error (code `UnknownTopicOrPartition`) and ends those
///   partitions when not tailing.
/// - **Offsets the broker no longer has** (it lost acknowledged messages and reuses their
///   offsets, or retention deleted unread ones) are reported and handled per
///   [`OnOffsetsLost`].
/// - `tail(false)` stops each partition at its end (partition EOF) and so ends the flow;
///   the default, `tail(true)`, follows the partitions forever.
/// - **Keys and values** are copied out of librdkafka's fetch buffer into `Vec<u8>`s (a
///   message cannot outlive the consumer's poll in the rdkafka crate). The buffers come
///   from the ones the worker's [`KafkaSink`](super::KafkaSink) gave back after producing,
///   so a flow that forwards messages to Kafka allocates none per message once it runs.
/// - Any librdkafka setting in the [`KafkaConfig`] is passed to every consumer
///   (SASL, SSL, fetch sizes, ...); secret values are never printed.
/// - Consumer errors stop the flow with a [`KafkaError`] naming step, topic, partition,
///   offset and librdkafka's code; [`crate::kafka::input`] emits them on an `errs` stream
///   instead (the same error is emitted once per partition until a message is read
///   again). Client errors that librdkafka recovers from by itself (a broker disconnecting
///   or restarting) are not errors of the flow: they are logged as warnings and reading
///   resumes when the broker is back. Fatal client errors are errors.
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
    metadata_interval: Duration,
    on_offsets_lost: OnOffsetsLost,
    lag: Option<(LagObserver, Duration)>,
    /// Why listing a topic failed, by the placeholder partition name listed instead, so that
    /// opening it fails the flow with the reason (listing itself cannot return an error).
    list_errors: Mutex<Vec<(String, String)>>,
    /// The consumer each worker's partitions share, by worker thread (the engine builds a
    /// worker's partitions on its thread) and group id; gone when its partitions are.
    consumers: Mutex<Vec<(ThreadId, String, Weak<KafkaConsumer>)>>,
    /// The topic watch of this process's partitions; gone when they are.
    watch: Mutex<Weak<TopicWatch>>,
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
            metadata_interval: Duration::from_secs(5),
            on_offsets_lost: OnOffsetsLost::default(),
            lag: None,
            list_errors: Mutex::new(Vec::new()),
            consumers: Mutex::new(Vec::new()),
            watch: Mutex::new(Weak::new()),
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
            metadata_interval: self.metadata_interval,
            on_offsets_lost: self.on_offsets_lost,
            lag: self.lag,
            list_errors: self.list_errors,
            consumers: self.consumers,
            watch: self.watch,
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

    /// How often the topics are checked for deletion and added partitions while the flow
    /// runs (default 5 s); also librdkafka's `topic.metadata.refresh.interval.ms` unless
    /// the configuration sets it.
    pub fn metadata_interval(mut self, interval: Duration) -> Self {
        self.metadata_interval = interval.max(Duration::from_millis(100));
        self
    }

    /// What a partition does when the broker no longer has its next offset (default
    /// [`OnOffsetsLost::ReadOn`]).
    pub fn on_offsets_lost(mut self, policy: OnOffsetsLost) -> Self {
        self.on_offsets_lost = policy;
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

    fn list_topic(&self, consumer: &KafkaConsumer, topic: &str) -> Result<Vec<String>, String> {
        let metadata = consumer
            .fetch_metadata(Some(topic), self.timeout)
            .map_err(|e| self.config.scrub(&e.to_string()))?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err("the broker did not describe it".into());
        };
        if let Some(err) = t.error() {
            return Err(format!("{:?}", RDKafkaErrorCode::from(err)));
        }
        if t.partitions().is_empty() {
            return Err("it has no partitions (does it exist?)".into());
        }
        Ok(t.partitions()
            .iter()
            .map(|p| format!("{}-{topic}", p.id()))
            .collect())
    }

    /// The settings every consumer of this source gets.
    fn consumer_settings(&self, group: &str) -> Vec<(&'static str, String)> {
        let mut forced = vec![
            ("group.id", group.to_string()),
            ("enable.auto.commit", "false".to_string()),
            ("enable.auto.offset.store", "false".to_string()),
            (
                "enable.partition.eof",
                if self.tail { "false" } else { "true" }.to_string(),
            ),
        ];
        // A fetch past the end (offsets went backwards) or before the start (expired
        // messages) becomes an error this source handles, not a silent jump. A stored
        // group offset keeps the user's fallback.
        if group == IGNORED_GROUP {
            forced.push(("auto.offset.reset", "error".to_string()));
        }
        if self.config.get("topic.metadata.refresh.interval.ms").is_none() {
            forced.push((
                "topic.metadata.refresh.interval.ms",
                self.metadata_interval.as_millis().to_string(),
            ));
        }
        forced
    }

    fn create_consumer(&self, label: String, group: &str) -> Result<KafkaConsumer, String> {
        let forced = self.consumer_settings(group);
        let forced: Vec<(&str, &str)> = forced.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.config
            .client_config(&forced)
            .create_with_context(ClientLogs::new(label))
            .map_err(|e| format!("cannot create a consumer: {}", self.config.scrub(&e.to_string())))
    }

    /// The consumer this worker's partitions with `group` share, created on first use.
    fn worker_consumer(&self, step: &StepId, group: &str) -> Result<Arc<KafkaConsumer>, String> {
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
        let consumer = Arc::new(self.create_consumer(format!("step {step}: consumer"), group)?);
        cache.push((me, group.to_string(), Arc::downgrade(&consumer)));
        Ok(consumer)
    }

    /// The process's topic watch, started with its first partition.
    fn topic_watch(&self, step: &StepId) -> Result<Arc<TopicWatch>, String> {
        let mut slot = self
            .watch
            .lock()
            .map_err(|_| "the topic watch lock is poisoned".to_string())?;
        if let Some(w) = slot.upgrade() {
            return Ok(w);
        }
        let client = self.create_consumer(format!("step {step}: topic watch"), IGNORED_GROUP)?;
        let w = TopicWatch::start(
            client,
            step.to_string(),
            self.topics.clone(),
            self.metadata_interval,
        )?;
        *slot = Arc::downgrade(&w);
        Ok(w)
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
        let consumer = self.create_consumer("listing partitions".into(), IGNORED_GROUP);
        let mut parts = Vec::new();
        let mut errors = Vec::new();
        for topic in &self.topics {
            let listed = match &consumer {
                Ok(c) => self.list_topic(c, topic),
                Err(e) => Err(e.clone()),
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
        let consumer = self.worker_consumer(step_id, group)?;
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
        let lag_watch = match self.lag.clone().or_else(lag::metrics_observer) {
            Some((observer, interval)) => Some(lag::watch(
                &self.config,
                LagTarget {
                    step_id: step_id.to_string(),
                    topic: topic.to_string(),
                    partition,
                    next: next.clone(),
                },
                observer,
                interval,
            )?),
            None => None,
        };
        let watch = self.topic_watch(step_id)?;
        Ok(KafkaSourcePartition {
            queue,
            consumer,
            next_shared: next,
            _lag_watch: lag_watch,
            seen_changes: watch.changes(),
            watch,
            topic_gone: false,
            last_error: None,
            topic: topic.into(),
            partition,
            next: start,
            tail: self.tail,
            batch_size: self.batch_size,
            timeout: self.timeout,
            on_offsets_lost: self.on_offsets_lost,
            step: step_id.clone(),
            _mode: PhantomData,
        })
    }
}

/// One topic-partition being read; see [`KafkaSource`].
pub struct KafkaSourcePartition<M> {
    /// This partition's messages and errors.
    queue: PartitionQueue<ClientLogs>,
    /// The worker's shared consumer, polled for client-level events.
    consumer: Arc<KafkaConsumer>,
    /// The next offset, for the lag thread; updated once per batch.
    next_shared: Arc<AtomicI64>,
    _lag_watch: Option<LagWatch>,
    watch: Arc<TopicWatch>,
    /// The watch's change count when this partition last looked.
    seen_changes: u64,
    /// Whether the topic's deletion was reported (until it is back).
    topic_gone: bool,
    /// The code of the last consumer error emitted, until a message is read: the same
    /// error is emitted once, not at every fetch.
    last_error: Option<RDKafkaErrorCode>,
    topic: Arc<str>,
    partition: i32,
    next: StartOffset,
    tail: bool,
    batch_size: usize,
    timeout: Duration,
    on_offsets_lost: OnOffsetsLost,
    step: StepId,
    _mode: PhantomData<fn() -> M>,
}

/// Milliseconds since the Unix epoch now (for the latency of the messages of a batch).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl<M: ErrorMode> KafkaSourcePartition<M> {
    fn convert(&self, m: &BorrowedMessage<'_>, now_ms: i64) -> KafkaSourceMessage {
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        let (timestamp, timestamp_type) = match m.timestamp() {
            Timestamp::NotAvailable => (None, TimestampType::NotAvailable),
            Timestamp::CreateTime(t) => (Some(t), TimestampType::CreateTime),
            Timestamp::LogAppendTime(t) => (Some(t), TimestampType::LogAppendTime),
        };
        // Value first, then key: the order the sink gives buffers back does not matter (one
        // pool per field), but the value is the one worth reusing.
        let value = m.payload().map(|v| buffers::copy_of(MessageField::Value, v));
        let key = m.key().map(|k| buffers::copy_of(MessageField::Key, k));
        KafkaSourceMessage {
            key,
            value,
            topic: self.topic.clone(),
            headers,
            offset: m.offset(),
            partition: self.partition,
            timestamp,
            timestamp_type,
            latency: timestamp.map(|t| Duration::from_millis(now_ms.saturating_sub(t).max(0) as u64)),
        }
    }

    fn next_offset(&self) -> Option<i64> {
        match self.next {
            StartOffset::Offset(o) => Some(o),
            _ => None,
        }
    }

    /// An error of this partition, at its next offset.
    fn error(&self, text: String, code: RDKafkaErrorCode, fatal: bool) -> KafkaError<KafkaSourceMessage> {
        let offset = self.next_offset();
        let mut e = KafkaError::new(
            format!(
                "step {}: partition {} of topic {:?}{}: {text}",
                self.step,
                self.partition,
                self.topic,
                offset.map_or_else(String::new, |o| format!(" at offset {o}"))
            ),
            code,
            KafkaSourceMessage {
                key: None,
                value: None,
                topic: self.topic.clone(),
                headers: Vec::new(),
                offset: offset.unwrap_or(-1),
                partition: self.partition,
                timestamp: None,
                timestamp_type: TimestampType::NotAvailable,
                latency: None,
            },
        )
        .at(Some(self.topic.clone()), Some(self.partition), offset);
        e.fatal = fatal;
        e
    }

    /// Emits a consumer error (once until a message is read), or stops the flow.
    fn consumer_error(&mut self, e: &RdError, batch: &mut Vec<M::Item>) -> Result<(), ConnectorError> {
        let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        if self.last_error == Some(code) {
            tracing::debug!(
                "step {}: partition {} of {:?} again: {e}",
                self.step,
                self.partition,
                self.topic
            );
            return Ok(());
        }
        self.last_error = Some(code);
        let fatal = matches!(e, RdError::MessageConsumptionFatal(_));
        let err = self.error(format!("cannot read: {e}"), code, fatal);
        batch.push(M::err(err)?);
        Ok(())
    }

    /// The broker no longer has the next offset: find out why, report it and follow the
    /// policy.
    fn offsets_lost(&mut self, batch: &mut Vec<M::Item>) -> Result<(), ConnectorError> {
        let (low, high) = self
            .consumer
            .fetch_watermarks(&self.topic, self.partition, self.timeout)
            .map_err(|e| {
                format!(
                    "step {}: partition {} of topic {:?}: the broker no longer has offset {:?} and its offsets cannot be read: {e}",
                    self.step, self.partition, self.topic, self.next
                )
            })?;
        let next = self.next_offset().unwrap_or(low);
        let (why, resume_at) = if next > high {
            (
                format!(
                    "offsets went backwards: the next offset to read is {next} but the partition ends at {high}: \
                     the broker lost {} messages it had acknowledged (this flow read them), or the topic was re-created",
                    next - high
                ),
                high,
            )
        } else if next < low {
            (
                format!(
                    "messages at offsets {next}..{low} were deleted (retention) before this flow read them"
                ),
                low,
            )
        } else {
            // The offset is there again (a broker that was catching up): read on.
            self.seek(next)?;
            return Ok(());
        };
        let mut err = self.error(why, RDKafkaErrorCode::AutoOffsetReset, false);
        if self.on_offsets_lost == OnOffsetsLost::Stop {
            err.error.push_str("; stopping (OnOffsetsLost::Stop)");
            return Err(Box::new(err));
        }
        err.error.push_str(&format!(
            "; reading on at offset {resume_at} (OnOffsetsLost::ReadOn)"
        ));
        self.seek(resume_at)?;
        self.next = StartOffset::Offset(resume_at);
        if M::EMITS {
            batch.push(M::err(err)?);
        } else {
            tracing::error!("{err}");
        }
        Ok(())
    }

    /// Reads on from `offset`. After librdkafka stopped the partition (its offset-reset
    /// error), a seek is refused; assigning the partition again at the offset restarts it
    /// (its queue stays split off).
    fn seek(&self, offset: i64) -> Result<(), ConnectorError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, self.partition, Offset::Offset(offset))
            .and_then(|()| self.consumer.incremental_unassign(&tpl))
            .and_then(|()| self.consumer.incremental_assign(&tpl))
            .map_err(|e| {
                format!(
                    "step {}: cannot move partition {} of topic {:?} to offset {offset}: {e}",
                    self.step, self.partition, self.topic
                )
                .into()
            })
    }

    /// Reacts to what the topic watch saw; `true` when the partition has ended.
    fn topic_news(&mut self, batch: &mut Vec<M::Item>) -> Result<bool, ConnectorError> {
        let changes = self.watch.changes();
        if changes == self.seen_changes {
            return Ok(false);
        }
        self.seen_changes = changes;
        match self.watch.state(&self.topic) {
            Some(TopicState::Missing(why)) if !self.topic_gone => {
                self.topic_gone = true;
                let err = self.error(
                    format!(
                        "the topic was deleted while the flow read it (the broker says: {why}){}",
                        if self.tail {
                            ""
                        } else {
                            "; the partition ends here"
                        }
                    ),
                    RDKafkaErrorCode::UnknownTopicOrPartition,
                    false,
                );
                batch.push(M::err(err)?);
                Ok(!self.tail)
            }
            Some(TopicState::Partitions(_)) if self.topic_gone => {
                self.topic_gone = false;
                tracing::warn!(
                    "step {}: topic {:?} exists again; partition {} reads on",
                    self.step,
                    self.topic,
                    self.partition
                );
                // A topic created again starts its offsets anew: where the next offset
                // is past its end, that is offsets going backwards.
                self.offsets_lost(batch)?;
                Ok(false)
            }
            _ => Ok(false),
        }
    }
}

impl<M: ErrorMode> StatefulSourcePartition for KafkaSourcePartition<M> {
    type Item = M::Item;
    type State = StartOffset;

    fn next_batch(&mut self, batch: &mut Vec<M::Item>) -> Result<BatchStatus, ConnectorError> {
        if self.topic_news(batch)? {
            return Ok(BatchStatus::Eof);
        }
        let now = now_ms();
        // librdkafka prefetches into a local queue; polling with no wait drains it, and an
        // empty poll lets the engine cool down for 1 ms instead of blocking the worker.
        while batch.len() < self.batch_size {
            match self.queue.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => {
                    self.next = StartOffset::Offset(m.offset() + 1);
                    self.last_error = None;
                    let item = self.convert(&m, now);
                    batch.push(M::ok(item));
                }
                Some(Err(RdError::PartitionEOF(_))) => {
                    if !self.tail {
                        return Ok(BatchStatus::Eof);
                    }
                }
                Some(Err(RdError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                    self.offsets_lost(batch)?;
                }
                Some(Err(e)) => self.consumer_error(&e, batch)?,
            }
        }
        // The shared queue carries client-level events only (every partition has its own).
        match self.consumer.poll(Duration::ZERO) {
            None => {}
            Some(Err(e @ RdError::MessageConsumptionFatal(_))) => self.consumer_error(&e, batch)?,
            // librdkafka reconnects and refetches by itself (e.g. after "all brokers down"),
            // so the flow goes on; the client context logs it as a warning.
            Some(Err(e)) => tracing::debug!("step {}: client event: {e}", self.step),
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
        assert!(Arc::ptr_eq(&a.watch, &b.watch), "one topic watch per process");
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
