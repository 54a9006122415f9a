//! The gauges computed when scraped: epochs, step frontiers and frontier lags.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntGaugeVec, Opts};

use super::families::STEP_LABELS;
use super::status::{Monitor, WeakMonitor};

/// The monitors of the runs of this process whose gauges a scrape reports.
static WATCHED: Mutex<Vec<WeakMonitor>> = Mutex::new(Vec::new());

/// Adds a run's monitor to the scraped ones.
pub(crate) fn watch(monitor: &Monitor) {
    let mut watched = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
    watched.retain(|w| w.upgrade().is_some());
    watched.push(monitor.downgrade());
}

/// Whether a run of this process keeps metrics now (a [`Monitor`] with metrics is alive):
/// connectors start their own metric feeds only then.
pub(crate) fn active() -> bool {
    WATCHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|w| w.upgrade().is_some())
}

/// Registers the collector once per process.
pub(crate) fn register() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if let Err(e) = super::registry().register(Box::new(Live::new())) {
            tracing::warn!("cannot register bwx's epoch gauges: {e}");
        }
    });
}

struct Live {
    epoch: IntGaugeVec,
    frontier: IntGaugeVec,
    lag: GaugeVec,
}

impl Live {
    fn new() -> Live {
        Live {
            epoch: IntGaugeVec::new(
                Opts::new("bwx_epoch", "the newest epoch of this worker's inputs"),
                &["worker_index"],
            )
            .expect("a valid gauge family"),
            frontier: IntGaugeVec::new(
                Opts::new(
                    "bwx_step_frontier_epoch",
                    "the epoch this step works on (its input frontier)",
                ),
                &STEP_LABELS,
            )
            .expect("a valid gauge family"),
            lag: GaugeVec::new(
                Opts::new(
                    "bwx_step_frontier_lag_seconds",
                    "how long ago this worker's inputs closed the epoch the step still works on",
                ),
                &STEP_LABELS,
            )
            .expect("a valid gauge family"),
        }
    }
}

impl Collector for Live {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.epoch.desc();
        descs.extend(self.frontier.desc());
        descs.extend(self.lag.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.epoch.reset();
        self.frontier.reset();
        self.lag.reset();
        let monitors: Vec<Monitor> = WATCHED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(WeakMonitor::upgrade)
            .collect();
        let now = Instant::now();
        for monitor in monitors {
            for worker in monitor.workers() {
                if let Some(epoch) = worker.epoch() {
                    self.epoch
                        .with_label_values(&[worker.index.to_string()])
                        .set(epoch as i64);
                }
            }
            for step in monitor.steps() {
                let Some(frontier) = step.frontier() else { continue };
                let labels = [step.step_id.to_string(), step.worker.index.to_string()];
                self.frontier.with_label_values(&labels).set(frontier as i64);
                self.lag
                    .with_label_values(&labels)
                    .set(step.lag(now).as_secs_f64());
            }
        }
        let mut families = self.epoch.collect();
        families.extend(self.frontier.collect());
        families.extend(self.lag.collect());
        families
    }
}
