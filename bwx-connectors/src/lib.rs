//! Connectors of bwx: read and write files, directories, CSV, stdin and stdout, and (feature
//! `kafka`) Kafka.
//!
//! Every connector implements the source and sink traits of `bwx::inputs` and
//! `bwx::outputs`; none touches the engine. Use them through the facade as
//! `bwx::connectors::...`.
//!
//! | connector | kind | partitions | resume state |
//! | --- | --- | --- | --- |
//! | [`files::FileSource`] | fixed-partitioned source of lines | the file | byte offset |
//! | [`files::DirSource`] | fixed-partitioned source of lines | one per matching file | byte offset |
//! | [`files::CsvSource`] | fixed-partitioned source of typed rows | the file | byte offset and line |
//! | [`files::FileSink`] | fixed-partitioned sink of lines | the file | byte offset (truncated to on resume) |
//! | [`files::DirSink`] | fixed-partitioned sink of lines | one per file, by key | byte offset per file |
//! | [`stdio::StdInSource`] | dynamic source of lines | worker 0 reads | none |
//! | [`stdio::StdOutSink`] | dynamic sink | every worker prints | none |
//! | [`demo::RandomMetricSource`] | fixed-partitioned source of `(name, value)` on a timer | the metric | values emitted, next due time |
//!
//! ```
//! use bwx::prelude::*;
//! use bwx::connectors::files::{FileSink, FileSource};
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("in.txt"), "hello\nworld").unwrap();
//!
//! let flow = Dataflow::new("upper");
//! flow.input("inp", FileSource::new(dir.path().join("in.txt")))
//!     .map("upper", |line: String| ((), line.to_uppercase()))
//!     .output("out", FileSink::new(dir.path().join("out.txt")));
//! bwx::run_main(&flow).unwrap();
//! assert_eq!(std::fs::read_to_string(dir.path().join("out.txt")).unwrap(), "HELLO\nWORLD\n");
//! ```

// Every doc example compiles as a user writes it, warnings included.
#![doc(test(attr(deny(warnings))))]

pub mod demo;
pub mod files;
pub mod stdio;

#[cfg(feature = "kafka")]
pub mod kafka;
