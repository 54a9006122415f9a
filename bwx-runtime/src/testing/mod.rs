//! Helpers to test flows: a scripted source, a collecting sink, and (with the CLI) local
//! multi-process runs.

mod sink;
mod source;

pub use sink::TestingSink;
pub use source::{TestingEvent, TestingSource};
