//! `CsvSource`: typed rows of a CSV file with a header.

use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use bwx_runtime::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use bwx_runtime::{Data, StepId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{DEFAULT_BATCH_SIZE, FileError};

/// Reads a CSV file with a header row as rows of type `T` (deserialized with serde by
/// column name), as a single partition named by the path, resumable by byte offset.
///
/// A record that is malformed, not UTF-8, or does not fit `T` stops the flow with an
/// error naming the file, the line and the byte offset of the record. Rows can also be
/// read loosely as `HashMap<String, String>`.
///
/// ```
/// use bwx::prelude::*;
/// use bwx::testing::TestingSink;
/// use bwx::connectors::files::CsvSource;
///
/// #[derive(Clone, Debug, PartialEq, serde::Deserialize)]
/// struct Trade { symbol: String, price: f64, qty: u32 }
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("trades.csv");
/// std::fs::write(&path, "symbol,qty,price\nAPL,10,1.5\nMSF,3,2.25\n").unwrap();
///
/// let flow = Dataflow::new("trades");
/// let out = TestingSink::new();
/// flow.input("inp", CsvSource::<Trade>::new(&path)).output("out", out.clone());
/// bwx::run_main(&flow).unwrap();
/// assert_eq!(out.take(), vec![
///     Trade { symbol: "APL".into(), price: 1.5, qty: 10 },
///     Trade { symbol: "MSF".into(), price: 2.25, qty: 3 },
/// ]);
/// ```
pub struct CsvSource<T> {
    path: PathBuf,
    batch_size: usize,
    delimiter: u8,
    _row: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for CsvSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvSource")
            .field("path", &self.path)
            .field("batch_size", &self.batch_size)
            .field("delimiter", &(self.delimiter as char))
            .finish()
    }
}

impl<T> CsvSource<T> {
    /// Reads the CSV file at `path`, comma-separated.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CsvSource {
            path: path.into(),
            batch_size: DEFAULT_BATCH_SIZE,
            delimiter: b',',
            _row: PhantomData,
        }
    }

    /// Emits up to `n` rows per batch (at least 1; default [`DEFAULT_BATCH_SIZE`]).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Uses another field delimiter, such as `b'\t'` or `b';'`.
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }
}

/// Where a [`CsvSource`] partition resumes: the start of the next record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvPosition {
    /// Byte offset from the start of the file.
    pub byte: u64,
    /// The line the record starts on (1-based), kept so errors after a resume name the
    /// right line.
    #[serde(default)]
    pub line: u64,
}

impl<T: DeserializeOwned + Data> FixedPartitionedSource for CsvSource<T> {
    type Item = T;
    type State = CsvPosition;
    type Partition = CsvPartition<T>;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        let path = FileError::canonical(&self.path)?;
        Ok(vec![path.to_string_lossy().into_owned()])
    }

    fn build_part(
        &self,
        _step_id: &StepId,
        for_part: &str,
        resume_state: Option<CsvPosition>,
    ) -> Result<CsvPartition<T>, ConnectorError> {
        Ok(CsvPartition::open(
            std::path::Path::new(for_part),
            resume_state,
            self.batch_size,
            self.delimiter,
        )?)
    }
}

