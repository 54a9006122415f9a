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
//!
//! # Cargo features
//!
//! The defaults are everything a flow binary uses: `macros` (`dataflow!`, `#[source]`,
//! `#[sink]`, `#[operator]`), `connectors` (files, directories, CSV, stdio), `sqlite` (the
//! recovery store [`recovery::SqliteRecovery`] and the connector conformance kit), `cli`
//! (Bytewax's command line, [`cli::main`], with the SQLite store for `-r`, the dataflow API
//! and logging; also the `bwx` tool), `tokio` ([`inputs::AsyncBatcher`] for async sources) and
//! `api` (the HTTP [`api`]: metrics, status, the live page). A library that builds flows
//! without them depends on `bwx = { version = "0.1", default-features = false }` and turns
//! on what it uses: the engine, operators, windowing, recovery contracts and [`testing`] are
//! always there. Off by default: `kafka`, `avro`, `json-schema`, `protobuf`, `postgres`,
//! `redis`, `nats`, `mqtt` (connectors) and `otlp` (spans over OTLP/HTTP).

pub use bwx_runtime::*;

#[cfg(all(feature = "macros", feature = "connectors"))]
pub mod guide;

#[cfg(feature = "connectors")]
#[doc(inline)]
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
///   are free calls (a join's sides may have values of different types; its rows are
///   tuples).
/// - Your own operators ([`operator`]) are called like built-ins: `x = a.mean(3);` calls
///   `mean(&flow, "x", &a, 3)` and `x = mean(a, 3);` the same; arguments naming streams
///   are passed by reference. A method name close to a built-in's is taken for a typo
///   (`mpa`: "did you mean `map`?"); call such an operator as a free call.
/// - Every stream must be used (name it `_x` to allow it not to be: `_meta = win.meta;`);
///   the flow needs an `input` and an output (`output`, or `inspect`, which counts as one).
///   All errors are reported together, at your tokens.
/// - `dataflow!(crate = path::to::bwx, name { ... })` for re-exports of this crate.
#[cfg(feature = "macros")]
pub use bwx_macros::dataflow;

/// Generates a fixed-partitioned source from a partition struct and its impl block; put
/// it on both. `#[state]` fields form the resume state (`<Part>State`, serde), stored
/// with recovery and set again on resume (or passed to `open` as a third parameter,
/// `Option<<Part>State>`, to seek). The connector value `S` is the type of `open`'s first
/// parameter; without `list_parts` there is one partition, `"singleton"`. Methods may
/// return any error that converts into `ConnectorError`. See `examples/custom_source.rs`.
/// The struct needs the attribute too: "cannot find type `<Part>State`" on the impl block
/// means it lacks it.
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
///
/// A source whose system redelivers until told otherwise (a JetStream consumer, an MQTT
/// session) acknowledges in `fn commit(&mut self, durable: &<Part>State)`: it gets, in order,
/// the positions its `snapshot` returned, each once the epoch that stored it is durable in
/// every recovery partition (right after the snapshot without recovery), and the last
/// before `close`. What it acknowledges is then never needed again; what was read after is
/// delivered again if the run dies. (A sink's `commit` gets the epoch instead.)
///
/// ```
/// use std::collections::VecDeque;
/// use std::sync::{Arc, Mutex};
/// use bwx::prelude::*;
/// use bwx::inputs::ConnectorError;
/// use bwx::testing::TestingSink;
///
/// /// A queue that keeps its numbered messages until they are acknowledged.
/// #[derive(Clone, Default)]
/// pub struct Queue(Arc<Mutex<VecDeque<(u64, String)>>>);
///
/// #[bwx::source]
/// pub struct QueuePart { queue: Queue, #[state] next: u64 }
///
/// #[bwx::source]
/// impl QueuePart {
///     fn open(queue: &Queue, _part: &str) -> Result<Self, ConnectorError> {
///         Ok(QueuePart { queue: queue.clone(), next: 0 })
///     }
///     fn next_batch(&mut self, batch: &mut Vec<String>) -> Result<BatchStatus, ConnectorError> {
///         let queue = self.queue.0.lock().map_err(|_| "poisoned")?;
///         let Some((n, message)) = queue.iter().find(|(n, _)| *n >= self.next) else {
///             return Ok(BatchStatus::Eof);
///         };
///         batch.push(message.clone());
///         self.next = n + 1;
///         Ok(BatchStatus::Active)
///     }
///     /// Drops what a resume will not read again.
///     fn commit(&mut self, durable: &QueuePartState) -> Result<(), ConnectorError> {
///         let mut queue = self.queue.0.lock().map_err(|_| "poisoned")?;
///         queue.retain(|(n, _)| *n >= durable.next);
///         Ok(())
///     }
/// }
///
/// let queue = Queue::default();
/// queue.0.lock().unwrap().extend([(0, "a".to_string()), (1, "b".to_string())]);
/// let out = TestingSink::new();
/// let flow = Dataflow::new("drain");
/// flow.input("inp", queue.clone()).output("out", out.clone());
/// bwx::run_main(&flow).unwrap();
/// assert_eq!(out.take(), ["a", "b"]);
/// assert!(queue.0.lock().unwrap().is_empty(), "everything read was acknowledged");
/// ```
#[cfg(feature = "macros")]
pub use bwx_macros::source;

