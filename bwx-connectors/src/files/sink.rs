//! `FileSink` and `DirSink`: lines written to files, exactly-once on resume.
//!
//! Durability: each batch is written to the file with one `write` call (no user-space
//! buffering, so a batch is in the operating system when `write_batch` returns). The file is
//! fsynced in `pre_commit`, when an epoch that wrote to it closes and before its position is
//! stored (a failed fsync stops the flow at once), and when the sink closes at EOF; a new
//! file's directory is fsynced too, so that the file itself survives a power loss. On
//! resume the file is truncated to the stored position, dropping lines written after the
//! last durable epoch, which the resumed flow writes again: the output is exactly-once.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use bwx_runtime::inputs::ConnectorError;
use bwx_runtime::outputs::{Delivery, FixedPartitionedSink};
use bwx_runtime::{ExchangeData, Key, StepId};

use super::FileError;

/// Writes the values of a keyed stream as lines of one file, as a single partition named
/// by the path. The keys only route: every item goes to the one worker that owns the file,
/// so key however suits the flow (`((), line)` is fine).
///
/// Values are written with their `Display` form and a `\n`. The state is the byte offset
/// written so far; on resume the file is truncated back to it, so together with a
/// resumable source each line is in the file exactly once. Without a resume state the file
/// is truncated to empty.
///
/// Each batch is written with one `write` call (no user-space buffer, so a written batch
/// survives a crash of the process). The file is fsynced when an epoch closes, just before
/// its position is handed to recovery (only when recovery is on), and at EOF; so a stored
/// position always covers durable bytes.
///
/// ```
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::testing::TestingSource;
/// use bwx_connectors::files::FileSink;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.txt");
///
/// let flow = Dataflow::new("write");
/// flow.input("inp", TestingSource::new(1..=3))
///     .key_on("key", |n: &i32| n.to_string())
///     .map_value("square", |n| n * n)
///     .output("out", FileSink::new(&path));
/// bwx_runtime::run_workers(&flow, 2, RunConfig::default()).unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n4\n9\n");
/// ```
pub struct FileSink<K = (), V = String> {
    path: PathBuf,
    _kv: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for FileSink<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink").field("path", &self.path).finish()
    }
}

impl<K, V> FileSink<K, V> {
    /// Writes to the file at `path`, creating it if needed (its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSink {
            path: path.into(),
            _kv: PhantomData,
        }
    }
}

/// Chooses the file of a [`DirSink`] for a key: the index it returns is taken modulo the
/// number of files. Any `Fn(&K) -> u64` is one.
pub trait FileAssigner<K>: Send + Sync + 'static {
    /// The file index for `key` (before the modulo).
    fn assign(&self, key: &K) -> u64;
}

/// The default [`FileAssigner`]: the stable routing hash of the key ([`bwx_runtime::route_hash`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct HashAssign;

impl<K: Key> FileAssigner<K> for HashAssign {
    fn assign(&self, key: &K) -> u64 {
        bwx_runtime::route_hash(key)
    }
}

impl<K, F: Fn(&K) -> u64 + Send + Sync + 'static> FileAssigner<K> for F {
    fn assign(&self, key: &K) -> u64 {
        self(key)
    }
}

/// Writes the values of a keyed stream as lines of `count` files in a directory, each file
/// a partition, each item routed by its key.
///
/// Files are named `part-<i><suffix>` with `i` zero-padded to the same width, so name order
/// is index order and an assigner that returns `i` writes to `part-<i>`. Keys are assigned
/// with [`HashAssign`] unless [`assign_file`](Self::assign_file) says otherwise. Each file
/// behaves like a [`FileSink`]: exactly-once on resume by truncation. The directory is
/// created if needed.
///
/// ```
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::testing::TestingSource;
/// use bwx_connectors::files::DirSink;
///
/// let dir = tempfile::tempdir().unwrap();
/// let flow = Dataflow::new("split");
/// flow.input("inp", TestingSource::new(0..6u64))
///     .key_on("parity", |n| n % 2)
///     .output("out", DirSink::new(dir.path(), 2).suffix(".txt").assign_file(|k: &u64| *k));
/// bwx_runtime::run_workers(&flow, 2, RunConfig::default()).unwrap();
/// assert_eq!(std::fs::read_to_string(dir.path().join("part-0.txt")).unwrap(), "0\n2\n4\n");
/// assert_eq!(std::fs::read_to_string(dir.path().join("part-1.txt")).unwrap(), "1\n3\n5\n");
/// ```
pub struct DirSink<K, V = String, A = HashAssign> {
    dir: PathBuf,
    count: usize,
    suffix: String,
    assign: A,
    _kv: PhantomData<fn() -> (K, V)>,
}

