//! The language of the bwx macros as an ordinary library: parsing, graph checks and code
//! generation for `dataflow!`, the connector attributes `#[source]` / `#[sink]`, and
//! `#[operator]` for composite operators.
//! `bwx-macros` is a thin proc-macro wrapper around this crate, which keeps everything here
//! unit-testable with `proc_macro2` token streams.

pub mod connector;
pub mod dataflow;
pub mod diag;
pub mod operator;
