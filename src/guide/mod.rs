//! Guides: how to write, test, run and operate bwx flows, and how Bytewax maps to bwx.
//!
//! Each guide is a page of this module (docs only, no items), so the API docs and the
//! guides are one site, and `cargo test --doc` compiles and runs every example in them.
//!
//! | guide | what it covers |
//! |---|---|
//! | [`getting_started`] | depending on bwx, a first flow with [`dataflow!`](crate::dataflow), running it on 1 thread, `-w 2`, `--processes 2`, testing it |
//! | [`concepts`] | streams and keyed streams, step ids, epochs, workers and routing, state and its life cycle, what runs where |
//! | [`connectors`] | the built-in connectors, writing a source and a sink (with the attributes and by hand), partitions, resume state, delivery guarantees |
//! | [`recovery`] | recovery partitions, snapshots, `-s`/`-b`, backups, rescaling, exactly-once sinks, `recovery inspect`, what is refused and why |
//! | [`windowing`] | clocks, windowers, late items, ordering, window joins, replay versus live data |
//! | [`deployment`] | a cluster across hosts, Kubernetes, logs, graceful stop, sizing |
//! | [`coming_from_bytewax`] | every Bytewax 0.21 operator, connector, flag, variable and concept mapped to bwx, with side-by-side Python and Rust |

#[doc = include_str!("getting_started.md")]
pub mod getting_started {}

#[doc = include_str!("concepts.md")]
pub mod concepts {}

#[doc = include_str!("connectors.md")]
pub mod connectors {}

#[doc = include_str!("recovery.md")]
pub mod recovery {}

#[doc = include_str!("windowing.md")]
pub mod windowing {}

#[doc = include_str!("deployment.md")]
pub mod deployment {}

#[doc = include_str!("coming_from_bytewax.md")]
pub mod coming_from_bytewax {}