impl<K, V, A> std::fmt::Debug for DirSink<K, V, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirSink")
            .field("dir", &self.dir)
            .field("count", &self.count)
            .field("suffix", &self.suffix)
            .finish()
    }
}

impl<K, V> DirSink<K, V, HashAssign> {
    /// Writes `count` files (at least 1) into `dir`.
    pub fn new(dir: impl Into<PathBuf>, count: usize) -> Self {
        DirSink {
            dir: dir.into(),
            count: count.max(1),
            suffix: String::new(),
            assign: HashAssign,
            _kv: PhantomData,
        }
    }
}

impl<K, V, A> DirSink<K, V, A> {
    /// Appends `suffix` (such as `".txt"`) to every file name.
    pub fn suffix(mut self, suffix: impl Into<String>) -> Self {
        self.suffix = suffix.into();
        self
    }

    /// Routes keys with `assign` instead of the stable hash.
    pub fn assign_file<B: FileAssigner<K>>(self, assign: B) -> DirSink<K, V, B> {
        DirSink {
            dir: self.dir,
            count: self.count,
            suffix: self.suffix,
            assign,
            _kv: PhantomData,
        }
    }

    /// The name of file `index`.
    fn file_name(&self, index: usize) -> String {
        let width = (self.count - 1).to_string().len();
        format!("part-{index:0width$}{}", self.suffix)
    }
}

impl<K: Key, V: ExchangeData + Display, A: FileAssigner<K>> FixedPartitionedSink for DirSink<K, V, A> {
    type Key = K;
    type Value = V;
    type State = FileSinkPartitionState;
    type Partition = FileSinkPartition<V>;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok((0..self.count).map(|i| self.file_name(i)).collect())
    }

    fn part_fn(&self, key: &K) -> u64 {
        self.assign.assign(key)
    }

    /// Each file truncates to its stored position on resume.
    fn delivery(&self) -> Delivery {
        Delivery::ExactlyOnce
    }

    fn build_part(
        &self,
        _step_id: &StepId,
        for_part: &str,
        resume_state: Option<FileSinkPartitionState>,
    ) -> Result<FileSinkPartition<V>, ConnectorError> {
        std::fs::create_dir_all(&self.dir).map_err(FileError::io("create directory", &self.dir))?;
        Ok(FileSinkPartition::open_file(
            &self.dir.join(for_part),
            resume_state.map(|r| r.offset),
        )?)
    }
}

/// One file written by a [`FileSink`] or [`DirSink`]; its state is the byte offset written.
///
/// Written with `#[sink]`, which makes it [`FileSink`]'s partition; [`DirSink`] opens it
/// with a hand-written impl.
#[bwx_macros::sink(crate = bwx_runtime)]
pub struct FileSinkPartition<V> {
    path: PathBuf,
    file: File,
    #[state]
    offset: u64,
    /// Reused for every batch.
    buf: Vec<u8>,
    /// The directory to fsync once, when the file was created by this partition.
    new_in: Option<PathBuf>,
    _v: PhantomData<fn(V)>,
}

impl<V> FileSinkPartition<V> {
    /// Opens (creating) the file at `path` and truncates it to `resume` (0 when `None`).
    ///
    /// A resume position past the end of the file is an error: lines the stored position
    /// counts were lost, so truncating would not restore them.
    pub fn open_file(path: &Path, resume: Option<u64>) -> Result<Self, FileError> {
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(FileError::io("open", path))?;
        let offset = resume.unwrap_or(0);
        let len = file.metadata().map_err(FileError::io("stat", path))?.len();
        if len < offset {
            return Err(FileError::PositionPastEnd {
                path: path.to_path_buf(),
                len,
                position: offset,
            });
        }
        file.set_len(offset).map_err(FileError::io("truncate", path))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(FileError::io("seek in", path))?;
        Ok(FileSinkPartition {
            path: path.to_path_buf(),
            file,
            offset,
            buf: Vec::new(),
            new_in: created.then(|| match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            }),
            _v: PhantomData,
        })
    }

    /// Makes the bytes written so far durable (and the file's directory entry, the first
    /// time after the file was created).
    fn sync(&mut self) -> Result<(), FileError> {
        self.file
            .sync_data()
            .map_err(FileError::io("fsync", &self.path))?;
        if let Some(dir) = self.new_in.take() {
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(FileError::io("fsync the directory of", &self.path))?;
        }
        Ok(())
    }
}

