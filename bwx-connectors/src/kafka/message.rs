//! The items Kafka steps emit and take.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Raw bytes of a key or value; `None` when the message has none (a tombstone value).
pub type Bytes = Option<Vec<u8>>;

/// Message headers in order: name and optional value.
pub type Headers = Vec<(String, Option<Vec<u8>>)>;

/// A message read from Kafka, with its key and value (raw bytes until deserialized).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaSourceMessage<K = Bytes, V = Bytes> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// The topic it was read from (shared by all messages of a partition).
    pub topic: Arc<str>,
    /// Its headers.
    pub headers: Headers,
    /// Its offset in the partition.
    pub offset: i64,
    /// The partition it was read from.
    pub partition: i32,
    /// Its timestamp in milliseconds since the Unix epoch, when the broker gave one.
    pub timestamp: Option<i64>,
    /// What the timestamp is: the producer's create time or the broker's log-append time.
    pub timestamp_type: TimestampType,
    /// How long after its timestamp the source read it (the time it waited to be read,
    /// clamped at zero when clocks disagree); `None` without a timestamp.
    pub latency: Option<Duration>,
}

/// What a message's timestamp is (Kafka's `message.timestamp.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimestampType {
    /// The message has no timestamp.
    NotAvailable,
    /// Set by the producer when it created the message.
    CreateTime,
    /// Set by the broker when it appended the message to the log.
    LogAppendTime,
}

impl<K, V> KafkaSourceMessage<K, V> {
    /// A sink message with the same key, value and headers. Its topic is left to the sink
    /// (as in Bytewax): a flow that copies a topic must not write back into it.
    pub fn to_sink(self) -> KafkaSinkMessage<K, V> {
        KafkaSinkMessage {
            key: self.key,
            value: self.value,
            topic: None,
            headers: self.headers,
            partition: None,
            timestamp: None,
        }
    }

    /// The same message with another key.
    pub fn with_key<K2>(self, key: K2) -> KafkaSourceMessage<K2, V> {
        KafkaSourceMessage {
            key,
            value: self.value,
            topic: self.topic,
            headers: self.headers,
            offset: self.offset,
            partition: self.partition,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            latency: self.latency,
        }
    }

    /// The same message with another value.
    pub fn with_value<V2>(self, value: V2) -> KafkaSourceMessage<K, V2> {
        KafkaSourceMessage {
            key: self.key,
            value,
            topic: self.topic,
            headers: self.headers,
            offset: self.offset,
            partition: self.partition,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            latency: self.latency,
        }
    }

    /// The same message with another key and value.
    pub fn with_key_and_value<K2, V2>(self, key: K2, value: V2) -> KafkaSourceMessage<K2, V2> {
        KafkaSourceMessage {
            key,
            value,
            topic: self.topic,
            headers: self.headers,
            offset: self.offset,
            partition: self.partition,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            latency: self.latency,
        }
    }
}

/// A message to write to Kafka.
///
/// `topic` overrides the sink's default topic; `partition` overrides the producer's
/// partitioner (by default the key's hash); `timestamp` (ms) overrides the produce time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaSinkMessage<K = Bytes, V = Bytes> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// The topic; `None` uses the sink's topic.
    pub topic: Option<Arc<str>>,
    /// Headers to send.
    pub headers: Headers,
    /// The partition; `None` lets the producer choose.
    pub partition: Option<i32>,
    /// The timestamp in ms since the Unix epoch; `None` is the produce time.
    pub timestamp: Option<i64>,
}

impl<K, V> KafkaSinkMessage<K, V> {
    /// A message with this key and value and no other attributes.
    pub fn new(key: K, value: V) -> Self {
        KafkaSinkMessage {
            key,
            value,
            topic: None,
            headers: Vec::new(),
            partition: None,
            timestamp: None,
        }
    }

    /// Sets the topic.
    pub fn topic(mut self, topic: &str) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: Option<Vec<u8>>) -> Self {
        self.headers.push((name.to_string(), value));
        self
    }

    /// Sets the timestamp (ms since the Unix epoch).
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }

    /// The same message with another key.
    pub fn with_key<K2>(self, key: K2) -> KafkaSinkMessage<K2, V> {
        KafkaSinkMessage {
            key,
            value: self.value,
            topic: self.topic,
            headers: self.headers,
            partition: self.partition,
            timestamp: self.timestamp,
        }
    }

    /// The same message with another value.
    pub fn with_value<V2>(self, value: V2) -> KafkaSinkMessage<K, V2> {
        KafkaSinkMessage {
            key: self.key,
            value,
            topic: self.topic,
            headers: self.headers,
            partition: self.partition,
            timestamp: self.timestamp,
        }
    }

    /// The same message with another key and value.
    pub fn with_key_and_value<K2, V2>(self, key: K2, value: V2) -> KafkaSinkMessage<K2, V2> {
        KafkaSinkMessage {
            key,
            value,
            topic: self.topic,
            headers: self.headers,
            partition: self.partition,
            timestamp: self.timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_sink_keeps_key_value_headers_and_leaves_the_topic_to_the_sink() {
        let m = KafkaSourceMessage {
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            topic: "in".into(),
            headers: vec![("h".into(), None)],
            offset: 7,
            partition: 2,
            timestamp: Some(1),
            timestamp_type: TimestampType::CreateTime,
            latency: None,
        };
        let s = m.to_sink();
        assert_eq!(
            s,
            KafkaSinkMessage::new(Some(b"k".to_vec()), Some(b"v".to_vec())).header("h", None)
        );
    }
}
