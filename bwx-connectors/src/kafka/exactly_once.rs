//! [`ExactlyOnceKafkaSink`]: every epoch's output in one Kafka transaction per slot,
//! produced while the epoch runs and committed once the epoch is durable, with a
//! write-ahead log in the recovery store.
//!
//! librdkafka cannot take over another producer's open transaction, and transactions of
//! different producers cannot commit atomically, so a crash between "epoch e is durable"
//! and "epoch e is committed in Kafka" is repaired from the recovery store: the epoch's
//! messages are part of the slot's snapshot until Kafka has them, and each transaction also
//! commits a marker (the epoch, as a consumer-group offset) that says after a restart which
//! epochs Kafka already has.
//!
//! # Why two transactional producers per slot
//!
//! As in Flink's two-phase Kafka sink, an epoch's messages go into an open transaction as
//! they are written, so that production overlaps the epoch; `pre_commit` seals the
//! transaction (marker added, every message acknowledged) and `commit` only commits it. A
//! producer has one open transaction at a time, and epoch `e`'s stays open until `e` is
//! durable in every recovery partition, which takes the time to store the epoch's
//! snapshot, write-ahead log included (from tens of milliseconds to seconds for a large
//! epoch on a loaded machine). With one producer, epoch `e + 1`'s messages would have to
//! wait in memory for that, and be produced in a burst after it: the producer would idle
//! while the log is stored. So each slot has two producers, `{prefix}.{step}.{slot}.0`
//! and `.1`, used in turn: epoch `e + 1` is produced by the producer that is free while
//! `e`'s transaction waits for its commit. Epoch `e + 1`'s seal (its flush) waits for
//! `e`'s commit: a broker may hold back acknowledgements to a partition while another
//! transaction on it is open (noida-db does), and the thread that would commit `e` must not
//! be the one waiting. Only when both producers wait (an epoch shorter than the time to
//! make one durable) does the next epoch's output wait in memory for a commit.
//!
//! What keeps it exactly-once and in order:
//! - a transaction is sealed (flushed) before the other producer takes the next epoch's
//!   messages, so in every partition an epoch's records come after the previous epoch's;
//! - transactions commit in epoch order, one at a time, and after any failure nothing more
//!   is committed (the open and sealed transactions are aborted);
//! - each producer commits the marker of its own epochs to its own consumer group (its
//!   transactional id); on resume both producers are fenced (`init_transactions` aborts an
//!   open transaction and completes a commit under way) before either marker is read, and
//!   the later of the two markers is the last epoch Kafka has, since commits are in order.

mod publisher;

use std::marker::PhantomData;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;
use std::{error, fmt};

use bwx_runtime::Key;
use bwx_runtime::StepId;
use bwx_runtime::inputs::ConnectorError;
use bwx_runtime::outputs::{Delivery, FixedPartitionedSink, StatefulSinkPartition};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError as RdError;
use rdkafka::producer::BaseProducer;
use serde::{Deserialize, Serialize};

use self::publisher::{Clients, Job, Progress, Publisher, Report, Startup};
use super::client::ClientLogs;
use super::config::KafkaConfig;
use super::message::KafkaSinkMessage;
use super::sink::{KafkaSink, SinkContext};
use super::wal::{EpochEncoder, LoggedEpoch};

/// How long a call to the transaction coordinator may take (fencing an earlier producer,
/// committing a transaction) before the flow stops with an error.
const COORDINATOR_TIMEOUT: Duration = Duration::from_secs(60);

/// How many durable epochs a slot may have waiting for their commit in Kafka before
/// `pre_commit` waits: this bounds the slot's memory and its write-ahead log.
const MAX_EPOCHS_COMMITTING: usize = 8;

/// Transactional producers per slot: one takes the open epoch while the other's epoch
/// waits to be durable.
const PRODUCERS_PER_SLOT: usize = 2;

