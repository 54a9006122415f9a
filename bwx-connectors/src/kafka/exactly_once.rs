//! [`ExactlyOnceKafkaSink`]: every epoch's output in one Kafka transaction per slot,
//! committed once the epoch is durable, with a write-ahead log in the recovery store.
//!
//! librdkafka cannot take over another producer's open transaction, and transactions of
//! different producers cannot commit atomically, so a crash between "epoch e is durable"
//! and "epoch e is committed in Kafka" is repaired from the recovery store: the epoch's
//! messages are part of the slot's snapshot until Kafka has them, and each transaction also
//! commits a marker (the epoch, as a consumer-group offset) that says after a restart which
//! epochs Kafka already has.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;
use std::{error, fmt};

use bwx_runtime::Key;
use bwx_runtime::StepId;
use bwx_runtime::inputs::ConnectorError;
use bwx_runtime::outputs::{Delivery, FixedPartitionedSink, StatefulSinkPartition};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::KafkaError as RdError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::client::ClientLogs;
use super::config::KafkaConfig;
use super::message::KafkaSinkMessage;
use super::sink::{KafkaSink, SinkContext, send_message};

/// How long a call to the transaction coordinator may take (fencing an earlier producer,
/// committing a transaction) before the flow stops with an error.
const COORDINATOR_TIMEOUT: Duration = Duration::from_secs(60);

/// How many committed epochs a slot may hand to its producer thread before `pre_commit`
/// waits for Kafka: this bounds the slot's memory and its write-ahead log.
const MAX_EPOCHS_IN_FLIGHT: usize = 8;

/// Writes [`KafkaSinkMessage`]s to Kafka **exactly once** across crashes and resumes:
/// each epoch's messages are one Kafka transaction per slot, visible to `read_committed`
/// consumers only once the epoch is durable in every recovery partition.
///
/// Made by [`KafkaSink::exactly_once`]. It is a fixed-partitioned sink over a keyed stream
/// `(K, KafkaSinkMessage)`: its partitions are `slots` transaction slots (`txn-0`, `txn-1`,
/// ...; 4 unless [`slots`](Self::slots) says otherwise), a key always goes to the same
/// slot, so the order of a key's messages is kept. Each slot is written by one worker and
/// has its own transactional producer with
/// `transactional.id = {prefix}.{step id}.{slot}`.
///
/// The ids are per slot, not per worker, so that they stay the same when the flow resumes
/// on another number of workers or processes: a slot moves to another worker and its new
/// producer fences the old one. With per-worker ids a rescale down would orphan the ids of
/// the workers that are gone, and their open transactions would hold back every
/// `read_committed` consumer of the topic until `transaction.timeout.ms` passed.
///
/// For each epoch, in the sink's two phases:
/// - while the epoch is open, a slot keeps its messages (nothing is sent);
/// - `pre_commit`: the messages become the slot's state, stored with the epoch's snapshot
///   (a write-ahead log);
/// - `commit`, once the epoch is durable everywhere: the slot's producer thread begins a
///   transaction, produces the messages, commits the marker (consumer group
///   `transactional.id`, offset `epoch + 1` on partition 0 of the marker topic) in the same
///   transaction and commits it. The worker does not wait for Kafka; an error stops the
///   flow at the slot's next call. An epoch leaves the log at the first snapshot after
///   Kafka confirmed it.
///
/// On resume, a slot's new producer fences the old one (librdkafka's
/// `init_transactions`: an open transaction is aborted, a commit under way completes),
/// reads the marker and publishes again, each in its own transaction, the logged epochs
/// that Kafka does not have. If Kafka has committed an epoch the resumed state does not
/// know (the recovery store was restored from a backup older than the output, or replaced
/// by a new one), exactly-once cannot be kept and the slot refuses to start, naming the
/// step, slot, transactional id and both epochs.
///
/// A [`KafkaSource`](super::KafkaSource)'s positions are stored in the same epochs'
/// snapshots, so a Kafka → bwx → Kafka flow resumes its input and its output at the same
/// epoch: every input message's output is committed exactly once.
///
/// Rules for settings:
/// - `transaction.timeout.ms` (librdkafka's default is 60 s) must exceed the time to
///   produce and commit one epoch's output of a slot: a transaction is open only during
///   `commit`, not for the whole epoch, so the epoch interval and the restart time do not
///   count. Consumers with `isolation.level=read_committed` (librdkafka's default) see the
///   output one epoch interval plus a commit later than at-least-once output.
/// - The log costs one epoch's output per slot in the recovery store (kept longer with a
///   backup interval, `-b`), and at most 8 epochs wait for Kafka per slot before the
///   worker waits.
/// - The recovery store is what makes the output exactly-once: without recovery, a crash
///   loses the open epochs' output and a restart with the same prefix is refused.
/// - Keep the number of slots while the store holds state: changing it moves keys
///   between slots.
/// - Brokers must implement transactions and `read_committed` fetches (Apache Kafka,
///   Redpanda, noida-db; tansu accepts the calls but shows aborted data to
///   `read_committed` consumers).
///
/// ```no_run
/// use bwx_connectors::kafka::{self, KafkaConfig, KafkaSink, KafkaSinkMessage, KafkaSource};
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::recovery::SqliteRecovery;
/// use std::time::Duration;
///
/// let config = KafkaConfig::new("127.0.0.1:9092");
/// let flow = Dataflow::new("upper");
/// let msgs = kafka::input(&flow, "in", KafkaSource::new(config.clone(), ["words"]));
/// msgs.oks
///     .map("upper", |m| {
///         let key = String::from_utf8_lossy(m.key.as_deref().unwrap_or_default()).into_owned();
///         let value = m.value.map(|v| v.to_ascii_uppercase());
///         (key, KafkaSinkMessage::new(m.key, value))
///     })
///     .output("out", KafkaSink::new(config, Some("upper")).exactly_once("upper-app"));
/// let store = SqliteRecovery::open("recovery", Duration::ZERO, "upper").unwrap();
/// let run = RunConfig::default().recovery(store);
/// bwx_runtime::run_main_with(&flow, run).unwrap();
/// ```
pub struct ExactlyOnceKafkaSink<K = String> {
    config: KafkaConfig,
    topic: Option<String>,
    prefix: String,
    slots: usize,
    marker_topic: Option<String>,
    key: PhantomData<fn(K)>,
}

