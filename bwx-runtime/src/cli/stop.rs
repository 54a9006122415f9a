//! How a run that did not finish says so: the stop line, the exit codes, and the one line
//! a `--processes` supervisor prints for its cluster.
//!
//! | exit code | meaning |
//! |---|---|
//! | 0 | the flow finished: every input reached its end |
//! | 1 | the flow failed (a step or connector, or another process) |
//! | 2 | bad flags |
//! | 130 | stopped by SIGINT (Ctrl-C) before the end of its input |
//! | 143 | stopped by SIGTERM before the end of its input, or because another process of its cluster was |

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::execution::ENV_SUPERVISOR_REPORT;
use crate::monitor::Monitor;

/// Which of SIGINT and SIGTERM arrived last.
#[derive(Clone, Default)]
pub(crate) struct Signals {
    last: Arc<AtomicUsize>,
}

impl Signals {
    /// Records SIGINT and SIGTERM as they arrive (the graceful stop itself is
    /// [`RunConfig::stop_on_signals`](crate::RunConfig::stop_on_signals)).
    pub(crate) fn register() -> std::io::Result<Signals> {
        let signals = Signals::default();
        for signal in [SIGINT, SIGTERM] {
            signal_hook::flag::register_usize(signal, signals.last.clone(), signal as usize)?;
        }
        Ok(signals)
    }

    /// The last signal received, if any.
    pub(crate) fn received(&self) -> Option<i32> {
        match self.last.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s as i32),
        }
    }
}

/// A run that stopped before the end of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReport {
    /// What to tell the user: when it stopped and how to resume.
    pub message: String,
    /// The signal that stopped it.
    pub signal: i32,
}

impl StopReport {
    /// The report of this process's stopped run: by `signal`, or (`None`) on the request
    /// of another process of its cluster.
    pub(crate) fn new(monitor: &Monitor, signal: Option<i32>, recovery: Option<&Path>) -> StopReport {
        let at = match monitor.epoch() {
            Some(epoch) => format!(" at epoch {epoch}"),
            None => String::new(),
        };
        let how = match recovery {
            Some(dir) => {
                let through = match monitor.durable_until().and_then(|e| e.checked_sub(1)) {
                    Some(e) => format!("through epoch {e} "),
                    None => String::new(),
                };
                format!(
                    "its state is saved {through}in {}: run the same command to resume from there",
                    dir.display()
                )
            }
            None => {
                "it has no recovery directory (-r), so running it again starts from the beginning".to_string()
            }
        };
        let why = match signal {
            Some(signal) => signal_name(signal),
            None => "another process of the cluster was stopped",
        };
        StopReport {
            message: format!(
                "flow '{}' stopped{at} before the end of its input ({why}); {how}",
                monitor.flow_id(),
            ),
            signal: signal.unwrap_or(SIGTERM),
        }
    }

    /// 128 + the signal's number, as a shell reports a process the signal ended.
    pub fn exit_code(&self) -> u8 {
        (128 + self.signal).clamp(0, 255) as u8
    }
}

impl std::fmt::Display for StopReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Whether `code` is the exit code of a stopped run, and by which signal.
pub(crate) fn stopped_by(code: i32) -> Option<i32> {
    [SIGINT, SIGTERM].into_iter().find(|s| code == 128 + s)
}

/// Prints the last line of a run: to the supervisor's report file in a process of a
/// `--processes` run (appended, beside what the heartbeats told it), else to stderr.
pub(crate) fn last_line(line: &str) {
    if let Some(path) = std::env::var_os(ENV_SUPERVISOR_REPORT).map(PathBuf::from)
        && crate::execution::tell_supervisor(&path, line).is_ok()
    {
        return;
    }
    let _ = super::terminal::write_lines(format!("{line}\n").as_bytes());
}