/// Writes [`KafkaSinkMessage`]s to Kafka **exactly once** across crashes and resumes:
/// each epoch's messages are one Kafka transaction per slot, visible to `read_committed`
/// consumers only once the epoch is durable in every recovery partition.
///
/// Made by [`KafkaSink::exactly_once`]. It is a fixed-partitioned sink over a keyed stream
/// `(K, KafkaSinkMessage)`: its partitions are `slots` transaction slots (`txn-0`, `txn-1`,
/// ...; 4 unless [`slots`](Self::slots) says otherwise), a key always goes to the same
/// slot, so the order of a key's messages is kept. Each slot is written by one worker and
/// has two transactional producers, used in turn (see the [module docs](self) for why),
/// with `transactional.id = {prefix}.{step id}.{slot}.0` and `.1`.
///
/// The ids are per slot, not per worker, so that they stay the same when the flow resumes
/// on another number of workers or processes: a slot moves to another worker and its new
/// producers fence the old ones. With per-worker ids a rescale down would orphan the ids of
/// the workers that are gone, and their open transactions would hold back every
/// `read_committed` consumer of the topic until `transaction.timeout.ms` passed.
///
/// For each epoch, in the sink's two phases, on the slot's producer thread (the worker
/// never waits for Kafka, except to keep at most 8 durable epochs waiting for their commit
/// per slot; an error stops the flow at the slot's next call):
/// - while the epoch is open, its messages are produced into a transaction as they are
///   written, and appended to the epoch's write-ahead log entry;
/// - `pre_commit`: the log entry becomes part of the slot's state, stored with the epoch's
///   snapshot; the transaction gets the epoch's marker (consumer group `transactional.id`,
///   offset `epoch + 1` on partition 0 of the marker topic) and is flushed;
/// - `commit`, once the epoch is durable everywhere: the transaction is committed. An
///   epoch leaves the log at the first snapshot after Kafka confirmed it.
///
/// At start, a slot's new producers fence the old ones (librdkafka's
/// `init_transactions`: an open transaction is aborted, a commit under way completes),
/// read the markers and publish again, each in its own transaction, the logged epochs
/// that Kafka does not have. This runs on the slot's thread (the slots of a worker at
/// once) while the flow starts; the slot's first `pre_commit` waits for it. If Kafka has
/// committed an epoch the resumed state does not know (the recovery store was restored
/// from a backup older than the output, or replaced by a new one), exactly-once cannot be
/// kept and the flow stops at the slot's next call, before the slot stores or commits
/// anything, naming the step, slot, transactional ids and both epochs. A resume with another number of slots
/// than the store's state was written with is refused too, naming the step, the slot and
/// both numbers: it would move keys between slots, and a key's logged output and its new
/// output would go through different producers, out of order.
///
/// A [`KafkaSource`](super::KafkaSource)'s positions are stored in the same epochs'
/// snapshots, so a Kafka → bwx → Kafka flow resumes its input and its output at the same
/// epoch: every input message's output is committed exactly once.
///
/// Rules for settings:
/// - `transaction.timeout.ms` (librdkafka's default is 60 s) must exceed the epoch
///   interval plus the time to make an epoch durable and commit it: a transaction is open
///   from the epoch's first message to its commit. A crash leaves a transaction open until
///   the restart fences it (or the timeout aborts it), and `read_committed` consumers
///   (librdkafka's default) wait for it that long; they see the output an epoch interval
///   plus a commit later than at-least-once output.
/// - The log costs one epoch's output per slot in the recovery store (kept longer with a
///   backup interval, `-b`).
/// - The recovery store is what makes the output exactly-once: without recovery, a crash
///   loses the open epochs' output and a restart with the same prefix is refused.
/// - Cost: the write-ahead log makes the recovery store write each epoch's output (about
///   the messages' bytes plus 13 bytes each), and an epoch not yet durable when the next
///   one closes is written again with it. Copying 500k messages of 100 B on 1 worker
///   (`examples/kafka_bench.rs`, three runs of 5 rounds, load 13-40 on 2 cores, 2026-12-08)
///   ran at 0.62-0.97x of the at-least-once sink's throughput with 10 s epochs and
///   0.51-0.66x with 1 s epochs. Starting cost no more than at-least-once; the difference
///   was the stop, waiting for the last epochs' log to be stored (SQLite stored it at
///   15-25 MB/s there). BENCHMARKS.md has the figures.
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
    /// The sink's number of slots when the log was written: keys are routed by it.
    slots: usize,
    /// Pre-committed epochs Kafka has not confirmed, oldest first.
    pending: Vec<(u64, LoggedEpoch)>,
}

