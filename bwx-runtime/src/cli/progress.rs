//! The progress line of a long run on a terminal: epoch, items read and written, rates.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::terminal::{clear_progress, draw_progress};
use crate::monitor::Monitor;

/// How often the line is redrawn; a run shorter than this shows none.
const TICK: Duration = Duration::from_secs(1);

/// Draws the progress line until dropped, then removes it.
pub(crate) struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing `monitor`'s progress on stderr.
    pub(crate) fn start(monitor: Monitor) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bwx-progress".into())
            .spawn(move || {
                let started = Instant::now();
                let mut last = (Instant::now(), 0, 0);
                loop {
                    std::thread::park_timeout(TICK);
                    if stopping.load(Ordering::Relaxed) {
                        break;
                    }
                    let now = Instant::now();
                    let read = monitor.items_read().unwrap_or(0);
                    let written = monitor.items_written().unwrap_or(0);
                    let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
                    let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
                    draw_progress(&line(
                        monitor.flow_id(),
                        monitor.epoch(),
                        (read, rate(read, last.1)),
                        (written, rate(written, last.2)),
                        started.elapsed(),
                    ));
                    last = (now, read, written);
                }
            })
            .ok();
        Progress { stop, thread }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        clear_progress();
    }
}

/// `flow: epoch 12 · read 1.2M (340.1k/s) · written 1.2M (339.8k/s) · 0:42`
fn line(flow: &str, epoch: Option<u64>, read: (u64, f64), written: (u64, f64), elapsed: Duration) -> String {
    let epoch = epoch.map_or("-".to_string(), |e| e.to_string());
    let secs = elapsed.as_secs();
    format!(
        "{flow}: epoch {epoch} · read {} ({}/s) · written {} ({}/s) · {}:{:02}",
        count(read.0 as f64),
        count(read.1),
        count(written.0 as f64),
        count(written.1),
        secs / 60,
        secs % 60
    )
}

/// 999, 1.2k, 3.4M, 5.6G.
fn count(n: f64) -> String {
    match n {
        n if n < 1e3 => format!("{n:.0}"),
        n if n < 1e6 => format!("{:.1}k", n / 1e3),
        n if n < 1e9 => format!("{:.1}M", n / 1e6),
        n => format!("{:.1}G", n / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_reads_well() {
        let text = line(
            "wc",
            Some(12),
            (1_234_567, 340_100.0),
            (999, 12.4),
            Duration::from_secs(62),
        );
        assert_eq!(
            text,
            "wc: epoch 12 · read 1.2M (340.1k/s) · written 999 (12/s) · 1:02"
        );
        assert!(line("wc", None, (0, 0.0), (0, 0.0), Duration::ZERO).starts_with("wc: epoch - ·"));
    }
}
