//! bwx: stream processing for Rust on timely-dataflow.
//!
//! Write a flow with the typed builder ([`Dataflow`], [`Stream`]), run it on one thread,
//! many threads or many processes, and test it with [`testing`]. Start with
//! `use bwx::prelude::*;`.
//!
//! The [`guide`] module holds the guides, with examples the test suite runs: getting
//! started, concepts, connectors, recovery, windowing, deployment and operations, and
//! coming from Bytewax.
//!
//! ```
//! use bwx::prelude::*;
//! use bwx::testing::{TestingSink, TestingSource};
//!
//! let flow = Dataflow::new("double");
//! let out = TestingSink::new();
//! flow.input("inp", TestingSource::new(vec![1, 2, 3]))
//!     .map("double", |x| x * 2)
//!     .output("out", out.clone());
//! bwx::run_main(&flow).unwrap();
//! assert_eq!(out.take(), vec![2, 4, 6]);
//! ```
//!
//! # Connectors
//!
//! Each passes the conformance kit ([`testing::conformance`]) against the real system.
//!
//! | connector | module (feature) | delivery | recovery state |
//! | --- | --- | --- | --- |
//! | `FileSource`, `DirSource`, `CsvSource` | `connectors::files` | exactly-once | byte offset |
//! | `FileSink`, `DirSink` | `connectors::files` | exactly-once (truncate on resume) | byte offset |
//! | `StdInSource`, `StdOutSink` | `connectors::stdio` | none / at-least-once | none |
//! | `KafkaSource`, `KafkaSink` | `connectors::kafka` (`kafka`) | exactly-once / at-least-once | offset / none |
//! | `PostgresSource`, `PostgresSink` | `postgres` (`postgres`) | exactly-once / exactly-once (prepared transaction per epoch) | last key / last epoch prepared |
//! | `RedisStreamSource`, `RedisStreamSink` | `redis` (`redis`) | exactly-once / at-least-once | last entry id / none |
//! | `JetStreamSource`, `JetStreamSink` | `nats` (`nats`) | exactly-once / at-least-once | last sequence / none |
//! | `MqttSource`, `MqttSink` | `mqtt` (`mqtt`) | at-least-once / at-least-once | messages received / none |
//!
//! To write one, start from `template/` in the repository (`scripts/new-connector.sh`); the
//! README's "Connector hub" section says how to publish it.

pub use bwx_runtime::*;

#[cfg(all(feature = "macros", feature = "connectors"))]
pub mod guide;

#[cfg(feature = "connectors")]
pub use bwx_connectors as connectors;

/// PostgreSQL: an exactly-once sink and an incremental source (feature `postgres`).
#[cfg(feature = "postgres")]
pub use bwx_postgres as postgres;

/// Redis Streams: a source per stream and an XADD sink (feature `redis`).
#[cfg(feature = "redis")]
pub use bwx_redis as redis;

/// NATS JetStream: a source per stream and a sink with publish acknowledgements (feature
/// `nats`).
#[cfg(feature = "nats")]
pub use bwx_nats as nats;

/// MQTT: a QoS 1 source over persistent sessions and a QoS 1 sink (feature `mqtt`).
#[cfg(feature = "mqtt")]
pub use bwx_mqtt as mqtt;