/// The transactional ids of a slot: two, used in turn (see [`ExactlyOnceKafkaSink`]).
fn transactional_ids(prefix: &str, step_id: &StepId, slot: &str) -> [String; PRODUCERS_PER_SLOT] {
    std::array::from_fn(|i| format!("{prefix}.{step_id}.{slot}.{i}"))
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
        if let Some(log) = &resume
            && log.slots != self.slots
        {
            return Err(format!(
                "step {step_id}: slot {slot}: the recovery store holds exactly-once state written with {} slots, \
                 but the sink now has {} slots: a key's slot is its hash modulo the number of slots, so keys would \
                 move between slots, and a key's logged output and its new output would be published by different \
                 producers, out of order. Resume with `.slots({})`, or start over with another transactional id \
                 prefix and a new recovery store",
                log.slots, self.slots, log.slots
            )
            .into());
        }
        let ids = transactional_ids(&self.prefix, step_id, slot);
        let marker = self.marker()?.to_string();
        let clients = ids
            .iter()
            .map(|id| self.clients(step_id, slot, id))
            .collect::<Result<Vec<_>, _>>()?;
        let mut log = resume.unwrap_or_default();
        log.slots = self.slots;
        let known = (log.epoch > 0 || !log.pending.is_empty()).then_some(log.epoch);
        let mut republish = Vec::with_capacity(log.pending.len());
        for (epoch, logged) in &log.pending {
            let messages = logged.messages().map_err(|why| {
                format!(
                    "step {step_id}: slot {slot}: epoch {epoch} of the write-ahead log is malformed: {why}"
                )
            })?;
            republish.push((*epoch, messages));
        }
        // The logged epochs are durable: the thread commits those Kafka does not have.
        let committing = log.pending.last().map_or(0, |(e, _)| *e);
        let (jobs, inbox) = mpsc::channel();
        let (reply, reports) = mpsc::channel();
        let publisher = Publisher::new(marker, self.topic.clone(), step_id.clone(), slot.to_string());
        let startup = Startup {
            clients,
            known,
            republish,
        };
        // Fencing waits for the transaction coordinator: the slots of a worker do it at
        // once, on their threads, while the flow starts.
        let thread = std::thread::Builder::new()
            .name(format!("bwx-kafka-{slot}"))
            .spawn(move || publisher.run(startup, inbox, reply))
            .map_err(|e| format!("step {step_id}: slot {slot}: cannot start its producer thread: {e}"))?;
        Ok(TransactionSlot {
            step: step_id.clone(),
            slot: slot.to_string(),
            topic: self.topic.clone(),
            open: EpochEncoder::default(),
            log,
            committing,
            fenced: false,
            jobs: Some(jobs),
            reports,
            thread: Some(thread),
        })
    }

    fn delivery(&self) -> Delivery {
        Delivery::ExactlyOnce
    }
}

impl<K> ExactlyOnceKafkaSink<K> {
    /// The producer of transactional id `txn_id` and the consumer of its commit marker,
    /// not yet connected.
    fn clients(&self, step_id: &StepId, slot: &str, txn_id: &str) -> Result<Clients, ConnectorError> {
        let scrub = |e: RdError| -> ConnectorError {
            format!(
                "step {step_id}: slot {slot}: {}",
                self.config.scrub(&e.to_string())
            )
            .into()
        };
        let producer: BaseProducer<SinkContext> = self
            .config
            .client_config(&[("transactional.id", txn_id)])
            .create_with_context(SinkContext::new(format!("step {step_id}: slot {slot} producer")))
            .map_err(scrub)?;
        let consumer: BaseConsumer<ClientLogs> = self
            .config
            .client_config(&[
                ("group.id", txn_id),
                ("isolation.level", "read_committed"),
                ("enable.auto.commit", "false"),
            ])
            .create_with_context(ClientLogs::new(format!("step {step_id}: slot {slot} marker")))
            .map_err(scrub)?;
        Ok(Clients {
            producer,
            consumer,
            txn_id: txn_id.to_string(),
        })
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
    /// The open epoch's messages, in the log's form.
    open: EpochEncoder,
    log: TransactionLog,
    /// The last epoch whose commit went to the producer thread.
    committing: u64,
    /// Whether the thread fenced the slot's earlier producers and found Kafka's output
    /// consistent with the log.
    fenced: bool,
    jobs: Option<Sender<Job>>,
    reports: Receiver<Report>,
    thread: Option<JoinHandle<()>>,
}

impl TransactionSlot {
    /// Logged epochs whose commit went to the producer thread and is not yet confirmed.
    fn committing(&self) -> usize {
        self.log
            .pending
            .iter()
            .take_while(|(e, _)| *e <= self.committing)
            .count()
    }

