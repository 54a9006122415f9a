//! Reading a file as lines from a byte offset: the partition of `FileSource` and `DirSource`.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::FileError;

/// One file read as lines; its state is the byte offset of the next unread byte.
///
/// Written with `#[source]`: the impl that makes it [`super::FileSource`]'s partition is
/// beside `FileSource`; [`super::DirSource`] opens it with a hand-written impl.
#[bwx_macros::source(crate = bwx_runtime)]
pub struct LinePartition {
    path: PathBuf,
    reader: BufReader<File>,
    /// Offset of the next unread byte.
    #[state]
    offset: u64,
    batch_size: usize,
    /// The longest line accepted, in bytes before its `\n`.
    max_line_length: usize,
    /// Reused for every line, so reading allocates only the emitted `String`s.
    line: Vec<u8>,
}

/// Lines longer than this (after reading a chunk) give their buffer to the emitted
/// `String` rather than copying it: one copy of a huge line in memory, not two.
const MOVE_LINES_OVER: usize = 1 << 20;

impl LinePartition {
    /// Opens `path` and positions it at `resume` (a byte offset; 0 when `None`). Lines of
    /// more than `max_line_length` bytes (before their `\n`) are an error.
    pub fn open_file(
        path: &Path,
        resume: Option<u64>,
        batch_size: usize,
        max_line_length: usize,
    ) -> Result<Self, FileError> {
        let mut file = File::open(path).map_err(FileError::io("open", path))?;
        let offset = resume.unwrap_or(0);
        if offset > 0 {
            let len = file.metadata().map_err(FileError::io("stat", path))?.len();
            if len < offset {
                return Err(FileError::PositionPastEnd {
                    path: path.to_path_buf(),
                    len,
                    position: offset,
                });
            }
            file.seek(SeekFrom::Start(offset))
                .map_err(FileError::io("seek in", path))?;
        }
        Ok(LinePartition {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(64 * 1024, file),
            offset,
            batch_size: batch_size.max(1),
            max_line_length,
            line: Vec::new(),
        })
    }

    /// Reads the next line, with its `\n`, into `self.line`; returns its length in bytes
    /// (0 at the end of the file). Stops with an error as soon as the line is longer than
    /// the maximum, so a huge line costs at most the maximum in memory.
    fn read_line(&mut self) -> Result<usize, FileError> {
        self.line.clear();
        loop {
            let chunk = self
                .reader
                .fill_buf()
                .map_err(FileError::io("read", &self.path))?;
            if chunk.is_empty() {
                return Ok(self.line.len());
            }
            let (taken, complete) = match memchr::memchr(b'\n', chunk) {
                Some(at) => (at + 1, true),
                None => (chunk.len(), false),
            };
            let content = self.line.len() + taken - usize::from(complete);
            if content > self.max_line_length {
                return Err(FileError::LineTooLong {
                    path: self.path.clone(),
                    offset: self.offset,
                    max: self.max_line_length,
                });
            }
            self.line.extend_from_slice(&chunk[..taken]);
            self.reader.consume(taken);
            if complete {
                return Ok(self.line.len());
            }
        }
    }

    /// Reads up to `batch_size` lines into `batch`; `Ok(false)` once the file is exhausted.
    pub(super) fn read_lines(&mut self, batch: &mut Vec<String>) -> Result<bool, FileError> {
        for _ in 0..self.batch_size {
            let n = self.read_line()?;
            if n == 0 {
                return Ok(false);
            }
            let start = self.offset;
            self.offset += n as u64;
            let text = std::str::from_utf8(strip_newline(&self.line)).map_err(|e| FileError::BadUtf8 {
                path: self.path.clone(),
                offset: start + e.valid_up_to() as u64,
            })?;
            if self.line.len() > MOVE_LINES_OVER {
                let len = text.len();
                let mut line = std::mem::take(&mut self.line);
                line.truncate(len);
                // Checked as UTF-8 just above.
                batch.push(String::from_utf8(line).unwrap_or_default());
            } else {
                batch.push(text.to_owned());
            }
        }
        // Report EOF with the last lines rather than on an extra, empty poll.
        let rest = self
            .reader
            .fill_buf()
            .map_err(FileError::io("read", &self.path))?;
        Ok(!rest.is_empty())
    }
}

