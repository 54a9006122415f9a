//! [`KafkaError`]: a failed message as data, with librdkafka's error code, whether a retry
//! could help, and where it happened.

use std::fmt;
use std::sync::Arc;

use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use serde::{Deserialize, Serialize};

/// A failed message, as data on an `errs` stream (or the error that stops a flow).
///
/// `error` is the whole story in one line: the step, what failed, the topic, partition and
/// offset, and the cause. The other fields say the same for code:
/// - `code`: librdkafka's error code. Consumer errors carry the broker's or the client's
///   code (`UnknownTopicOrPartition`, `AutoOffsetReset`, ...); (de)serialization failures
///   carry `KeyDeserialization`, `ValueDeserialization`, `KeySerialization` or
///   `ValueSerialization`, as in Bytewax's and Confluent's clients.
/// - `retriable`: whether the same operation may succeed later (Kafka's retriable errors:
///   a leader moving, a broker unreachable, a timeout). Decoding errors never are.
/// - `fatal`: librdkafka declared the client unusable (e.g. a fenced idempotent producer).
/// - `topic`, `partition`, `offset`: where, when known.
/// - `message`: the message concerned (for a consumer error, a message with the
///   partition's topic, partition and next offset and no key or value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaError<M> {
    /// What went wrong, naming the step, the topic-partition and offset, and the cause.
    pub error: String,
    /// librdkafka's error code.
    #[serde(with = "code_serde")]
    pub code: RDKafkaErrorCode,
    /// Whether trying again may succeed.
    pub retriable: bool,
    /// Whether the client is unusable after it.
    pub fatal: bool,
    /// The topic, when known.
    pub topic: Option<Arc<str>>,
    /// The partition, when known.
    pub partition: Option<i32>,
    /// The offset, when known.
    pub offset: Option<i64>,
    /// The message concerned.
    pub message: M,
}

impl<M> KafkaError<M> {
    /// An error with `code` about `message`; `retriable` follows the code.
    pub fn new(error: String, code: RDKafkaErrorCode, message: M) -> Self {
        KafkaError {
            error,
            code,
            retriable: is_retriable(code),
            fatal: false,
            topic: None,
            partition: None,
            offset: None,
            message,
        }
    }

    /// Sets where it happened.
    pub fn at(mut self, topic: Option<Arc<str>>, partition: Option<i32>, offset: Option<i64>) -> Self {
        self.topic = topic;
        self.partition = partition;
        self.offset = offset;
        self
    }

    /// The same error about another message.
    pub fn with_message<N>(self, message: N) -> KafkaError<N> {
        KafkaError {
            error: self.error,
            code: self.code,
            retriable: self.retriable,
            fatal: self.fatal,
            topic: self.topic,
            partition: self.partition,
            offset: self.offset,
            message,
        }
    }
}

impl<M> fmt::Display for KafkaError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error)
    }
}

impl<M: fmt::Debug> std::error::Error for KafkaError<M> {}

/// Whether an operation that failed with `code` may succeed if tried again: Kafka's
/// retriable protocol errors (as its Java client classifies them) and librdkafka's
/// transient client errors.
pub fn is_retriable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::Resolve
            | C::MessageTimedOut
            | C::AllBrokersDown
            | C::OperationTimedOut
            | C::QueueFull
            | C::WaitingForCoordinator
            | C::TimedOutQueue
            | C::WaitCache
            | C::Retry
            | C::UnknownTopicOrPartition
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::RequestTimedOut
            | C::NetworkException
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::KafkaStorageError
            | C::FetchSessionIdNotFound
            | C::InvalidFetchSessionEpoch
            | C::FencedLeaderEpoch
            | C::UnknownLeaderEpoch
            | C::OffsetNotAvailable
            | C::PreferredLeaderNotAvailable
            | C::UnstableOffsetCommit
            | C::ThrottlingQuotaExceeded
            | C::ConcurrentTransactions
    )
}

/// Stores an error code as its number.
mod code_serde {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(code: &RDKafkaErrorCode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(*code as i32)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RDKafkaErrorCode, D::Error> {
        let n = i32::deserialize(d)?;
        RDKafkaRespErr::try_from(n)
            .map(RDKafkaErrorCode::from)
            .map_err(|_| serde::de::Error::custom(format!("{n} is not a librdkafka error code")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_survive_serialization_and_classify() {
        let e = KafkaError::new("x".into(), RDKafkaErrorCode::UnknownTopicOrPartition, ()).at(
            Some("t".into()),
            Some(3),
            Some(7),
        );
        assert!(e.retriable && !e.fatal);
        let text = serde_json::to_string(&e).unwrap();
        let back: KafkaError<()> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
        assert!(!is_retriable(RDKafkaErrorCode::ValueDeserialization));
        assert!(!is_retriable(RDKafkaErrorCode::UnknownPartition));
        let json = serde_json::to_string(&KafkaError::new("y".into(), RDKafkaErrorCode::AutoOffsetReset, 1))
            .unwrap();
        assert!(json.contains("\"code\":-140"), "{json}");
    }
}
