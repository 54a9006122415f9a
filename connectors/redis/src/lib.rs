//! Redis Streams for bwx: [`RedisStreamSource`] reads streams, one partition per stream,
//! resumable from the last entry id; [`RedisStreamSink`] adds entries with `XADD`.
//!
//! | connector | kind | partitions | recovery state | delivery |
//! | --- | --- | --- | --- | --- |
//! | [`RedisStreamSource`] | fixed-partitioned source of [`StreamEntry`] | one per stream | the last entry id | exactly-once (position in the snapshot) |
//! | [`RedisStreamSink`] | dynamic sink of [`ToFields`] items | one connection per worker | none | at-least-once |
//!
//! The client is the `redis` crate (redis-rs), blocking, one connection per partition.
//! Both connectors pass the conformance kit against a real server: see
//! `tests/conformance.rs`, which reads the server from `BWX_REDIS_URL`
//! (`scripts/servers.sh` starts one).

mod entry;
mod error;
mod server;
mod sink;
mod source;

pub use entry::{StreamEntry, ToFields};
pub use error::RedisError;
pub use sink::{RedisStreamSink, RedisStreamSinkPartition};
pub use source::{RedisStreamPartition, RedisStreamPosition, RedisStreamSource};

/// The `redis` crate this one is built on, for its types.
pub use redis;