impl<K> fmt::Debug for ExactlyOnceKafkaSink<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExactlyOnceKafkaSink")
            .field("config", &self.config)
            .field("topic", &self.topic)
            .field("prefix", &self.prefix)
            .field("slots", &self.slots)
            .field("marker_topic", &self.marker_topic)
            .finish()
    }
}

impl KafkaSink {
    /// This sink, exactly-once: see [`ExactlyOnceKafkaSink`]. Its transactional ids start
    /// with `transactional_id_prefix`, which must be the same on every restart of the flow
    /// and unique among the flows writing to the cluster.
    pub fn exactly_once<K>(self, transactional_id_prefix: &str) -> ExactlyOnceKafkaSink<K> {
        let (config, topic) = self.into_parts();
        ExactlyOnceKafkaSink {
            config,
            topic,
            prefix: transactional_id_prefix.to_string(),
            slots: 4,
            marker_topic: None,
            key: PhantomData,
        }
    }
}

impl<K> ExactlyOnceKafkaSink<K> {
    /// The number of transaction slots (at least 1; 4 by default): at most this many
    /// workers write, each slot with its own producer.
    pub fn slots(mut self, slots: usize) -> Self {
        self.slots = slots;
        self
    }

    /// The topic whose partition 0 carries the commit marker; by default the sink's
    /// topic. It must exist; nothing is written to it (the marker is a consumer-group
    /// offset).
    pub fn marker_topic(mut self, topic: &str) -> Self {
        self.marker_topic = Some(topic.to_string());
        self
    }

    fn marker(&self) -> Result<&str, ConnectorError> {
        self.marker_topic
            .as_deref()
            .or(self.topic.as_deref())
            .ok_or_else(|| "an exactly-once Kafka sink without a default topic needs a marker topic".into())
    }
}

/// A slot's write-ahead log, stored with each epoch's snapshot: the epochs pre-committed
/// and not yet known to be in Kafka, with their messages.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TransactionLog {
    /// The last epoch the slot pre-committed.
    epoch: u64,
    /// Pre-committed epochs Kafka has not confirmed, oldest first.
    #[serde(with = "super::wal")]
    pending: super::wal::Pending,
}

