//! Standard input and output: [`StdInSource`] reads lines, [`StdOutSink`] prints items.

use std::fmt::Display;
use std::io::{BufRead, BufReader, Read, Write};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, SystemTime};

use bwx_runtime::inputs::{BatchStatus, ConnectorError, DynamicSource, StatelessSourcePartition};
use bwx_runtime::outputs::{DynamicSink, StatelessSinkPartition};
use bwx_runtime::{Data, StepId};

use crate::files::{DEFAULT_BATCH_SIZE, FileError};

/// How long an idle stdin partition waits before it looks for new lines again.
const IDLE_POLL: Duration = Duration::from_millis(10);

/// Lines read ahead of the flow before the reading thread waits (backpressure).
const READ_AHEAD: usize = 4096;

/// Prints every item on its own line with `Display`, from every worker, flushing stdout
/// after each batch. A batch is written under one lock of stdout, so lines of different
/// workers never mix within a line (their order across workers is not defined).
///
/// ```
/// use bwx::prelude::*;
/// use bwx::testing::TestingSource;
/// use bwx::connectors::stdio::StdOutSink;
///
/// let flow = Dataflow::new("print");
/// flow.input("inp", TestingSource::new(["hello", "world"]))
///     .output("out", StdOutSink::new());
/// bwx::run_main(&flow).unwrap();
/// ```
pub struct StdOutSink<T> {
    _item: PhantomData<fn(T)>,
}

impl<T> std::fmt::Debug for StdOutSink<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StdOutSink")
    }
}

impl<T> Default for StdOutSink<T> {
    fn default() -> Self {
        StdOutSink { _item: PhantomData }
    }
}

impl<T> StdOutSink<T> {
    /// A sink printing to this process's standard output.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<T: Data + Display> DynamicSink for StdOutSink<T> {
    type Item = T;
    type Partition = StdOutPartition<T>;

    fn build(
        &self,
        _step: &StepId,
        _worker: usize,
        _workers: usize,
    ) -> Result<StdOutPartition<T>, ConnectorError> {
        Ok(StdOutPartition {
            buf: Vec::new(),
            _item: PhantomData,
        })
    }
}

/// A worker's partition of a [`StdOutSink`].
pub struct StdOutPartition<T> {
    /// Reused for every batch.
    buf: Vec<u8>,
    _item: PhantomData<fn(T)>,
}

impl<T: Display + 'static> StatelessSinkPartition for StdOutPartition<T> {
    type Item = T;

    fn write_batch(&mut self, items: &mut Vec<T>) -> Result<(), ConnectorError> {
        self.buf.clear();
        for item in items.drain(..) {
            writeln!(self.buf, "{item}").map_err(|_| "an item could not be formatted for stdout")?;
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&self.buf)
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
        Ok(())
    }
}

enum Input {
    /// The process's standard input, opened by each run.
    Stdin,
    /// A reader given by the user; a flow can run with it once.
    Reader(Mutex<Option<Box<dyn Read + Send>>>),
}

/// Reads lines from standard input (or another reader) on worker 0, as a dynamic source.
///
/// Standard input is one stream per process and cannot be re-read, so there is nothing to
/// partition or resume: only worker 0 (the first worker of the first process) reads, every
/// other worker ends at once, and after a restart reading continues with whatever stdin
/// gives then. Spread the lines over the workers with `redistribute` if the work after
/// reading is heavy.
///
/// A background thread does the blocking reads, so the worker never waits on stdin; while
/// no line is available the partition looks again every 10 ms. The source ends when stdin
/// reaches end of file. A line that is not UTF-8 stops the flow with an error naming
/// `<stdin>` and the byte offset. A last line without a newline is still a line.
///
/// ```
/// use bwx::prelude::*;
/// use bwx::testing::TestingSink;
/// use bwx::connectors::stdio::StdInSource;
///
/// // `StdInSource::new()` reads the process's stdin; any reader works the same way.
/// let flow = Dataflow::new("echo");
/// let out = TestingSink::new();
/// flow.input("inp", StdInSource::from_reader(&b"one\ntwo\n"[..])).output("out", out.clone());
/// bwx::run_workers(&flow, 2, RunConfig::default()).unwrap();
/// assert_eq!(out.take(), vec!["one", "two"]);
/// ```
pub struct StdInSource {
    input: Input,
    batch_size: usize,
}

impl std::fmt::Debug for StdInSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdInSource")
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

impl Default for StdInSource {
    fn default() -> Self {
        Self::new()
    }
}

