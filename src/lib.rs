//! bwx: stream processing for Rust on timely-dataflow.
//!
//! Write a flow with the typed builder ([`Dataflow`], [`Stream`]), run it on one thread,
//! many threads or many processes, and test it with [`testing`]. Start with
//! `use bwx::prelude::*;`.
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

pub use bwx_runtime::*;

#[cfg(feature = "connectors")]
pub use bwx_connectors as connectors;
