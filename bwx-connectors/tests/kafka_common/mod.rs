//! Helpers shared by the Kafka tests: recovery in memory across executions, topic set-up, and a
//! plain rdkafka producer and reader to check what the flows wrote.

#![allow(dead_code)]

#[cfg(feature = "schema-registry")]
pub mod registry;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bwx_runtime::testing::MemoryStore;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// One recovery store in memory across the executions of a test: each run takes `next()`.
#[derive(Default)]
pub struct MemoryRecovery {
    current: Mutex<Option<Arc<MemoryStore>>>,
}

impl MemoryRecovery {
    /// The store for the next execution, resuming where the last one left off.
    pub fn next(&self) -> Arc<MemoryStore> {
        let mut current = self.current.lock().unwrap();
        let store = match current.as_ref() {
            None => MemoryStore::new(2),
            Some(last) => last.resume(),
        };
        *current = Some(store.clone());
        store
    }

    /// How many keys of a step have had a snapshot written.
    pub fn states_of(&self, step: &str) -> usize {
        let current = self.current.lock().unwrap();
        let written = current.as_ref().map(|s| s.written()).unwrap_or_default();
        let keys: std::collections::HashSet<Vec<u8>> = written
            .into_iter()
            .filter(|s| s.step_id.as_str() == step && s.state.is_some())
            .map(|s| s.key)
            .collect();
        keys.len()
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
