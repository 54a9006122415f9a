//! Stderr shared by log lines and the progress line: a log line first clears the progress
//! line, which the next tick draws again below it.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};

/// Whether a progress line is on screen (drawn, not yet cleared or overwritten).
static PROGRESS_SHOWN: Mutex<bool> = Mutex::new(false);

/// Clears the current line of the terminal and moves to its start.
const CLEAR_LINE: &[u8] = b"\r\x1b[2K";

/// Whether stderr is a terminal (then log lines may carry colours and a progress line
/// may be drawn).
pub(crate) fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Writes `bytes` (whole lines) to stderr, clearing a progress line first.
pub(crate) fn write_lines(bytes: &[u8]) -> std::io::Result<()> {
    let mut shown = PROGRESS_SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    let mut stderr = std::io::stderr().lock();
    if *shown {
        stderr.write_all(CLEAR_LINE)?;
        *shown = false;
    }
    stderr.write_all(bytes)?;
    stderr.flush()
}

/// Draws `line` as the progress line (replacing the previous one).
pub(crate) fn draw_progress(line: &str) {
    let mut shown = PROGRESS_SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_all(CLEAR_LINE)
        .and_then(|_| stderr.write_all(line.as_bytes()))
        .and_then(|_| stderr.flush());
    *shown = true;
}

/// Removes the progress line.
pub(crate) fn clear_progress() {
    let mut shown = PROGRESS_SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    if *shown {
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(CLEAR_LINE).and_then(|_| stderr.flush());
        *shown = false;
    }
}

/// Which process of a cluster writes the log lines, once known (see [`mark_process`]).
static PROCESS_MARK: OnceLock<ProcessMark> = OnceLock::new();

/// How this process marks its log lines.
struct ProcessMark {
    /// Put before each text line: the processes of a `--processes` run share one stderr.
    text_prefix: Option<String>,
    /// Put first in each JSON object: `"process":N,`.
    json_field: String,
}

/// Marks every later log line with process `process`'s id: a `"process"` field in each
/// JSON line, and, when the processes share one stderr (`shared_stderr`, a `--processes`
/// run), a `process N: ` prefix on each text line. Elsewhere each process has its own log
/// (a pod's, a host's), which names it already.
pub(crate) fn mark_process(process: usize, shared_stderr: bool) {
    let _ = PROCESS_MARK.set(ProcessMark {
        text_prefix: shared_stderr.then(|| format!("process {process}: ")),
        json_field: format!("\"process\":{process},"),
    });
}

/// The log writer: each event is one `write` of whole lines, marked with this process's id
/// once [`mark_process`] set it.
pub(crate) struct LogWriter {
    pub(crate) json: bool,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let marked = PROCESS_MARK.get().and_then(|mark| {
            if self.json {
                let rest = buf.strip_prefix(b"{")?;
                Some([b"{", mark.json_field.as_bytes(), rest].concat())
            } else {
                let prefix = mark.text_prefix.as_ref()?;
                Some([prefix.as_bytes(), buf].concat())
            }
        });
        write_lines(marked.as_deref().unwrap_or(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
