//! Files: read lines from a file or a directory of files, typed rows from CSV, and write
//! lines to a file or to a directory of files routed by key.
//!
//! Sources are partitioned by file and resumable: a partition's state is the byte offset of
//! the next unread byte, so a resumed flow (with recovery) continues exactly where the last
//! completed epoch left off. Sinks store the byte offset they have written up to and, on
//! resume, truncate the file back to it: together with a resumable source this makes file
//! output exactly-once.
//!
//! Lines are split on `\n`; a trailing `\r` is removed too, and a last line without a
//! newline is still a line. A line that is not UTF-8 stops the flow with an error naming
//! the file and the byte offset of the first bad byte. A line longer than the source's
//! `max_line_length` ([`DEFAULT_MAX_LINE_LENGTH`] unless told) stops it with an error
//! naming the file and the line's offset; at most that much of it is read into memory.

mod csv_source;
mod dir_source;
mod error;
mod lines;
mod sink;
mod source;

pub use csv_source::{CsvPartition, CsvPosition, CsvSource};
pub use dir_source::DirSource;
pub use error::FileError;
pub(crate) use lines::strip_newline;
pub use lines::{LinePartition, LinePartitionState};
pub use sink::{DirSink, FileAssigner, FileSink, FileSinkPartition, FileSinkPartitionState, HashAssign};
pub use source::FileSource;

/// Lines a source emits per batch unless told otherwise (as in Bytewax).
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// The longest line (in bytes before its `\n`) the line sources accept unless told
/// otherwise: a longer one stops the flow with an error naming the file and the line's
/// offset, instead of taking all the memory there is.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 64 << 20;
