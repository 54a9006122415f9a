//! Helpers shared by the Kafka tests: an in-memory recovery hook, topic set-up, and a
//! plain rdkafka producer and reader to check what the flows wrote.

#![allow(dead_code)]

#[cfg(feature = "avro")]
pub mod registry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bwx_runtime::FlowError;
use bwx_runtime::StepId;
use bwx_runtime::recovery::{RecoveryHook, Snapshot, StoredStates};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// Encoded states by (step id, encoded key).
type States = HashMap<(String, Vec<u8>), Vec<u8>>;

/// Keeps the latest snapshot of every (step, key) and the last closed epoch, in memory.
#[derive(Default)]
pub struct MemoryRecovery {
    states: Mutex<States>,
    epoch: Mutex<u64>,
}

impl MemoryRecovery {
    /// The stored states of a step.
    pub fn states_of(&self, step: &str) -> usize {
        self.states
            .lock()
            .unwrap()
            .keys()
            .filter(|(s, _)| s == step)
            .count()
    }
}

impl RecoveryHook for MemoryRecovery {
    fn resume_epoch(&self) -> u64 {
        *self.epoch.lock().unwrap()
    }

    fn resume_states(&self, step: &StepId) -> Result<Arc<StoredStates>, FlowError> {
        Ok(Arc::new(
            self.states
                .lock()
                .unwrap()
                .iter()
                .filter(|((s, _), _)| s == step.as_str())
                .map(|((_, k), v)| (k.clone(), v.clone()))
                .collect(),
        ))
    }

    fn epoch_closed(&self, _worker: usize, epoch: u64, snapshots: Vec<Snapshot>) -> Result<(), FlowError> {
        let mut states = self.states.lock().unwrap();
        for s in snapshots {
            let key = (s.step_id.to_string(), s.key);
            match s.state {
                Some(state) => states.insert(key, state),
                None => states.remove(&key),
            };
        }
        let mut e = self.epoch.lock().unwrap();
        *e = (*e).max(epoch + 1);
        Ok(())
    }
}

/// Produces `(key, value, partition)` messages and waits for all acknowledgements.
pub fn produce(brokers: &str, topic: &str, messages: impl IntoIterator<Item = (Vec<u8>, Vec<u8>, i32)>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .expect("create a producer");
    for (k, v, p) in messages {
        let mut record = BaseRecord::to(topic).key(&k).payload(&v).partition(p);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(10));
                    record = r;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

/// One message read back: key, value, headers, partition, offset.
pub type Read = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
    i32,
    i64,
);

/// A plain consumer assigned every partition of `topic` from the beginning.
pub fn reader_from_beginning(brokers: &str, topic: &str, partitions: i32) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bwx-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("create a consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    consumer
}

/// Reads every partition of `topic` from the beginning until `expected` messages came, or
/// 60 s passed.
pub fn read_all(brokers: &str, topic: &str, partitions: i32, expected: usize) -> Vec<Read> {
    use rdkafka::message::Headers as _;
    let consumer = reader_from_beginning(brokers, topic, partitions);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                m.key().map(<[u8]>::to_vec),
                m.payload().map(<[u8]>::to_vec),
                headers,
                m.partition(),
                m.offset(),
            ));
        }
    }
    out
}

/// A topic name unique to this process and call.
pub fn unique_topic(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates `topic` with `partitions` partitions (replication 1) and waits for it.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = runtime
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create topic");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t} on {brokers}: {e}"));
    }
}
