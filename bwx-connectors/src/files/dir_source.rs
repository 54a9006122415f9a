//! `DirSource`: the lines of every file in a directory that matches a glob pattern.

use std::path::{Path, PathBuf};

use bwx_runtime::StepId;
use bwx_runtime::inputs::{ConnectorError, FixedPartitionedSource};
use glob::{MatchOptions, Pattern};

use super::{DEFAULT_BATCH_SIZE, DEFAULT_MAX_LINE_LENGTH, FileError, LinePartition, LinePartitionState};

/// Reads the lines of the files under a directory whose relative paths match a glob
/// pattern, one partition per file, each resumable by byte offset.
///
/// Partitions are named by the file's path relative to the directory, with `/` between
/// components, so the names are the same on every machine. `*` and `?` do not cross a
/// `/`; `**` does (`"**/*.log"` reads every `.log` file at any depth). Each worker lists
/// the files it can see when the flow starts; each file is read by one of them. Files
/// whose names are not UTF-8 cannot be named as partitions and fail when opened.
///
/// ```
/// use bwx::prelude::*;
/// use bwx::testing::TestingSink;
/// use bwx::connectors::files::DirSource;
///
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("a.log"), "a1\na2\n").unwrap();
/// std::fs::write(dir.path().join("b.log"), "b1\n").unwrap();
/// std::fs::write(dir.path().join("notes.txt"), "skipped\n").unwrap();
///
/// let flow = Dataflow::new("logs");
/// let out = TestingSink::new();
/// flow.input("inp", DirSource::new(dir.path(), "*.log").unwrap()).output("out", out.clone());
/// bwx::run_workers(&flow, 2, RunConfig::default()).unwrap();
/// let mut lines = out.take();
/// lines.sort();
/// assert_eq!(lines, vec!["a1", "a2", "b1"]);
/// ```
#[derive(Debug, Clone)]
pub struct DirSource {
    dir: PathBuf,
    pattern: Pattern,
    recursive: bool,
    batch_size: usize,
    max_line_length: usize,
    allow_empty: bool,
}

const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl DirSource {
    /// Reads the files under `dir` matching `pattern` (for example `"*"` or `"**/*.csv"`).
    ///
    /// Fails if the pattern is malformed or `dir` cannot be read here.
    pub fn new(dir: impl Into<PathBuf>, pattern: &str) -> Result<Self, FileError> {
        let dir = dir.into();
        std::fs::read_dir(&dir).map_err(FileError::io("read directory", &dir))?;
        let compiled = Pattern::new(pattern).map_err(|e| FileError::BadPattern {
            pattern: pattern.to_string(),
            message: e.to_string(),
        })?;
        Ok(DirSource {
            dir,
            pattern: compiled,
            // Only a pattern that can match below the top level needs a recursive walk.
            recursive: pattern.contains('/') || pattern.contains("**"),
            batch_size: DEFAULT_BATCH_SIZE,
            max_line_length: DEFAULT_MAX_LINE_LENGTH,
            allow_empty: false,
        })
    }

    /// Lets the flow run when no worker finds a matching file. By default that stops the
    /// flow before it starts, naming the step: usually the pattern or directory is wrong.
    pub fn allow_empty(mut self, allow: bool) -> Self {
        self.allow_empty = allow;
        self
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

    /// The relative paths of the matching files, sorted.
    fn matching_files(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![PathBuf::new()];
        while let Some(rel) = pending.pop() {
            // A directory this worker cannot read has no files this worker can read.
            let Ok(entries) = std::fs::read_dir(self.dir.join(&rel)) else {
                continue;
            };
            for entry in entries.flatten() {
                let rel_path = rel.join(entry.file_name());
                let Ok(kind) = entry.file_type() else { continue };
                if kind.is_dir() {
                    if self.recursive {
                        pending.push(rel_path);
                    }
                    continue;
                }
                // Follows symlinks: a link to a file is a file.
                if !std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
                    continue;
                }
                let name = slash_path(&rel_path);
                if self.pattern.matches_with(&name, MATCH) {
                    found.push(name);
                }
            }
        }
        found.sort();
        found
    }
}

/// `rel` with `/` between its components, whatever the platform's separator.
fn slash_path(rel: &Path) -> String {
    let parts: Vec<_> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    parts.join("/")
}

impl FixedPartitionedSource for DirSource {
    type Item = String;
    type State = LinePartitionState;
    type Partition = LinePartition;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok(self.matching_files())
    }

    fn may_be_empty(&self) -> bool {
        self.allow_empty
    }

    fn build_part(
        &self,
        _step_id: &StepId,
        for_part: &str,
        resume_state: Option<LinePartitionState>,
    ) -> Result<LinePartition, ConnectorError> {
        Ok(LinePartition::open_file(
            &self.dir.join(for_part),
            resume_state.map(|r| r.offset),
            self.batch_size,
            self.max_line_length,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_stays_at_the_top_and_double_star_descends() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
        for f in ["a.txt", "b.csv", "sub/c.txt", "sub/deeper/d.txt"] {
            std::fs::write(dir.path().join(f), "x\n").unwrap();
        }
        let top = DirSource::new(dir.path(), "*.txt").unwrap();
        assert_eq!(top.list_parts().unwrap(), vec!["a.txt"]);
        let all = DirSource::new(dir.path(), "**/*.txt").unwrap();
        assert_eq!(
            all.list_parts().unwrap(),
            vec!["a.txt", "sub/c.txt", "sub/deeper/d.txt"]
        );
        let every = DirSource::new(dir.path(), "*").unwrap();
        assert_eq!(
            every.list_parts().unwrap(),
            vec!["a.txt", "b.csv"],
            "directories are not partitions"
        );
    }

    #[test]
    fn a_bad_pattern_is_an_error() {
        let err = DirSource::new("/tmp", "[").unwrap_err().to_string();
        assert!(err.starts_with("bad glob pattern \"[\""), "{err}");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let err = DirSource::new("/nonexistent-bwx-dir", "*")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot read directory /nonexistent-bwx-dir:"),
            "{err}"
        );
    }
}