impl<K: Key> FixedPartitionedSink for ExactlyOnceKafkaSink<K> {
    type Key = K;
    type Value = KafkaSinkMessage;
    type State = TransactionLog;
    type Partition = TransactionSlot;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        if self.slots == 0 {
            return Err("an exactly-once Kafka sink needs at least one slot".into());
        }
        if self.prefix.is_empty() {
            return Err("an exactly-once Kafka sink needs a non-empty transactional id prefix".into());
        }
        self.marker()?;
        Ok((0..self.slots).map(|s| format!("txn-{s}")).collect())
    }

    fn build_part(
        &self,
        step_id: &StepId,
        slot: &str,
        resume: Option<TransactionLog>,
    ) -> Result<TransactionSlot, ConnectorError> {
        let txn_id = format!("{}.{step_id}.{slot}", self.prefix);
        let failed = |what: &str, cause: RdError| {
            TransactionError::boxed(
                format!("step {step_id}: slot {slot} (transactional id {txn_id:?}): {what}"),
                cause,
            )
        };
        let scrub = |e: RdError| -> ConnectorError {
            format!(
                "step {step_id}: slot {slot}: {}",
                self.config.scrub(&e.to_string())
            )
            .into()
        };
        let producer: BaseProducer<SinkContext> = self
            .config
            .client_config(&[("transactional.id", &txn_id)])
            .create_with_context(SinkContext::new(format!("step {step_id}: slot {slot} producer")))
            .map_err(scrub)?;
        // Fences every earlier producer of the slot: its open transaction is aborted, a
        // commit it had begun completes, so the marker read next is final.
        producer
            .init_transactions(COORDINATOR_TIMEOUT)
            .map_err(|e| failed("cannot fence the earlier producers", e))?;
        let consumer: BaseConsumer<ClientLogs> = self
            .config
            .client_config(&[
                ("group.id", &txn_id),
                ("isolation.level", "read_committed"),
                ("enable.auto.commit", "false"),
            ])
            .create_with_context(ClientLogs::new(format!("step {step_id}: slot {slot} marker")))
            .map_err(scrub)?;
        let marker = self.marker()?.to_string();
        let mut wanted = TopicPartitionList::new();
        wanted.add_partition(&marker, 0);
        let committed = consumer
            .committed_offsets(wanted, COORDINATOR_TIMEOUT)
            .map_err(|e| failed("cannot read the commit marker", e))?;
        let kafka_has = committed
            .find_partition(&marker, 0)
            .and_then(|tp| match tp.offset() {
                Offset::Offset(next) if next > 0 => Some(next as u64 - 1),
                _ => None,
            });
        let group = consumer.group_metadata().ok_or_else(|| {
            format!("step {step_id}: slot {slot}: no consumer group metadata for {txn_id:?}")
        })?;
        let mut log = resume.unwrap_or_default();
        let known = (log.epoch > 0 || !log.pending.is_empty()).then_some(log.epoch);
        if let Some(committed) = kafka_has
            && known.is_none_or(|known| committed > known)
        {
            let state = match known {
                Some(known) => format!("the recovery store's state of the slot ends at epoch {known}"),
                None => "the recovery store has no state for the slot".to_string(),
            };
            return Err(format!(
                "step {step_id}: slot {slot}: Kafka has committed epoch {committed} for transactional id {txn_id:?} but \
                 {state}: the store is older than the output (restored from a backup, or a new store), and resuming \
                 would write output again; exactly-once cannot be kept. Resume from a store at least as recent, or \
                 start over with another transactional id prefix"
            )
            .into());
        }
        // What Kafka has is confirmed; the rest is published again, oldest first.
        if let Some(committed) = kafka_has {
            log.pending.retain(|(epoch, _)| *epoch > committed);
        }
        let (jobs, inbox) = mpsc::channel();
        let (reply, reports) = mpsc::channel();
        let publisher = Publisher {
            producer,
            group,
            marker,
            topic: self.topic.clone(),
            step: step_id.clone(),
            slot: slot.to_string(),
            txn_id: txn_id.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("bwx-kafka-{slot}"))
            .spawn(move || publisher.run(inbox, reply))
            .map_err(|e| format!("step {step_id}: slot {slot}: cannot start its producer thread: {e}"))?;
        for (epoch, messages) in &log.pending {
            // The thread is alive: it only ends when `jobs` is dropped or a job failed.
            let _ = jobs.send((*epoch, messages.clone()));
        }
        let in_flight = log.pending.len();
        Ok(TransactionSlot {
            step: step_id.clone(),
            slot: slot.to_string(),
            topic: self.topic.clone(),
            open: Vec::new(),
            log,
            in_flight,
            jobs: Some(jobs),
            reports,
            thread: Some(thread),
        })
    }

    fn delivery(&self) -> Delivery {
        Delivery::ExactlyOnce
    }
}

