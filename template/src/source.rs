//! [`LinesSource`]: a partitioned, resumable source written with `#[bwx::source]`.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;

use bwx::prelude::BatchStatus;

use crate::LinesError;

/// Reads the lines of every `*.txt` file in a directory: one partition per file, named by
/// the file name (the same on every worker), each resumable from the byte offset of the
/// next line. A missing directory, or one without a `*.txt` file, stops the flow when it
/// starts, naming the directory. It ends when every file is read; a resumed run reads what
/// was appended since.
#[derive(Clone, Debug)]
pub struct LinesSource {
    dir: PathBuf,
    batch_size: usize,
}

impl LinesSource {
    /// Reads the `*.txt` files of `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LinesSource {
            dir: dir.into(),
            batch_size: 1000,
        }
    }

    /// Emits up to `n` lines per batch (at least 1; default 1000).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }
}

/// One file of a [`LinesSource`]. `#[state]` fields are its recovery state
/// ([`LinesPartState`]): the offset of the next line.
#[bwx::source]
pub struct LinesPart {
    path: PathBuf,
    reader: BufReader<File>,
    #[state]
    offset: u64,
    batch_size: usize,
    line: Vec<u8>,
}

#[bwx::source]
impl LinesPart {
    /// The partitions: the `*.txt` files, sorted. An error, not an empty list, when the
    /// directory is missing: an empty run would hide a wrong path.
    fn list_parts(source: &LinesSource) -> Result<Vec<String>, LinesError> {
        let entries =
            std::fs::read_dir(&source.dir).map_err(LinesError::io("read directory", &source.dir))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(LinesError::io("read directory", &source.dir))?;
            if let Some(name) = entry.file_name().to_str()
                && name.ends_with(".txt")
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Opens a file at its stored offset (the third parameter is the resume state).
    fn open(source: &LinesSource, part: &str, resume: Option<LinesPartState>) -> Result<Self, LinesError> {
        let path = source.dir.join(part);
        let offset = resume.map_or(0, |r| r.offset);
        let mut file = File::open(&path).map_err(LinesError::io("open", &path))?;
        let len = file
            .metadata()
            .map_err(LinesError::io("read the length of", &path))?
            .len();
        if len < offset {
            return Err(LinesError::PastEnd {
                path,
                len,
                position: offset,
            });
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(LinesError::io("seek in", &path))?;
        Ok(LinesPart {
            reader: BufReader::new(file),
            path,
            offset,
            batch_size: source.batch_size,
            line: Vec::new(),
        })
    }

    fn next_batch(&mut self, batch: &mut Vec<String>) -> Result<BatchStatus, LinesError> {
        for _ in 0..self.batch_size {
            self.line.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.line)
                .map_err(LinesError::io("read", &self.path))?;
            if n == 0 {
                return Ok(BatchStatus::Eof);
            }
            let text = std::str::from_utf8(strip_newline(&self.line)).map_err(|_| LinesError::NotUtf8 {
                path: self.path.clone(),
                offset: self.offset,
            })?;
            batch.push(text.to_string());
            self.offset += n as u64;
        }
        Ok(BatchStatus::Active)
    }
}

fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bwx::inputs::{FixedPartitionedSource, StatefulSourcePartition};

    #[test]
    fn a_partition_resumes_at_its_offset_and_refuses_one_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "one\ntwo\nthree\n").unwrap();
        let source = LinesSource::new(dir.path()).batch_size(1);
        assert_eq!(source.list_parts().unwrap(), ["a.txt"]);
        let step = step();
        let mut part = source.build_part(&step, "a.txt", None).unwrap();
        let mut batch = Vec::new();
        part.next_batch(&mut batch).unwrap();
        let state = part.snapshot();
        assert_eq!((batch, state.offset), (vec!["one".to_string()], 4));
        let mut rest = Vec::new();
        let mut resumed = source.build_part(&step, "a.txt", Some(state)).unwrap();
        while resumed.next_batch(&mut rest).unwrap() == BatchStatus::Active {}
        assert_eq!(rest, ["two", "three"]);
        let err = source
            .build_part(&step, "a.txt", Some(LinesPartState { offset: 99 }))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("shorter than the stored position 99"), "{err}");
    }

    /// A step id, as a flow passes it to `build_part`.
    fn step() -> bwx::StepId {
        let flow = bwx::Dataflow::new("t");
        flow.input("inp", LinesSource::new("."));
        flow.steps()[0].id.clone()
    }
}
