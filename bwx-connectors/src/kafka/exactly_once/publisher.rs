//! A slot's producer thread: the slot's two transactional producers, used in turn, so
//! that the next epoch is produced while the last one waits for its commit.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use bwx_runtime::StepId;
use bwx_runtime::inputs::ConnectorError;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::KafkaError as RdError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::super::client::ClientLogs;
use super::super::message::KafkaSinkMessage;
use super::super::sink::{SinkContext, send_message};
use super::{COORDINATOR_TIMEOUT, TransactionError};

/// How often an idle thread serves its producers' delivery reports.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What the slot on the worker asks of its producer thread, in order.
pub(super) enum Job {
    /// Messages of the open epoch.
    Write(Vec<KafkaSinkMessage>),
    /// The messages since the last seal are epoch `e`: add its marker and flush it.
    Seal(u64),
    /// The epochs up to `e` are durable in every recovery partition: commit them.
    Commit(u64),
}

/// A report of the thread to the slot.
pub(super) type Report = Result<Progress, ConnectorError>;

/// What the thread reports to the slot.
pub(super) enum Progress {
    /// The earlier producers are fenced and Kafka's output is consistent with the log;
    /// Kafka has the epochs up to this one.
    Fenced(Option<u64>),
    /// Kafka committed this epoch.
    Committed(u64),
}

/// A transactional id's producer and the consumer that reads its commit marker, made but
/// not yet connected.
pub(super) struct Clients {
    pub(super) producer: BaseProducer<SinkContext>,
    pub(super) consumer: BaseConsumer<ClientLogs>,
    pub(super) txn_id: String,
}

/// What the thread does before it takes jobs.
pub(super) struct Startup {
    pub(super) clients: Vec<Clients>,
    /// The last epoch of the resumed log, if the store has state for the slot.
    pub(super) known: Option<u64>,
    /// The logged epochs, oldest first: those Kafka does not have are published again.
    pub(super) republish: Vec<(u64, Vec<KafkaSinkMessage>)>,
}

/// One transactional producer of a slot and the consumer group its marker is committed to.
struct Transactional {
    producer: BaseProducer<SinkContext>,
    group: ConsumerGroupMetadata,
    txn_id: String,
    state: TxnState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TxnState {
    /// No transaction.
    Idle,
    /// A transaction that takes the open epoch's messages.
    Open,
    /// The epoch's transaction, flushed with its marker, waiting for its commit.
    Sealed(u64),
}

/// The slot's producers on their own thread.
pub(super) struct Publisher {
    producers: Vec<Transactional>,
    marker: String,
    topic: Option<String>,
    step: StepId,
    slot: String,
    /// The producer taking the open epoch's messages.
    open: Option<usize>,
    /// The sealed transactions, oldest first: they commit in this order.
    sealed: VecDeque<(usize, u64)>,
    /// Writes and seals that wait for a producer to be free.
    held: VecDeque<Job>,
    /// Every epoch up to this one may be committed.
    durable: u64,
}

impl Publisher {
    pub(super) fn new(marker: String, topic: Option<String>, step: StepId, slot: String) -> Self {
        Publisher {
            producers: Vec::new(),
            marker,
            topic,
            step,
            slot,
            open: None,
            sealed: VecDeque::new(),
            held: VecDeque::new(),
            durable: 0,
        }
    }

    /// Starts the slot, then serves the jobs until the slot hangs up or one fails; reports
    /// the start, each committed epoch and the first error. Leaves no transaction open:
    /// what is not committed is aborted (a later producer of the slot would abort it too,
    /// but only when it starts).
    pub(super) fn run(mut self, startup: Startup, jobs: Receiver<Job>, reports: Sender<Report>) {
        let outcome = self
            .start(startup, &reports)
            .and_then(|()| self.serve(&jobs, &reports));
        for p in &self.producers {
            if p.state != TxnState::Idle {
                // After a fatal error (fenced by a newer producer) this fails too.
                let _ = p.producer.abort_transaction(COORDINATOR_TIMEOUT);
            }
        }
        if let Err(e) = outcome {
            let _ = reports.send(Err(e));
        }
    }