/// A transaction failed or could not start; its cause is librdkafka's error.
#[derive(Debug)]
struct TransactionError {
    what: String,
    cause: RdError,
}

impl TransactionError {
    fn boxed(what: String, cause: RdError) -> ConnectorError {
        Box::new(TransactionError { what, cause })
    }
}

impl fmt::Display for TransactionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl error::Error for TransactionError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// One slot of an [`ExactlyOnceKafkaSink`] on the worker that writes it.
pub struct TransactionSlot {
    step: StepId,
    slot: String,
    topic: Option<String>,
    /// The open epoch's messages.
    open: Vec<KafkaSinkMessage>,
    log: TransactionLog,
    /// Epochs handed to the producer thread and not yet reported.
    in_flight: usize,
    jobs: Option<Sender<(u64, Arc<Vec<KafkaSinkMessage>>)>>,
    reports: Receiver<Result<u64, ConnectorError>>,
    thread: Option<JoinHandle<()>>,
}

impl TransactionSlot {
    /// Takes one report of the producer thread into the log.
    fn take(&mut self, report: Result<u64, ConnectorError>) -> Result<(), ConnectorError> {
        self.in_flight -= 1;
        let epoch = report?;
        self.log.pending.retain(|(e, _)| *e > epoch);
        Ok(())
    }

    /// Takes the reports that arrived, then waits until at most `in_flight` epochs are
    /// still with the producer thread.
    fn settle(&mut self, in_flight: usize) -> Result<(), ConnectorError> {
        loop {
            let report = if self.in_flight > in_flight {
                match self.reports.recv_timeout(COORDINATOR_TIMEOUT * 2) {
                    Ok(r) => r,
                    Err(RecvTimeoutError::Timeout) => {
                        return Err(format!(
                            "step {}: slot {}: Kafka confirmed no transaction for {} s",
                            self.step,
                            self.slot,
                            (COORDINATOR_TIMEOUT * 2).as_secs()
                        )
                        .into());
                    }
                    Err(RecvTimeoutError::Disconnected) => return Err(self.thread_gone()),
                }
            } else {
                match self.reports.try_recv() {
                    Ok(r) => r,
                    Err(TryRecvError::Empty) => return Ok(()),
                    Err(TryRecvError::Disconnected) if self.in_flight == 0 => return Ok(()),
                    Err(TryRecvError::Disconnected) => return Err(self.thread_gone()),
                }
            };
            self.take(report)?;
        }
    }

    fn thread_gone(&self) -> ConnectorError {
        format!(
            "step {}: slot {}: the producer thread stopped with transactions outstanding",
            self.step, self.slot
        )
        .into()
    }
}

impl StatefulSinkPartition for TransactionSlot {
    type Value = KafkaSinkMessage;
    type State = TransactionLog;

    fn write_batch(&mut self, values: &mut Vec<KafkaSinkMessage>) -> Result<(), ConnectorError> {
        if self.topic.is_none() && values.iter().any(|m| m.topic.is_none()) {
            return Err(format!(
                "step {}: a message has no topic and the sink has no default topic",
                self.step
            )
            .into());
        }
        self.open.append(values);
        Ok(())
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        self.settle(MAX_EPOCHS_IN_FLIGHT)?;
        let messages = std::mem::take(&mut self.open);
        self.log.pending.push((epoch, Arc::new(messages)));
        self.log.epoch = epoch;
        Ok(())
    }

    fn snapshot(&self) -> TransactionLog {
        self.log.clone()
    }

    fn commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        self.settle(usize::MAX)?;
        if let Some((_, messages)) = self.log.pending.iter().find(|(e, _)| *e == epoch)
            && let Some(jobs) = &self.jobs
        {
            jobs.send((epoch, messages.clone()))
                .map_err(|_| self.thread_gone())?;
            self.in_flight += 1;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        let outcome = self.settle(0);
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        outcome
    }
}

impl Drop for TransactionSlot {
    fn drop(&mut self) {
        // Without waiting: after a failure the thread finishes the durable epochs it has,
        // and a later producer of the slot fences it anyway.
        self.jobs = None;
    }
}