    /// Takes the reports that arrived, then waits until at most `committing` epochs wait
    /// for their commit in Kafka (and, with `fenced`, until the start-up checks passed).
    fn settle(&mut self, committing: usize, fenced: bool) -> Result<(), ConnectorError> {
        loop {
            let report = if self.committing() > committing || (fenced && !self.fenced) {
                match self.reports.recv_timeout(COORDINATOR_TIMEOUT * 2) {
                    Ok(r) => r,
                    Err(RecvTimeoutError::Timeout) => {
                        return Err(format!(
                            "step {}: slot {}: Kafka confirmed nothing for {} s",
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
                    Err(TryRecvError::Disconnected) => return Err(self.thread_gone()),
                }
            };
            let confirmed = match report? {
                Progress::Fenced(kafka_has) => {
                    self.fenced = true;
                    kafka_has
                }
                Progress::Committed(epoch) => Some(epoch),
            };
            if let Some(epoch) = confirmed {
                self.log.pending.retain(|(e, _)| *e > epoch);
            }
        }
    }

    fn send(&self, job: Job) -> Result<(), ConnectorError> {
        match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|_| self.thread_gone()),
            None => Err(self.thread_gone()),
        }
    }

    fn thread_gone(&self) -> ConnectorError {
        format!(
            "step {}: slot {}: the producer thread stopped without reporting why",
            self.step, self.slot
        )
        .into()
    }
}

impl StatefulSinkPartition for TransactionSlot {
    type Value = KafkaSinkMessage;
    type State = TransactionLog;

    fn write_batch(&mut self, values: &mut Vec<KafkaSinkMessage>) -> Result<(), ConnectorError> {
        if values.is_empty() {
            return Ok(());
        }
        if self.topic.is_none() && values.iter().any(|m| m.topic.is_none()) {
            return Err(format!(
                "step {}: a message has no topic and the sink has no default topic",
                self.step
            )
            .into());
        }
        self.settle(usize::MAX, false)?;
        for m in values.iter() {
            self.open.push(m);
        }
        // Produced now, into the slot's open transaction, on the producer thread.
        self.send(Job::Write(std::mem::take(values)))
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        // The log grows only once Kafka's output is known to be consistent with it: a
        // refused resume stores nothing.
        self.settle(MAX_EPOCHS_COMMITTING, true)?;
        self.log.pending.push((epoch, self.open.finish()));
        self.log.epoch = epoch;
        self.send(Job::Seal(epoch))
    }

    fn snapshot(&self) -> TransactionLog {
        self.log.clone()
    }

    fn commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        self.settle(usize::MAX, false)?;
        if epoch > self.committing {
            self.committing = epoch;
            self.send(Job::Commit(epoch))?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        let outcome = self.settle(0, true);
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        outcome
    }
}

impl Drop for TransactionSlot {
    fn drop(&mut self) {
        // Without waiting: the thread aborts what it has not committed, and a later
        // producer of the slot fences it anyway.
        self.jobs = None;
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

    #[test]
    fn a_log_written_with_another_number_of_slots_is_refused() {
        let step = StepId::from("flow.out");
        let log = TransactionLog {
            epoch: 3,
            slots: 4,
            pending: Vec::new(),
        };
        // Refused before any broker is contacted (nothing listens on port 9).
        for slots in [2, 8] {
            let err = match sink(Some("out"))
                .slots(slots)
                .build_part(&step, "txn-1", Some(log.clone()))
            {
                Ok(_) => panic!("a log of 4 slots resumed on {slots}"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.contains("step flow.out: slot txn-1")
                    && err.contains("written with 4 slots")
                    && err.contains(&format!("now has {slots} slots"))
                    && err.contains("`.slots(4)`"),
                "{err}"
            );
        }
    }

    #[test]
    fn each_slot_has_two_transactional_ids_under_the_prefix() {
        let ids = transactional_ids("app", &StepId::from("flow.out"), "txn-3");
        assert_eq!(ids, ["app.flow.out.txn-3.0", "app.flow.out.txn-3.1"]);
    }
}
