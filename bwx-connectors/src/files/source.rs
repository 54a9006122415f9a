//! `FileSource`: the lines of one file.

use std::path::PathBuf;

use bwx_runtime::StepId;
use bwx_runtime::inputs::{ConnectorError, FixedPartitionedSource};

use super::{DEFAULT_BATCH_SIZE, LinePartition};

/// Reads the lines of one file, as a single partition named by the path, resumable by
/// byte offset.
///
/// Every worker lists the partition, so the file must be readable by whichever worker
/// becomes its primary; on a cluster without a shared file system, use [`super::DirSource`],
/// whose workers list only the files they can see.
///
/// ```
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::testing::TestingSink;
/// use bwx_connectors::files::FileSource;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("in.txt");
/// std::fs::write(&path, "first\nsecond\nno newline at the end").unwrap();
///
/// let flow = Dataflow::new("read");
/// let out = TestingSink::new();
/// flow.input("inp", FileSource::new(&path).batch_size(2)).output("out", out.clone());
/// bwx_runtime::run_main(&flow).unwrap();
/// assert_eq!(out.take(), vec!["first", "second", "no newline at the end"]);
/// ```
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    batch_size: usize,
}

impl FileSource {
    /// Reads the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSource {
            path: path.into(),
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }

    /// Emits up to `n` lines per batch (at least 1; default [`DEFAULT_BATCH_SIZE`]).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }
}

impl FixedPartitionedSource for FileSource {
    type Item = String;
    type State = u64;
    type Partition = LinePartition;

    fn list_parts(&self) -> Vec<String> {
        vec![self.path.to_string_lossy().into_owned()]
    }

    fn build_part(
        &self,
        _step_id: &StepId,
        _for_part: &str,
        resume_state: Option<u64>,
    ) -> Result<LinePartition, ConnectorError> {
        Ok(LinePartition::open(&self.path, resume_state, self.batch_size)?)
    }
}
