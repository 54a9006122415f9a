//! A bwx connector for directories of line files: [`LinesSource`] reads every `*.txt` file
//! of a directory, one partition per file, resumable from the byte offset it reached;
//! [`LinesSink`] writes keyed lines into `part-<i>.txt` files, exactly once across
//! failures (it truncates a file back to its stored offset when it resumes).
//!
//! This crate is the bwx connector template: copy it, rename it, and replace the files
//! with the system you connect to. Both connectors are written with `#[bwx::source]` and
//! `#[bwx::sink]`, and `tests/conformance.rs` runs them through the conformance kit
//! (`bwx::testing::conformance`). See the README for the rules a connector follows.
//!
//! ```
//! use bwx::prelude::*;
//! use bwx_connector_template::{LinesSink, LinesSource};
//!
//! let input = tempfile::tempdir().unwrap();
//! let output = tempfile::tempdir().unwrap();
//! std::fs::write(input.path().join("a.txt"), "apple\npear\n").unwrap();
//!
//! let flow = Dataflow::new("copy");
//! flow.input("inp", LinesSource::new(input.path()))
//!     .map("key", |line: String| (line.len() as u64, line))
//!     .output("out", LinesSink::new(output.path(), 2));
//! bwx::run_main(&flow).unwrap();
//! let mut lines: Vec<String> = (0..2)
//!     .flat_map(|i| std::fs::read_to_string(output.path().join(format!("part-{i}.txt"))).unwrap_or_default().lines().map(String::from).collect::<Vec<_>>())
//!     .collect();
//! lines.sort();
//! assert_eq!(lines, ["apple", "pear"]);
//! ```

mod error;
mod sink;
mod source;

pub use error::LinesError;
pub use sink::{LinesSink, LinesSinkPart, LinesSinkPartState};
pub use source::{LinesPart, LinesPartState, LinesSource};
