//! Guides: how to write, test, run and operate bwx flows, and how Bytewax maps to bwx.
//!
//! Each guide is a page of this module (docs only, no items), so the API docs and the
//! guides are one site, and `cargo test --doc` compiles and runs every example in them.
//! Their names differ from the crate's modules (`time_windows`, not `windowing`): rustc
//! prints an item's shortest unique path in errors, and a second `windowing` module would
//! lengthen every path it prints into `bwx::windowing`.
//!
//! | guide | what it covers |
//! |---|---|
//! | [`getting_started`] | depending on bwx, a first flow with [`dataflow!`](crate::dataflow), running it on 1 thread, `-w 2`, `--processes 2`, testing it |
//! | [`concepts`] | streams and keyed streams, step ids, epochs, workers and routing, state and its life cycle, what runs where |
//! | [`sources_and_sinks`] | the built-in connectors, writing a source and a sink (with the attributes and by hand), partitions, resume state, delivery guarantees |
//! | [`state_recovery`] | recovery partitions, snapshots, `-s`/`-b`, backups, rescaling, exactly-once sinks, `recovery inspect`, what is refused and why |
//! | [`time_windows`] | clocks, windowers, late items, ordering, window joins, replay versus live data |
//! | [`deployment`] | a cluster across hosts, Kubernetes, logs, graceful stop, sizing |
//! | [`coming_from_bytewax`] | every Bytewax 0.21 operator, connector, flag, variable and concept mapped to bwx, with side-by-side Python and Rust |

#[doc = include_str!("getting_started.md")]
pub mod getting_started {}

#[doc = include_str!("concepts.md")]
pub mod concepts {}

#[doc = include_str!("sources_and_sinks.md")]
pub mod sources_and_sinks {}

#[doc = include_str!("state_recovery.md")]
pub mod state_recovery {}

#[doc = include_str!("time_windows.md")]
pub mod time_windows {}

#[doc = include_str!("deployment.md")]
pub mod deployment {}

#[doc = include_str!("coming_from_bytewax.md")]
pub mod coming_from_bytewax {}