impl StdInSource {
    /// Reads this process's standard input.
    pub fn new() -> Self {
        StdInSource {
            input: Input::Stdin,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }

    /// Reads `reader` instead (a pipe, a socket, a test's bytes). The reader is used by the
    /// first run of the flow; a second run fails with an error saying so.
    pub fn from_reader(reader: impl Read + Send + 'static) -> Self {
        StdInSource {
            input: Input::Reader(Mutex::new(Some(Box::new(reader)))),
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }

    /// Emits up to `n` lines per batch (at least 1; default [`DEFAULT_BATCH_SIZE`]).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }
}

type Line = std::io::Result<Vec<u8>>;

impl DynamicSource for StdInSource {
    type Item = String;
    type Partition = StdInPartition;

    fn build(
        &self,
        _step: &StepId,
        worker_index: usize,
        _workers: usize,
    ) -> Result<StdInPartition, ConnectorError> {
        let mut part = StdInPartition {
            lines: None,
            offset: 0,
            batch_size: self.batch_size,
            idle: false,
        };
        if worker_index != 0 {
            return Ok(part);
        }
        let reader: Box<dyn Read + Send> = match &self.input {
            Input::Stdin => Box::new(std::io::stdin()),
            Input::Reader(slot) => slot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .ok_or("the reader of this StdInSource was used by an earlier run; build a new source")?,
        };
        let (tx, rx) = sync_channel(READ_AHEAD);
        std::thread::Builder::new()
            .name("bwx-stdin".into())
            .spawn(move || read_lines(reader, tx))
            .map_err(|e| format!("cannot start the thread reading stdin: {e}"))?;
        part.lines = Some(rx);
        Ok(part)
    }
}

/// Sends the reader's lines (with their terminators) until end of file, an error, or the
/// partition going away. A read blocked on a terminal cannot be interrupted; the thread then
/// ends with the process.
fn read_lines(reader: Box<dyn Read + Send>, tx: SyncSender<Line>) {
    let mut reader = BufReader::new(reader);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                if tx.send(Ok(line)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

/// A worker's partition of a [`StdInSource`]: worker 0's receives lines, the others' are
/// finished from the start.
pub struct StdInPartition {
    lines: Option<Receiver<Line>>,
    /// Bytes read so far, for error messages.
    offset: u64,
    batch_size: usize,
    /// The last poll found nothing.
    idle: bool,
}

impl StdInPartition {
    fn take_line(&mut self, mut bytes: Vec<u8>) -> Result<String, FileError> {
        let start = self.offset;
        self.offset += bytes.len() as u64;
        let keep = crate::files::strip_newline(&bytes).len();
        bytes.truncate(keep);
        String::from_utf8(bytes).map_err(|e| FileError::BadUtf8 {
            path: PathBuf::from("<stdin>"),
            offset: start + e.utf8_error().valid_up_to() as u64,
        })
    }
}

impl StatelessSourcePartition for StdInPartition {
    type Item = String;

    fn next_batch(&mut self, batch: &mut Vec<String>) -> Result<BatchStatus, ConnectorError> {
        let mut finished = self.lines.is_none();
        while !finished && batch.len() < self.batch_size {
            let Some(lines) = &self.lines else { break };
            match lines.try_recv() {
                Ok(Ok(bytes)) => batch.push(self.take_line(bytes)?),
                Ok(Err(e)) => {
                    return Err(FileError::Io {
                        op: "read",
                        path: PathBuf::from("<stdin>"),
                        source: e,
                    }
                    .into());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => finished = true,
            }
        }
        self.idle = batch.is_empty();
        if finished {
            self.lines = None;
            return Ok(BatchStatus::Eof);
        }
        Ok(BatchStatus::Active)
    }

    fn next_awake(&self) -> Option<SystemTime> {
        self.idle.then(|| SystemTime::now() + IDLE_POLL)
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        // Dropping the receiver lets the reading thread end at its next line.
        self.lines = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bwx_runtime::prelude::*;
    use bwx_runtime::testing::TestingSink;

    use super::*;

    fn run(source: StdInSource, workers: usize) -> Result<Vec<String>, FlowError> {
        let flow = Dataflow::new("f");
        let out = TestingSink::new();
        flow.input("inp", source).output("out", out.clone());
        bwx_runtime::run_workers(&flow, workers, RunConfig::default())?;
        Ok(out.take())
    }

    #[test]
    fn worker_zero_reads_every_line_once() {
        let source = StdInSource::from_reader(&b"a\r\nb\nc\nlast"[..]).batch_size(2);
        assert_eq!(run(source, 3).unwrap(), vec!["a", "b", "c", "last"]);
    }

    #[test]
    fn bad_utf8_names_stdin_and_the_offset() {
        let source = StdInSource::from_reader(&b"fine\nbr\xc3oken\n"[..]);
        let err = run(source, 1).unwrap_err().report();
        assert_eq!(
            err,
            "step 'f.inp' on worker 0: cannot read the next batch: <stdin>: invalid UTF-8 at byte offset 7"
        );
    }

    #[test]
    fn a_reader_serves_one_run() {
        let flow = Dataflow::new("f");
        flow.input("inp", StdInSource::from_reader(&b"x\n"[..]))
            .output("out", TestingSink::new());
        bwx_runtime::run_main(&flow).unwrap();
        let err = bwx_runtime::run_main(&flow).unwrap_err().report();
        assert!(err.contains("used by an earlier run"), "{err}");
    }
}
