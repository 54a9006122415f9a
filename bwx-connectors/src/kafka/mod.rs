//! Kafka: a partitioned, resumable source and a per-worker sink on rdkafka (bundled
//! librdkafka), operators that split into `oks` and `errs`, and key/value serialization.
//!
//! - [`KafkaSource`]: one partition per topic-partition (`"{partition}-{topic}"`), no
//!   consumer group, positions stored with recovery, `tail` or stop at the end. Partitions
//!   are listed at start; topics are watched while the flow runs (deletion and added
//!   partitions are reported within seconds; new partitions are read after a restart);
//!   offsets the broker lost or expired are reported and handled per [`OnOffsetsLost`].
//! - [`KafkaSink`]: one producer per worker, per-message topic/key/headers/partition,
//!   flushed once per epoch before the epoch's snapshots are committed; at-least-once.
//!   It gives key and value buffers back to the worker's sources, so forwarding messages
//!   allocates none per message.
//! - [`ExactlyOnceKafkaSink`] ([`KafkaSink::exactly_once`]): exactly-once output with
//!   recovery, one Kafka transaction per epoch and slot, committed once the epoch is
//!   durable, with a write-ahead log in the recovery store (`examples/kafka_exactly_once.rs`
//!   in the `bwx` crate is a runnable flow).
//! - [`input`] / [`output`] and [`deserialize`], [`deserialize_key`], [`deserialize_value`],
//!   [`serialize`], [`serialize_key`], [`serialize_value`], with [`serde`] formats (JSON and
//!   Kafka's primitives; plain Avro and the Confluent schema-registry wire format for Avro,
//!   JSON Schema and Protobuf behind the features `avro`, `json-schema` and `protobuf`).
//! - Errors are [`KafkaError`]s: librdkafka's code, retriable or fatal, topic, partition,
//!   offset. librdkafka's own log lines go to `tracing` at fitting levels (a partition's end
//!   is not an error; a broker outage the client survives is a warning, not repeated).
//! - Any librdkafka setting passes through [`KafkaConfig`]; secret values are never printed.
//! - [`ConsumerLag`] reports each partition's lag to an observer ([`KafkaSource::on_lag`]).
//!
//! A flow that reads a topic, counts messages per key and writes the counts
//! (`examples/kafka_pipeline.rs` in the `bwx` crate is the runnable version):
//!
//! ```no_run
//! use bwx::connectors::kafka::{self, KafkaConfig, KafkaSink, KafkaSinkMessage, KafkaSource};
//! use bwx::prelude::*;
//!
//! let config = KafkaConfig::new("127.0.0.1:9092");
//! let flow = Dataflow::new("counts");
//! let msgs = kafka::input(&flow, "in", KafkaSource::new(config.clone(), ["events"]).tail(false));
//! msgs.errs.map("why", |e| e.error).inspect("log", |_, e| eprintln!("{e}"));
//! let counts = msgs
//!     .oks
//!     .map("key", |m| String::from_utf8_lossy(&m.key.unwrap_or_default()).into_owned())
//!     .count_final("count", |k: &String| k.clone());
//! let out = counts.map("msg", |(k, n): (String, u64)| {
//!     KafkaSinkMessage::new(Some(k.into_bytes()), Some(n.to_string().into_bytes()))
//! });
//! kafka::output(&out, "out", KafkaSink::new(config, Some("counts")));
//! bwx::run_main(&flow).unwrap();
//! ```

mod buffers;
mod client;
mod config;
mod error;
mod exactly_once;
mod lag;
mod message;
mod ops;
mod produce;
pub mod serde;
mod sink;
mod source;
mod wal;
mod watch;

/// The rdkafka crate the connectors use, for admin tasks and anything the connectors do not
/// cover (topic creation, offsets queries).
pub use rdkafka;

pub use config::{KafkaConfig, is_secret_setting};
pub use error::{KafkaError, is_retriable};
pub use exactly_once::{ExactlyOnceKafkaSink, TransactionLog, TransactionSlot};
pub use lag::{ConsumerLag, LagObserver};
pub use message::{Bytes, Headers, KafkaSinkMessage, KafkaSourceMessage, TimestampType};
pub use ops::{
    KafkaOut, SinkOut, SourceOut, deserialize, deserialize_key, deserialize_value, input, output, serialize,
    serialize_key, serialize_value,
};
pub use serde::{
    Deserializer, JsonDeserializer, JsonSerializer, MessageField, SerdeContext, SerdeError, SerdeErrorKind,
    Serializer,
};
pub use sink::{KafkaSink, KafkaSinkPartition};
pub use source::{Emit, ErrorMode, KafkaSource, KafkaSourcePartition, OnOffsetsLost, Raise, StartOffset};