/// `FileSink`'s partition, by `#[sink]`: one partition named by the path, truncated to
/// the stored byte offset when opened. The key type is the sink's, `K`, a parameter of
/// `open` (the partition does not have it).
#[bwx_macros::sink(crate = bwx_runtime, key = K)]
impl<V: ExchangeData + Display> FileSinkPartition<V> {
    fn list_parts<K>(sink: &FileSink<K, V>) -> Result<Vec<String>, FileError> {
        let path = FileError::canonical_new(&sink.path)?;
        Ok(vec![path.to_string_lossy().into_owned()])
    }

    /// Truncating to the stored position on resume makes the file exactly-once.
    fn delivery<K>(_sink: &FileSink<K, V>) -> Delivery {
        Delivery::ExactlyOnce
    }

    fn open<K: Key>(
        _sink: &FileSink<K, V>,
        part: &str,
        resume: Option<FileSinkPartitionState>,
    ) -> Result<Self, FileError> {
        FileSinkPartition::open_file(Path::new(part), resume.map(|r| r.offset))
    }

    fn write_batch(&mut self, values: &mut Vec<V>) -> Result<(), FileError> {
        self.buf.clear();
        for value in values.drain(..) {
            // Writing into a Vec fails only when `Display` does.
            write!(self.buf, "{value}").map_err(|_| FileError::Format {
                path: self.path.clone(),
            })?;
            self.buf.push(b'\n');
        }
        self.file
            .write_all(&self.buf)
            .map_err(FileError::io("write", &self.path))?;
        self.offset += self.buf.len() as u64;
        Ok(())
    }

    fn pre_commit(&mut self, _epoch: u64) -> Result<(), FileError> {
        // Recovery stores the position next: the bytes before it must be durable first.
        self.sync()
    }

    fn snapshot(&self) -> FileSinkPartitionState {
        FileSinkPartitionState { offset: self.offset }
    }

    fn close(&mut self) -> Result<(), FileError> {
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(part: &mut FileSinkPartition<String>, lines: &[&str]) {
        let mut batch: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        part.write_batch(&mut batch).unwrap();
        assert!(batch.is_empty());
    }

    #[test]
    fn writes_lines_and_truncates_to_the_resume_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let mut part = FileSinkPartition::open_file(&path, None).unwrap();
        write(&mut part, &["a", "bb"]);
        part.pre_commit(0).unwrap();
        let position = part.snapshot().offset;
        assert_eq!(position, 5);
        // Written after the snapshot, then the process died.
        write(&mut part, &["lost"]);
        drop(part);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nbb\nlost\n");

        let mut resumed = FileSinkPartition::open_file(&path, Some(position)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nbb\n");
        write(&mut resumed, &["c"]);
        resumed.close().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nbb\nc\n");
    }

    #[test]
    fn a_fresh_start_empties_the_file_and_a_lost_tail_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, "old\n").unwrap();
        let mut part = FileSinkPartition::<String>::open_file(&path, None).unwrap();
        part.close().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let err = FileSinkPartition::<String>::open_file(&path, Some(3))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("is 0 bytes long, shorter than the stored position 3"),
            "{err}"
        );
    }

    #[test]
    fn dir_sink_names_sort_in_index_order() {
        let sink: DirSink<u64> = DirSink::new("/tmp/x", 12).suffix(".log");
        let names = sink.list_parts().unwrap();
        assert_eq!(names[0], "part-00.log");
        assert_eq!(names[11], "part-11.log");
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);
    }

    #[test]
    fn the_stored_state_is_the_bare_offset() {
        use bwx_runtime::recovery::codec::{decode, encode};
        // Before `#[sink]`, the state was a plain `u64`: stored snapshots stay readable.
        let state = FileSinkPartitionState { offset: 5 };
        assert_eq!(encode(&state).unwrap(), encode(&5u64).unwrap());
        let back: FileSinkPartitionState = decode(&encode(&5u64).unwrap()).unwrap();
        assert_eq!(back.offset, 5);
    }
}