/// Generates a fixed-partitioned sink from a partition struct and its impl block (methods
/// `list_parts`, `part_fn`, `delivery`, `open`, `write_batch`, `pre_commit`, `commit`,
/// `close`); like [`source`], put it on both. `fn delivery(sink: &S) -> Delivery` declares
/// the guarantee (at-least-once unless it says otherwise). `part_fn` routes a key to a partition (an index into the
/// name-ordered list of all partitions, modulo its length); the key type is `part_fn`'s second parameter,
/// or `#[sink(key = Type)]` (default `String`). `#[state]` fields form the partition's
/// resume state. The sink takes a keyed stream `(key, item)` and writes the items.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::{Arc, Mutex};
///
/// use bwx::inputs::ConnectorError;
/// use bwx::testing::TestingSource;
///
/// /// Keeps each partition's items in memory.
/// #[derive(Clone, Default)]
/// pub struct Memory(Arc<Mutex<BTreeMap<String, Vec<u64>>>>);
///
/// #[bwx::sink]
/// pub struct MemoryPart { part: String, sink: Memory }
///
/// #[bwx::sink]
/// impl MemoryPart {
///     fn list_parts(_sink: &Memory) -> Vec<String> { vec!["even".into(), "odd".into()] }
///     fn part_fn(_sink: &Memory, key: &u64) -> u64 { key % 2 }
///     fn open(sink: &Memory, part: &str) -> Result<Self, ConnectorError> {
///         Ok(MemoryPart { part: part.to_string(), sink: sink.clone() })
///     }
///     fn write_batch(&mut self, batch: &mut Vec<u64>) -> Result<(), ConnectorError> {
///         let mut written = self.sink.0.lock().map_err(|_| "poisoned")?;
///         written.entry(self.part.clone()).or_default().append(batch);
///         Ok(())
///     }
/// }
///
/// let sink = Memory::default();
/// let flow = bwx::dataflow!(split {
///     nums  = input(TestingSource::new(1..=5u64));
///     keyed = nums.key_on(|n: &u64| *n);
///     out   = keyed.output(sink.clone());
/// });
/// bwx::run_workers(&flow, 2, bwx::RunConfig::default()).unwrap();
/// let mut written = sink.0.lock().unwrap().clone();
/// written.values_mut().for_each(|items| items.sort());
/// assert_eq!(written["even"], vec![2, 4]);
/// assert_eq!(written["odd"], vec![1, 3, 5]);
/// ```
#[cfg(feature = "macros")]
pub use bwx_macros::sink;

/// Makes a function of streams a composite operator (Bytewax's `@operator`): the steps
/// it adds get ids nested under the name it is called with (`flow.avg.stateful_map`), and
/// streams cross its boundary only as its arguments and results, which the flow checks.
///
/// The function takes its streams (parameters whose type names `Stream`, `BranchOut` or
/// `WindowOut`) and any other arguments, and returns streams ([`operators::composite::Streams`]).
/// The attribute adds two leading parameters, the flow and the step name, so it is called
/// as `mean(&flow, "avg", &readings)` with the builder, and as `avg = readings.mean();` or
/// `avg = mean(readings);` in [`dataflow!`], like a built-in operator (rustc checks the
/// call). A first parameter `flow: &Dataflow` is used as the flow (for operators that add
/// inputs). The builder form without a function is [`Dataflow::operator`].
///
/// ```
/// use bwx::prelude::*;
/// use bwx::testing::{TestingSink, TestingSource};
///
/// /// The running mean of each key's values.
/// #[bwx::operator]
/// fn mean(readings: &Stream<(String, f64)>) -> Stream<(String, f64)> {
///     readings.stateful_map("stateful_map", |state: Option<(f64, u32)>, x: f64| {
///         let (sum, n) = state.unwrap_or((0.0, 0));
///         (Some((sum + x, n + 1)), (sum + x) / f64::from(n + 1))
///     })
/// }
///
/// let out = TestingSink::new();
/// let readings = vec![("a".to_string(), 1.0), ("a".to_string(), 3.0)];
/// let flow = bwx::dataflow!(sensors {
///     readings = input(TestingSource::new(readings));
///     avg      = readings.mean();
///     out      = avg.output(out.clone());
/// });
/// assert!(flow.steps().iter().any(|s| s.id.as_str() == "sensors.avg.stateful_map"));
/// bwx::run_main(&flow).unwrap();
/// assert_eq!(out.take(), vec![("a".to_string(), 1.0), ("a".to_string(), 2.0)]);
///
/// // The same operator from the builder.
/// let flow = Dataflow::new("sensors");
/// let readings = flow.input("readings", TestingSource::new(vec![("b".to_string(), 2.0)]));
/// mean(&flow, "avg", &readings).output("out", TestingSink::new());
/// bwx::run_main(&flow).unwrap();
/// ```
///
/// `#[bwx::operator(crate = path::to::bwx)]` for re-exports of this crate.
#[cfg(feature = "macros")]
pub use bwx_macros::operator;

/// What the macros' expansions name; not part of the API.
#[doc(hidden)]
pub mod __private {
    // What `#[source]` / `#[sink]` name lives in the runtime, so bwx's own crates use it too.
    pub use bwx_runtime::__private::*;
    pub use bwx_runtime::stateful::{JoinEmitMode, JoinInsertMode};
    pub use bwx_runtime::{Dataflow, StepId, Stream};
}