/// The partition of a [`CsvSource`].
pub struct CsvPartition<T> {
    path: PathBuf,
    reader: csv::Reader<File>,
    headers: csv::StringRecord,
    /// Reused for every record.
    record: csv::StringRecord,
    batch_size: usize,
    _row: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> CsvPartition<T> {
    fn open(
        path: &Path,
        resume: Option<CsvPosition>,
        batch_size: usize,
        delimiter: u8,
    ) -> Result<Self, FileError> {
        let file = File::open(path).map_err(FileError::io("open", path))?;
        if let Some(pos) = resume {
            let len = file.metadata().map_err(FileError::io("stat", path))?.len();
            if len < pos.byte {
                return Err(FileError::PositionPastEnd {
                    path: path.to_path_buf(),
                    len,
                    position: pos.byte,
                });
            }
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .delimiter(delimiter)
            .from_reader(file);
        let start = csv::Position::new();
        let headers = reader.headers().map_err(|e| csv_error(path, &start, e))?.clone();
        if let Some(pos) = resume {
            let mut at = csv::Position::new();
            at.set_byte(pos.byte).set_line(pos.line.max(1));
            reader.seek(at.clone()).map_err(|e| csv_error(path, &at, e))?;
        }
        Ok(CsvPartition {
            path: path.to_path_buf(),
            reader,
            headers,
            record: csv::StringRecord::new(),
            batch_size: batch_size.max(1),
            _row: PhantomData,
        })
    }

    fn read_rows(&mut self, batch: &mut Vec<T>) -> Result<BatchStatus, FileError> {
        for _ in 0..self.batch_size {
            let start = self.reader.position().clone();
            match self.reader.read_record(&mut self.record) {
                Ok(true) => {}
                Ok(false) => return Ok(BatchStatus::Eof),
                Err(e) => return Err(csv_error(&self.path, &start, e)),
            }
            let row = self
                .record
                .deserialize(Some(&self.headers))
                .map_err(|e| csv_error(&self.path, &start, e))?;
            batch.push(row);
        }
        Ok(BatchStatus::Active)
    }
}

/// A CSV error located at the record that starts at `start`.
fn csv_error(path: &Path, start: &csv::Position, err: csv::Error) -> FileError {
    if err.is_io_error() {
        return FileError::Io {
            op: "read",
            path: path.to_path_buf(),
            source: std::io::Error::from(err),
        };
    }
    let message = match err.kind() {
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8 in field {}", err.field() + 1),
        csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
        _ => err.to_string(),
    };
    FileError::Csv {
        path: path.to_path_buf(),
        line: start.line(),
        offset: start.byte(),
        message,
    }
}

impl<T: DeserializeOwned + 'static> StatefulSourcePartition for CsvPartition<T> {
    type Item = T;
    type State = CsvPosition;

    fn next_batch(&mut self, batch: &mut Vec<T>) -> Result<BatchStatus, ConnectorError> {
        Ok(self.read_rows(batch)?)
    }

    fn snapshot(&self) -> CsvPosition {
        let pos = self.reader.position();
        CsvPosition {
            byte: pos.byte(),
            line: pos.line(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Row {
        name: String,
        n: i64,
    }

    fn read(
        path: &Path,
        resume: Option<CsvPosition>,
        batch: usize,
    ) -> Result<(Vec<Row>, CsvPosition), FileError> {
        let mut part = CsvPartition::<Row>::open(path, resume, batch, b',')?;
        let mut rows = Vec::new();
        while part.read_rows(&mut rows)? == BatchStatus::Active {}
        let end = part.snapshot();
        Ok((rows, end))
    }

    fn row(name: &str, n: i64) -> Row {
        Row { name: name.into(), n }
    }

    #[test]
    fn reads_typed_rows_by_header_and_resumes_after_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "n,name\n1,a\n2,\"b,c\"\n3,d").unwrap();
        let (rows, _) = read(&path, None, 2).unwrap();
        assert_eq!(rows, vec![row("a", 1), row("b,c", 2), row("d", 3)]);

        let mut part = CsvPartition::<Row>::open(&path, None, 1, b',').unwrap();
        let mut first = Vec::new();
        part.read_rows(&mut first).unwrap();
        let pos = part.snapshot();
        assert_eq!(pos, CsvPosition { byte: 11, line: 3 });
        let (rest, _) = read(&path, Some(pos), 10).unwrap();
        assert_eq!(rest, vec![row("b,c", 2), row("d", 3)]);
    }

    #[test]
    fn a_row_that_does_not_fit_names_file_line_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "name,n\na,1\nb,x\n").unwrap();
        let err = read(&path, None, 10).unwrap_err().to_string();
        let want = format!("{}: record at line 3 (byte offset 11): ", path.display());
        assert!(err.starts_with(&want), "{err}");
        assert!(err.contains("invalid digit"), "{err}");
    }

    #[test]
    fn bad_utf8_names_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, b"name,n\na,1\n\xff,2\n").unwrap();
        let err = read(&path, None, 10).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: record at line 3 (byte offset 11): invalid UTF-8 in field 1",
                path.display()
            )
        );
    }

    #[test]
    fn resuming_past_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "name,n\n").unwrap();
        let err = read(&path, Some(CsvPosition { byte: 100, line: 9 }), 1).unwrap_err();
        assert!(
            matches!(err, FileError::PositionPastEnd { position: 100, .. }),
            "{err}"
        );
    }
}
