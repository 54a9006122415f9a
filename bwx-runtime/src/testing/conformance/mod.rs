//! The conformance kit: the battery of checks every connector must pass.
//!
//! A connector author describes the system the connector talks to (how to create an empty
//! resource, how to put records into it or read them back) and the kit runs the connector
//! against it the way the engine will: on 1, 2 and 3 workers, with recovery in memory and
//! in SQLite, stopped, resumed from every snapshot, rescaled, killed with SIGKILL in a
//! subprocess, and pointed at resources that do not exist.
//!
//! - For a source, implement [`SourceSystem`] and run [`SourceKit`]; see [`SourceCheck`] for
//!   the checks.
//! - For a sink, implement [`SinkSystem`] and run [`SinkKit`]; see [`SinkCheck`]. The kit
//!   holds the sink to the guarantee it declares ([`FixedPartitionedSink::delivery`] or
//!   [`DynamicSink::delivery`]).
//!
//! The kit speaks in *records*: numbers it makes up, `part * 1_000_000 + seq` for the
//! `seq`-th record of partition `part`. The system turns a record into whatever the
//! connector reads or writes (a line, a row, a message) and back. Each check runs in a
//! fresh [`Case`]: a unique name (for a table, a topic, a stream) and an empty directory.
//!
//! The kill check re-executes the test binary, as [`super::LocalCluster`] does: give the kit
//! the test's name (its path in the test binary, for `cargo test -- --exact`) and call
//! [`SourceKit::run`] first thing in the test, since in the child process it runs the
//! child's part and exits.
//!
//! A test against a real server takes the server's address from the environment with
//! [`server_address`]: it skips without one, except under CI ([`REQUIRE_SERVERS`]).
//!
//! ```no_run
//! # #![allow(unused)]
//! use std::io::Write;
//! use std::path::PathBuf;
//! use bwx::inputs::{BatchStatus, ConnectorError};
//! use bwx::operators::FixedKind;
//! use bwx::testing::conformance::{Case, Ending, SourceKit, SourceSystem};
//!
//! /// Reads the lines of a file, resumable by line number.
//! pub struct Lines {
//!     path: PathBuf,
//! }
//!
//! #[bwx::source]
//! pub struct LinesPart {
//!     lines: Vec<String>,
//!     #[state]
//!     next: usize,
//! }
//!
//! #[bwx::source]
//! impl LinesPart {
//!     fn list_parts(source: &Lines) -> Result<Vec<String>, ConnectorError> {
//!         // A missing file is an error, not an empty input.
//!         std::fs::metadata(&source.path)?;
//!         Ok(vec!["lines".into()])
//!     }
//!     fn open(source: &Lines, _part: &str) -> Result<Self, ConnectorError> {
//!         let text = std::fs::read_to_string(&source.path)?;
//!         Ok(LinesPart { lines: text.lines().map(String::from).collect(), next: 0 })
//!     }
//!     fn next_batch(&mut self, batch: &mut Vec<String>) -> Result<BatchStatus, ConnectorError> {
//!         let end = (self.next + 2).min(self.lines.len());
//!         batch.extend_from_slice(&self.lines[self.next..end]);
//!         self.next = end;
//!         Ok(if end == self.lines.len() { BatchStatus::Eof } else { BatchStatus::Active })
//!     }
//! }
//!
//! /// The system: one file per case.
//! struct Files;
//!
//! impl SourceSystem for Files {
//!     type Kind = FixedKind;
//!     type Source = Lines;
//!
//!     fn describe(&self) -> String {
//!         "Lines".into()
//!     }
//!     fn ending(&self) -> Ending {
//!         Ending::AtEof
//!     }
//!     fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
//!         Ok(std::fs::write(case.dir().join("in.txt"), "")?)
//!     }
//!     fn append(&self, case: &Case, _part: usize, records: &[u64]) -> Result<(), ConnectorError> {
//!         let mut file = std::fs::OpenOptions::new().append(true).open(case.dir().join("in.txt"))?;
//!         for r in records {
//!             writeln!(file, "{r}")?;
//!         }
//!         Ok(())
//!     }
//!     fn source(&self, case: &Case) -> Result<Lines, ConnectorError> {
//!         Ok(Lines { path: case.dir().join("in.txt") })
//!     }
//!     fn record(&self, line: &String) -> Option<u64> {
//!         line.parse().ok()
//!     }
//!     fn missing(&self, case: &Case) -> Option<Result<Lines, ConnectorError>> {
//!         Some(Ok(Lines { path: case.dir().join("no-such-file.txt") }))
//!     }
//! }
//!
//! #[test]
//! fn lines_conform() {
//!     SourceKit::new(Files, "lines_conform").run().assert_passed();
//! }
//! ```
//!
//! [`FixedPartitionedSink::delivery`]: crate::outputs::FixedPartitionedSink::delivery
//! [`DynamicSink::delivery`]: crate::outputs::DynamicSink::delivery

mod battery;
mod case;
mod child;
mod flows;
mod records;
mod report;
mod run;
mod server;
mod sink;
mod source;

pub use battery::Battery;
pub use case::Case;
pub use records::{PART_STRIDE, record, record_part, record_seq};
pub use report::{Report, SinkCheck, SourceCheck, Verdict};
pub use server::{REQUIRE_SERVERS, server_address, servers_required};
pub use sink::{SinkKit, SinkSystem, SinkUnderTest};
pub use source::{Ending, SourceKit, SourceSystem, SourceUnderTest};
