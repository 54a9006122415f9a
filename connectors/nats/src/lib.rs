//! NATS JetStream for bwx: [`JetStreamSource`] reads streams, one partition per stream,
//! resumable from the last sequence read and acknowledging what became durable;
//! [`JetStreamSink`] publishes and waits for the stream's acknowledgements before an
//! epoch's snapshot is stored.
//!
//! | connector | kind | partitions | recovery state | delivery |
//! | --- | --- | --- | --- | --- |
//! | [`JetStreamSource`] | fixed-partitioned source of [`JetStreamMessage`] | one per stream | the last stream sequence read | exactly-once (position in the snapshot; redeliveries skipped by sequence) |
//! | [`JetStreamSink`] | dynamic sink of bytes | one connection per worker | none | at-least-once (publish acknowledgements awaited at the epoch's close) |
//!
//! The client is `async-nats` on a one-thread tokio runtime per connector. Both connectors
//! pass the conformance kit against a real server: see `tests/conformance.rs`, which reads
//! the server from `BWX_NATS_URL` (`scripts/servers.sh` starts `nats-server -js`).

mod error;
mod message;
mod server;
mod sink;
mod source;

pub use error::NatsError;
pub use message::JetStreamMessage;
pub use sink::{JetStreamSink, JetStreamSinkPartition};
pub use source::{JetStreamPartition, JetStreamPosition, JetStreamSource};

/// The `async-nats` crate this one is built on, for its types.
pub use async_nats;
