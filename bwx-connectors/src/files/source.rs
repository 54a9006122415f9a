//! `FileSource`: the lines of one file.

use std::path::{Path, PathBuf};

use bwx_runtime::inputs::BatchStatus;

use super::{DEFAULT_BATCH_SIZE, DEFAULT_MAX_LINE_LENGTH, FileError, LinePartition, LinePartitionState};

/// Reads the lines of one file, as a single partition named by the file's canonical path
/// (so `x` and `/abs/x` resume the same partition), resumable by byte offset. A missing
/// file stops the flow before it starts, naming the path.
///
/// Every worker lists the partition, so the file must be readable by whichever worker
/// becomes its primary; on a cluster without a shared file system, use [`super::DirSource`],
/// whose workers list only the files they can see.
///
/// ```
/// use bwx::prelude::*;
/// use bwx::testing::TestingSink;
/// use bwx::connectors::files::FileSource;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("in.txt");
/// std::fs::write(&path, "first\nsecond\nno newline at the end").unwrap();
///
/// let flow = Dataflow::new("read");
/// let out = TestingSink::new();
/// flow.input("inp", FileSource::new(&path).batch_size(2)).output("out", out.clone());
/// bwx::run_main(&flow).unwrap();
/// assert_eq!(out.take(), vec!["first", "second", "no newline at the end"]);
/// ```
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    batch_size: usize,
    max_line_length: usize,
}

impl FileSource {
    /// Reads the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSource {
            path: path.into(),
            batch_size: DEFAULT_BATCH_SIZE,
            max_line_length: DEFAULT_MAX_LINE_LENGTH,
        }
    }

    /// Emits up to `n` lines per batch (at least 1; default [`DEFAULT_BATCH_SIZE`]).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Accepts lines of up to `bytes` bytes before their `\n` (default
    /// [`DEFAULT_MAX_LINE_LENGTH`]); a longer line stops the flow with an error naming the
    /// file and the line's offset.
    pub fn max_line_length(mut self, bytes: usize) -> Self {
        self.max_line_length = bytes;
        self
    }
}

/// `FileSource`'s partition, by `#[source]`: one partition named by the path, opened at the
/// stored byte offset.
#[bwx_macros::source(crate = bwx_runtime)]
impl LinePartition {
    fn list_parts(source: &FileSource) -> Result<Vec<String>, FileError> {
        let path = FileError::canonical(&source.path)?;
        Ok(vec![path.to_string_lossy().into_owned()])
    }

    fn open(source: &FileSource, part: &str, resume: Option<LinePartitionState>) -> Result<Self, FileError> {
        LinePartition::open_file(
            Path::new(part),
            resume.map(|r| r.offset),
            source.batch_size,
            source.max_line_length,
        )
    }

    fn next_batch(&mut self, batch: &mut Vec<String>) -> Result<BatchStatus, FileError> {
        Ok(match self.read_lines(batch)? {
            true => BatchStatus::Active,
            false => BatchStatus::Eof,
        })
    }
}
