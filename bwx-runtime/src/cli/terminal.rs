//! Stderr shared by log lines and the progress line: a log line first clears the progress
//! line, which the next tick draws again below it.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

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

/// The log writer: each event is one `write` of whole lines.
pub(crate) struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_lines(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