    /// Fences every earlier producer of the slot's ids, reads their markers, refuses a log
    /// older than Kafka's output, and publishes again the logged epochs Kafka does not have.
    fn start(&mut self, startup: Startup, reports: &Sender<Report>) -> Result<(), ConnectorError> {
        // The ids at once: each `init_transactions` waits for the transaction coordinator.
        let fenced: Vec<Result<(Transactional, Option<u64>), ConnectorError>> = std::thread::scope(|s| {
            let handles: Vec<_> = startup
                .clients
                .into_iter()
                .map(|c| s.spawn(|| self.fence(c)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(format!("step {}: slot {}: fencing panicked", self.step, self.slot).into())
                    })
                })
                .collect()
        });
        let mut kafka_has: Option<u64> = None;
        for f in fenced {
            let (producer, committed) = f?;
            self.producers.push(producer);
            // Epochs commit in order, so the later marker is the last epoch Kafka has.
            kafka_has = kafka_has.max(committed);
        }
        if let Some(committed) = kafka_has
            && startup.known.is_none_or(|known| committed > known)
        {
            let ids: Vec<&str> = self.producers.iter().map(|p| p.txn_id.as_str()).collect();
            let state = match startup.known {
                Some(known) => format!("the recovery store's state of the slot ends at epoch {known}"),
                None => "the recovery store has no state for the slot".to_string(),
            };
            return Err(format!(
                "step {}: slot {}: Kafka has committed epoch {committed} for transactional ids {ids:?} but \
                 {state}: the store is older than the output (restored from a backup, or a new store), and resuming \
                 would write output again; exactly-once cannot be kept. Resume from a store at least as recent, or \
                 start over with another transactional id prefix",
                self.step, self.slot
            )
            .into());
        }
        let _ = reports.send(Ok(Progress::Fenced(kafka_has)));
        // Each its own transaction, committed at once: the logged epochs are durable.
        for (epoch, messages) in startup.republish {
            if kafka_has.is_none_or(|has| epoch > has) {
                self.held.push_back(Job::Write(messages));
                self.held.push_back(Job::Seal(epoch));
                self.durable = epoch;
            }
        }
        self.advance(reports)
    }

    /// Fences the earlier producers of one id (an open transaction is aborted, a commit
    /// under way completes, so the marker read next is final) and reads its marker.
    fn fence(&self, c: Clients) -> Result<(Transactional, Option<u64>), ConnectorError> {
        let failed = |what: &str, cause: RdError| {
            TransactionError::boxed(
                format!(
                    "step {}: slot {} (transactional id {:?}): {what}",
                    self.step, self.slot, c.txn_id
                ),
                cause,
            )
        };
        c.producer
            .init_transactions(COORDINATOR_TIMEOUT)
            .map_err(|e| failed("cannot fence the earlier producers", e))?;
        let mut wanted = TopicPartitionList::new();
        wanted.add_partition(&self.marker, 0);
        let committed = c
            .consumer
            .committed_offsets(wanted, COORDINATOR_TIMEOUT)
            .map_err(|e| failed("cannot read the commit marker", e))?;
        let kafka_has = committed
            .find_partition(&self.marker, 0)
            .and_then(|tp| match tp.offset() {
                Offset::Offset(next) if next > 0 => Some(next as u64 - 1),
                _ => None,
            });
        let group = c.consumer.group_metadata().ok_or_else(|| {
            format!(
                "step {}: slot {}: no consumer group metadata for {:?}",
                self.step, self.slot, c.txn_id
            )
        })?;
        let producer = Transactional {
            producer: c.producer,
            group,
            txn_id: c.txn_id,
            state: TxnState::Idle,
        };
        Ok((producer, kafka_has))
    }

    fn serve(&mut self, jobs: &Receiver<Job>, reports: &Sender<Report>) -> Result<(), ConnectorError> {
        loop {
            let job = match self.open {
                // Deliveries of the open transaction are served while waiting.
                Some(i) => match jobs.recv_timeout(POLL_INTERVAL) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => {
                        self.producers[i].producer.poll(Duration::ZERO);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                },
                None => match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return Ok(()),
                },
            };
            match job {
                Job::Commit(epoch) => self.durable = self.durable.max(epoch),
                job => self.held.push_back(job),
            }
            self.advance(reports)?;
        }
    }

    /// Commits the sealed transactions that are durable, in order, and hands the held jobs
    /// to a producer while one is free.
    fn advance(&mut self, reports: &Sender<Report>) -> Result<(), ConnectorError> {
        loop {
            while let Some(&(i, epoch)) = self.sealed.front()
                && epoch <= self.durable
            {
                self.commit(i, epoch)?;
                self.sealed.pop_front();
                // The slot may be gone (the flow failed elsewhere): nobody to tell.
                let _ = reports.send(Ok(Progress::Committed(epoch)));
            }
            match self.held.front() {
                None => return Ok(()),
                // A seal waits for the acknowledgements of its epoch's messages, which a
                // broker may hold back while the previous epoch's transaction on the same
                // partition is open (noida-db does): that transaction commits first, on
                // this thread, or the two would wait for each other.
                Some(Job::Seal(_)) if !self.sealed.is_empty() => return Ok(()),
                Some(_) => {}
            }
            let i = match self.open {
                Some(i) => i,
                None => {
                    let Some(i) = self.producers.iter().position(|p| p.state == TxnState::Idle) else {
                        // Both producers hold sealed epochs: the next one waits for a commit.
                        return Ok(());
                    };
                    self.begin(i)?;
                    i
                }
            };
            match self.held.pop_front() {
                Some(Job::Write(messages)) => {
                    let p = &self.producers[i].producer;
                    for m in &messages {
                        send_message(p, self.topic.as_deref(), &self.step, m)?;
                    }
                    p.poll(Duration::ZERO);
                }
                Some(Job::Seal(epoch)) => self.seal(i, epoch)?,
                Some(Job::Commit(_)) | None => {}
            }
        }
    }

    fn failed(&self, i: usize, epoch: Option<u64>, what: &str, cause: RdError) -> ConnectorError {
        let epoch = epoch.map_or_else(String::new, |e| format!(" epoch {e}:"));
        TransactionError::boxed(
            format!(
                "step {}: slot {} (transactional id {:?}):{epoch} {what}",
                self.step, self.slot, self.producers[i].txn_id
            ),
            cause,
        )
    }

    fn begin(&mut self, i: usize) -> Result<(), ConnectorError> {
        self.producers[i]
            .producer
            .begin_transaction()
            .map_err(|e| self.failed(i, None, "cannot begin a transaction", e))?;
        self.producers[i].state = TxnState::Open;
        self.open = Some(i);
        Ok(())
    }

    /// Ends the epoch's transaction short of its commit: adds the marker (consumer group
    /// `transactional.id`, offset `epoch + 1` on partition 0 of the marker topic) and waits
    /// until every message is acknowledged. The next epoch's messages go to the other
    /// producer only after this, so that they follow this epoch's in every partition.
    fn seal(&mut self, i: usize, epoch: u64) -> Result<(), ConnectorError> {
        let p = &self.producers[i];
        let mut marker = TopicPartitionList::new();
        let next = i64::try_from(epoch + 1)
            .map_err(|_| format!("step {}: epoch {epoch} is too large", self.step))?;
        marker
            .add_partition_offset(&self.marker, 0, Offset::Offset(next))
            .map_err(|e| self.failed(i, Some(epoch), "cannot name the commit marker", e))?;
        p.producer
            .send_offsets_to_transaction(&marker, &p.group, COORDINATOR_TIMEOUT)
            .map_err(|e| self.failed(i, Some(epoch), "cannot add the commit marker", e))?;
        // Short flushes return within about a millisecond of the last acknowledgement;
        // one long flush serves events in 100 ms slices.
        loop {
            match p.producer.flush(Duration::from_millis(1)) {
                Ok(()) => break,
                Err(RdError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {}
                Err(e) => return Err(self.failed(i, Some(epoch), "cannot flush the transaction", e)),
            }
        }
        p.producer.context().take_failure(&p.producer, &self.step)?;
        self.producers[i].state = TxnState::Sealed(epoch);
        self.sealed.push_back((i, epoch));
        self.open = None;
        Ok(())
    }

    fn commit(&mut self, i: usize, epoch: u64) -> Result<(), ConnectorError> {
        let mut tries = 0;
        loop {
            match self.producers[i].producer.commit_transaction(COORDINATOR_TIMEOUT) {
                Ok(()) => break,
                // librdkafka says a retriable commit error may be retried as it is.
                Err(RdError::Transaction(e)) if e.is_retriable() && tries < 3 => tries += 1,
                Err(e) => return Err(self.failed(i, Some(epoch), "cannot commit the transaction", e)),
            }
        }
        self.producers[i].state = TxnState::Idle;
        Ok(())
    }
}
