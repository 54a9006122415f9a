//! The bwx runtime: a typed dataflow builder on timely-dataflow, keyed stateful operators,
//! sources and sinks, execution on threads and processes, and testing helpers.
//!
//! Users depend on the `bwx` facade crate and write `use bwx::prelude::*;`.
//!
//! ```
//! use bwx::prelude::*;
//! use bwx::testing::{TestingSink, TestingSource};
//!
//! let flow = Dataflow::new("wordcount");
//! let out = TestingSink::new();
//! flow.input("lines", TestingSource::new(vec!["a b", "b"]))
//!     .flat_map("words", |line: &str| line.split(' ').map(String::from).collect::<Vec<_>>())
//!     .count_final("count", |w: &String| w.clone())
//!     .output("out", out.clone());
//! bwx::run_main(&flow).unwrap();
//! let mut counts = out.take();
//! counts.sort();
//! assert_eq!(counts, vec![("a".to_string(), 1), ("b".to_string(), 2)]);
//! ```

// Every doc example compiles as a user writes it, warnings included.
#![doc(test(attr(deny(warnings))))]

#[doc(hidden)]
pub mod __private;
#[cfg(feature = "api")]
pub mod api;
mod cause;
#[cfg(feature = "cli")]
pub mod cli;
mod engine;
mod errors;
pub mod execution;
mod exit_status;
mod flow;
pub mod inputs;
mod key;
pub mod monitor;
pub mod operators;
#[cfg(feature = "otlp")]
mod otlp;
pub mod outputs;
pub mod recovery;
pub mod stateful;
mod step_id;
pub mod testing;
mod visualize;
pub mod windowing;

pub use errors::FlowError;
pub use execution::{
    ClusterOptions, ClusterSecret, RunConfig, cluster_main, run_main, run_main_with, run_workers,
};
pub use flow::{Dataflow, StepId, StepInfo, Stream, StreamId};
pub use key::{Key, KeyHasher, route_hash, worker_for_key};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Items of a stream: cloneable (a stream used twice gives each consumer a copy), sendable
/// to the worker threads, and owned.
pub trait Data: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> Data for T {}

/// Items that cross workers (exchanged by key, or redistributed) and so must be serde.
#[diagnostic::on_unimplemented(
    message = "`{Self}` crosses workers here, so it must implement `serde::Serialize` and `serde::Deserialize`",
    label = "not serde",
    note = "derive them: `#[derive(serde::Serialize, serde::Deserialize)]`"
)]
pub trait ExchangeData: Data + Serialize + DeserializeOwned {}
// Not recommended: a type without serde gets one error naming `ExchangeData` and how to
// derive both traits, not one per missing trait.
#[diagnostic::do_not_recommend]
impl<T: Data + Serialize + DeserializeOwned> ExchangeData for T {}

/// Everything a flow author needs: `use bwx::prelude::*;`.
pub mod prelude {
    pub use crate::inputs::{
        BatchStatus, DynamicSource, FixedPartitionedSource, StatefulSourcePartition, StatelessSourcePartition,
    };
    pub use crate::operators::{BranchOut, KeyedItem};
    pub use crate::outputs::{
        DynamicSink, FixedPartitionedSink, StatefulSinkPartition, StatelessSinkPartition,
    };
    pub use crate::stateful::{
        JoinEmitMode, JoinInsertMode, StateAction, StatefulBatchLogic, StatefulLogic, TtlCache,
    };
    pub use crate::windowing::{
        EventClock, SessionWindower, SlidingWindower, SystemClock, TumblingWindower, WindowMetadata,
        WindowOut,
    };
    pub use crate::{Data, Dataflow, ExchangeData, FlowError, Key, RunConfig, StepId, Stream};
}