/// A slot's transactional producer, on its own thread.
struct Publisher {
    producer: BaseProducer<SinkContext>,
    group: ConsumerGroupMetadata,
    marker: String,
    topic: Option<String>,
    step: StepId,
    slot: String,
    txn_id: String,
}

impl Publisher {
    /// Publishes each epoch it is given, in order, and reports it; stops at the first error.
    fn run(
        self,
        jobs: Receiver<(u64, Arc<Vec<KafkaSinkMessage>>)>,
        reports: Sender<Result<u64, ConnectorError>>,
    ) {
        for (epoch, messages) in jobs {
            let outcome = self.publish(epoch, &messages);
            if outcome.is_err() {
                // Whatever failed, the transaction (if one is open) must not stay open and
                // hold back `read_committed` consumers; after a fatal error this fails too.
                let _ = self.producer.abort_transaction(COORDINATOR_TIMEOUT);
            }
            let failed = outcome.is_err();
            if reports.send(outcome.map(|()| epoch)).is_err() || failed {
                return;
            }
        }
    }

    fn failed(&self, epoch: u64, what: &str, cause: RdError) -> ConnectorError {
        TransactionError::boxed(
            format!(
                "step {}: slot {} (transactional id {:?}): epoch {epoch}: {what}",
                self.step, self.slot, self.txn_id
            ),
            cause,
        )
    }

    /// One transaction: the epoch's messages and its marker.
    fn publish(&self, epoch: u64, messages: &[KafkaSinkMessage]) -> Result<(), ConnectorError> {
        self.producer
            .begin_transaction()
            .map_err(|e| self.failed(epoch, "cannot begin a transaction", e))?;
        for m in messages {
            send_message(&self.producer, self.topic.as_deref(), &self.step, m)?;
        }
        let mut marker = TopicPartitionList::new();
        let next = i64::try_from(epoch + 1)
            .map_err(|_| format!("step {}: epoch {epoch} is too large", self.step))?;
        marker
            .add_partition_offset(&self.marker, 0, Offset::Offset(next))
            .map_err(|e| self.failed(epoch, "cannot name the commit marker", e))?;
        self.producer
            .send_offsets_to_transaction(&marker, &self.group, COORDINATOR_TIMEOUT)
            .map_err(|e| self.failed(epoch, "cannot add the commit marker", e))?;
        // Short flushes return within about a millisecond of the last acknowledgement;
        // `commit_transaction` flushes in 100 ms slices.
        loop {
            match self.producer.flush(Duration::from_millis(1)) {
                Ok(()) => break,
                Err(RdError::Flush(rdkafka::types::RDKafkaErrorCode::OperationTimedOut)) => {}
                Err(e) => return Err(self.failed(epoch, "cannot flush the transaction", e)),
            }
        }
        self.producer.context().take_failure(&self.producer, &self.step)?;
        let mut tries = 0;
        loop {
            match self.producer.commit_transaction(COORDINATOR_TIMEOUT) {
                Ok(()) => return Ok(()),
                // librdkafka says a retriable commit error may be retried as it is.
                Err(RdError::Transaction(e)) if e.is_retriable() && tries < 3 => tries += 1,
                Err(e) => return Err(self.failed(epoch, "cannot commit the transaction", e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(topic: Option<&str>) -> ExactlyOnceKafkaSink<String> {
        KafkaSink::new(KafkaConfig::new("127.0.0.1:9"), topic).exactly_once("app")
    }

    #[test]
    fn slots_are_named_in_order_and_bad_settings_are_refused() {
        assert_eq!(
            sink(Some("out")).slots(3).list_parts().unwrap(),
            ["txn-0", "txn-1", "txn-2"]
        );
        let err = |s: ExactlyOnceKafkaSink<String>| s.list_parts().unwrap_err().to_string();
        assert!(err(sink(Some("out")).slots(0)).contains("at least one slot"));
        assert!(
            err(KafkaSink::new(KafkaConfig::new("b:1"), Some("out")).exactly_once::<String>(""))
                .contains("transactional id prefix")
        );
        assert!(err(sink(None)).contains("needs a marker topic"));
        assert_eq!(sink(None).marker_topic("m").list_parts().unwrap().len(), 4);
        assert_eq!(sink(Some("out")).delivery(), Delivery::ExactlyOnce);
    }
}