/// Builds a [`Dataflow`] from statements `binding = stream.operator(args);`, checked at
/// compile time.
///
/// ```
/// use bwx::prelude::*;
/// use bwx::testing::{TestingSink, TestingSource};
///
/// let out = TestingSink::new();
/// let flow = bwx::dataflow!(double {
///     nums    = input(TestingSource::new(vec![1, 2, 3]));
///     doubled = nums.map(|x| x * 2).filter(|x| *x > 2);
///     sink    = doubled.output(out.clone());
/// });
/// bwx::run_main(&flow).unwrap();
/// assert_eq!(out.take(), vec![4, 6]);
/// ```
///
/// - Each statement is one builder call; its step id is the binding (`double.doubled`).
///   In a chain, inner steps are named `binding_operator` (`doubled_map`), numbered
///   `binding_operator_2`, ... when an operator repeats.
/// - Stateful steps (`input`, `output`, `*_final`, `stateful*`, `collect`, `join`,
///   `*_window`) and steps with ports (`branch`) end their statement, so recovery ids are
///   your own names.
/// - Ports are fields: `split = nums.branch(|x| x % 2 == 0);` then `split.trues`; a window
///   step's are `down`, `late` and `meta`.
/// - `merge(a, b, ...)`, `join(a, b, ..., insert = .., emit = ..)` and
///   `join_window(a, b, ..., clock = .., windower = .., insert = .., emit = .., ordered = ..)`
///   are free calls; any other free call `x = path(a, ...)` calls a sub-flow function
///   `fn path(flow: &Dataflow, id: &str, a: &Stream<T>, ...) -> R`.
/// - Every stream must be used (name it `_x` to allow it not to be); the flow needs an
///   `input` and an `output`. All errors are reported together, at your tokens.
/// - `dataflow!(crate = path::to::bwx, name { ... })` for re-exports of this crate.
#[cfg(feature = "macros")]
pub use bwx_macros::dataflow;

/// Generates a fixed-partitioned source from a partition struct and its impl block; put
/// it on both. `#[state]` fields form the resume state (`<Part>State`, serde), stored
/// with recovery and set again on resume (or passed to `open` as a third parameter,
/// `Option<<Part>State>`, to seek). The connector value `S` is the type of `open`'s first
/// parameter; without `list_parts` there is one partition, `"singleton"`. Methods may
/// return any error that converts into `ConnectorError`. See `examples/custom_source.rs`.
///
/// ```
/// use bwx::prelude::*;
/// use bwx::inputs::ConnectorError;
/// use bwx::testing::TestingSink;
///
/// /// Counts from 0 to `limit` in every partition.
/// pub struct Counter { limit: u32 }
///
/// #[bwx::source]
/// pub struct CounterPart { #[state] next: u32, limit: u32 }
///
/// #[bwx::source]
/// impl CounterPart {
///     fn list_parts(_source: &Counter) -> Vec<String> { vec!["a".into(), "b".into()] }
///     fn open(source: &Counter, _part: &str) -> Result<Self, ConnectorError> {
///         Ok(CounterPart { next: 0, limit: source.limit })
///     }
///     fn next_batch(&mut self, batch: &mut Vec<u32>) -> Result<BatchStatus, ConnectorError> {
///         if self.next == self.limit { return Ok(BatchStatus::Eof); }
///         batch.push(self.next);
///         self.next += 1;
///         Ok(BatchStatus::Active)
///     }
/// }
///
/// let out = TestingSink::new();
/// let flow = bwx::dataflow!(count {
///     nums = input(Counter { limit: 3 });
///     out  = nums.output(out.clone());
/// });
/// bwx::run_main(&flow).unwrap();
/// let mut got = out.take();
/// got.sort();
/// assert_eq!(got, vec![0, 0, 1, 1, 2, 2]);
/// ```
#[cfg(feature = "macros")]
pub use bwx_macros::source;

/// Generates a fixed-partitioned sink from a partition struct and its impl block (methods
/// `list_parts`, `part_fn`, `delivery`, `open`, `write_batch`, `pre_commit`, `commit`,
/// `close`); like [`source`]. The key type is `part_fn`'s second parameter, or
/// `#[sink(key = Type)]` (default `String`). `fn delivery(sink: &S) -> Delivery` declares
/// the guarantee (at-least-once unless it says otherwise).
#[cfg(feature = "macros")]
pub use bwx_macros::sink;

/// What the macros' expansions name; not part of the API.
#[doc(hidden)]
pub mod __private {
    // What `#[source]` / `#[sink]` name lives in the runtime, so bwx's own crates use it too.
    pub use bwx_runtime::__private::*;
    pub use bwx_runtime::stateful::{JoinEmitMode, JoinInsertMode};
    pub use bwx_runtime::{Dataflow, StepId, Stream};
}