/// The line without its `\n` or `\r\n` terminator.
pub(crate) fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bwx_runtime::inputs::{BatchStatus, ConnectorError, StatefulSourcePartition};

    fn read_all(
        path: &Path,
        resume: Option<u64>,
        batch_size: usize,
    ) -> Result<Vec<Vec<String>>, ConnectorError> {
        let mut part = LinePartition::open_file(path, resume, batch_size, usize::MAX)?;
        let mut batches = Vec::new();
        loop {
            let mut batch = Vec::new();
            let status = part.next_batch(&mut batch)?;
            batches.push(batch);
            if status == BatchStatus::Eof {
                return Ok(batches);
            }
        }
    }

    #[test]
    fn splits_lines_in_batches_and_keeps_a_last_line_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        std::fs::write(&path, "a\r\nb\n\nc\nlast").unwrap();
        let batches = read_all(&path, None, 2).unwrap();
        assert_eq!(batches, vec![vec!["a", "b"], vec!["", "c"], vec!["last"]]);
    }

    #[test]
    fn resumes_from_a_byte_offset_and_snapshots_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        let mut part = LinePartition::open_file(&path, None, 1, usize::MAX).unwrap();
        let mut batch = Vec::new();
        part.next_batch(&mut batch).unwrap();
        assert_eq!((batch, part.snapshot().offset), (vec!["one".to_string()], 4));
        assert_eq!(read_all(&path, Some(4), 10).unwrap(), vec![vec!["two", "three"]]);
        // Resuming at the end gives nothing more.
        assert_eq!(read_all(&path, Some(14), 10).unwrap(), vec![Vec::<String>::new()]);
    }

    #[test]
    fn bad_utf8_names_the_file_and_the_byte_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.txt");
        std::fs::write(&path, b"ok\nab\xffc\n").unwrap();
        let err = read_all(&path, None, 10).unwrap_err().to_string();
        assert_eq!(err, format!("{}: invalid UTF-8 at byte offset 5", path.display()));
    }

    #[test]
    fn a_line_over_the_maximum_names_the_file_and_offset_without_reading_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.txt");
        let mut text = b"short\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 10 << 20));
        text.extend(b"\nafter\n");
        std::fs::write(&path, &text).unwrap();
        let mut part = LinePartition::open_file(&path, None, 10, 1024).unwrap();
        let mut batch = Vec::new();
        let err = part.read_lines(&mut batch).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: the line at byte offset 6 is longer than the maximum of 1024 bytes; raise it with `max_line_length`",
                path.display()
            )
        );
        // The lines before it were read; the long one was not buffered.
        assert_eq!(batch, vec!["short"]);
        assert!(part.line.capacity() < 256 * 1024, "{}", part.line.capacity());
    }

    #[test]
    fn a_line_of_exactly_the_maximum_is_read_and_a_huge_allowed_one_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge.txt");
        let huge = "y".repeat(3 << 20);
        std::fs::write(&path, format!("abcd\r\n{huge}\nz")).unwrap();
        // `abcd\r` is 5 bytes before its `\n`.
        let mut part = LinePartition::open_file(&path, None, 10, 4).unwrap();
        let mut batch = Vec::new();
        assert!(part.read_lines(&mut batch).is_err());
        assert!(batch.is_empty());
        let mut part = LinePartition::open_file(&path, None, 10, 5).unwrap();
        let err = part.read_lines(&mut batch).unwrap_err().to_string();
        assert!(
            err.contains("the line at byte offset 6 is longer than the maximum of 5"),
            "{err}"
        );
        assert_eq!(batch, vec!["abcd"]);
        let mut part = LinePartition::open_file(&path, None, 10, 3 << 20).unwrap();
        let mut batch = Vec::new();
        assert!(!part.read_lines(&mut batch).unwrap());
        assert_eq!(batch, vec!["abcd".to_string(), huge, "z".to_string()]);
    }

    #[test]
    fn a_position_past_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.txt");
        std::fs::write(&path, "abc\n").unwrap();
        let err = LinePartition::open_file(&path, Some(10), 1, usize::MAX)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("is 4 bytes long, shorter than the stored position 10"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let err = LinePartition::open_file(Path::new("/nonexistent/x.txt"), None, 1, usize::MAX)
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("cannot open /nonexistent/x.txt:"), "{err}");
    }

    #[test]
    fn the_stored_state_is_the_bare_offset() {
        use bwx_runtime::recovery::codec::{decode, encode};
        // Before `#[source]`, the state was a plain `u64`: stored snapshots stay readable.
        let state = LinePartitionState { offset: 4 };
        assert_eq!(encode(&state).unwrap(), encode(&4u64).unwrap());
        let back: LinePartitionState = decode(&encode(&4u64).unwrap()).unwrap();
        assert_eq!(back.offset, 4);
    }
}
