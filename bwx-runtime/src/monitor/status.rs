//! [`Monitor`]: what a process knows about the run of its flow.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::flow::{Dataflow, StepId};
use crate::recovery::ResumePoint;

/// An epoch not known yet.
pub(crate) const NO_EPOCH: u64 = u64::MAX;
/// The frontier of a step whose input has ended.
pub(crate) const CLOSED: u64 = u64::MAX - 1;
/// How many epoch start times a worker remembers (for frontier lags).
const EPOCH_HISTORY: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The phase of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    /// The workers are connecting, loading resume state or building the flow.
    Starting,
    /// Inputs are being read.
    Running,
    /// Every input reached its end and everything was written.
    Finished,
    /// Stopped by a signal (or a stop flag) before the end of its input.
    Stopped,
    /// A step or connector failed, or another process did.
    Failed,
}

/// Where a run resumed from (with recovery on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Resumed {
    /// The number of this execution (0 for the first), when the recovery store tells.
    pub execution: Option<u64>,
    /// The epoch the run starts at: every epoch before it was already processed.
    pub epoch: u64,
    /// The recovery directory.
    pub directory: Option<PathBuf>,
}

/// One worker of this process, in a [`StatusReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkerStatus {
    /// The worker's global index.
    pub index: usize,
    /// `starting`, `running` or `done`.
    pub state: &'static str,
    /// The epoch its inputs are in, once known.
    pub epoch: Option<u64>,
}

/// `GET /status`: the run as a Kubernetes probe or an operator sees it.
#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    /// The flow id.
    pub flow_id: String,
    /// The phase of the run.
    pub phase: RunPhase,
    /// Whether the flow is up and processing (a readiness probe's answer).
    pub ready: bool,
    /// The newest epoch of this process's inputs.
    pub epoch: Option<u64>,
    /// Where the run resumed from, with recovery on.
    pub resumed: Option<Resumed>,
    /// With recovery on, the cluster's durable frontier: every epoch before it is stored
    /// in every recovery partition (a resume would start there).
    pub durable_until: Option<u64>,
    /// This process's index in the cluster.
    pub process_id: usize,
    /// How many processes the cluster has.
    pub processes: usize,
    /// This process's workers.
    pub workers: Vec<WorkerStatus>,
    /// Items the input steps of this process have read (`None`: the run keeps no metrics).
    pub items_read: Option<u64>,
    /// Items the output steps of this process have written (`None`: no metrics).
    pub items_written: Option<u64>,
    /// Seconds since the run started.
    pub uptime_seconds: f64,
    /// Why the run stopped or failed, once it has.
    pub reason: Option<String>,
}

/// A worker of the run, as the engine updates it.
pub(crate) struct WorkerSlot {
    pub(crate) index: usize,
    /// The newest epoch of the worker's inputs ([`NO_EPOCH`] before the first).
    epoch: AtomicU64,
    /// 0 starting, 1 running, 2 done.
    state: AtomicU8,
    /// When the worker's inputs entered each recent epoch.
    starts: Mutex<VecDeque<(u64, Instant)>>,
}

impl WorkerSlot {
    fn new(index: usize) -> Self {
        WorkerSlot {
            index,
            epoch: AtomicU64::new(NO_EPOCH),
            state: AtomicU8::new(0),
            starts: Mutex::new(VecDeque::new()),
        }
    }

    /// An input of the worker is in `epoch` (called at every activation of an input).
    #[inline]
    pub(crate) fn input_epoch(&self, epoch: u64) {
        let known = self.epoch.load(Ordering::Relaxed);
        if known == NO_EPOCH || epoch > known {
            self.entered(epoch);
        }
    }

    #[cold]
    fn entered(&self, epoch: u64) {
        let mut starts = lock(&self.starts);
        let known = self.epoch.load(Ordering::Relaxed);
        if known != NO_EPOCH && epoch <= known {
            return;
        }
        self.epoch.store(epoch, Ordering::Relaxed);
        self.state.fetch_max(1, Ordering::Relaxed);
        if starts.len() == EPOCH_HISTORY {
            starts.pop_front();
        }
        starts.push_back((epoch, Instant::now()));
    }

    pub(crate) fn epoch(&self) -> Option<u64> {
        Some(self.epoch.load(Ordering::Relaxed)).filter(|e| *e != NO_EPOCH)
    }

    pub(crate) fn done(&self) {
        self.state.store(2, Ordering::Relaxed);
    }

    /// How long ago the worker's inputs left `epoch` (0 if they are still in it).
    fn time_since_epoch_closed(&self, epoch: u64, now: Instant) -> Duration {
        let starts = lock(&self.starts);
        // The first start after `epoch` is when the inputs closed it.
        match starts.iter().find(|(e, _)| *e > epoch) {
            Some((_, at)) => now.saturating_duration_since(*at),
            None => Duration::ZERO,
        }
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            index: self.index,
            state: match self.state.load(Ordering::Relaxed) {
                0 => "starting",
                1 => "running",
                _ => "done",
            },
            epoch: self.epoch(),
        }
    }
}

/// A step on one worker, as the engine updates it.
pub(crate) struct StepSlot {
    pub(crate) step_id: StepId,
    pub(crate) worker: Arc<WorkerSlot>,
    /// The epoch the step works on: its input frontier ([`NO_EPOCH`] before the first,
    /// [`CLOSED`] after its input ended).
    frontier: AtomicU64,
}

impl StepSlot {
    #[inline]
    pub(crate) fn set_frontier(&self, epoch: Option<u64>) {
        self.frontier.store(epoch.unwrap_or(CLOSED), Ordering::Relaxed);
    }

    /// The step's frontier, unless unknown or closed.
    pub(crate) fn frontier(&self) -> Option<u64> {
        Some(self.frontier.load(Ordering::Relaxed)).filter(|f| *f < CLOSED)
    }

    /// How far behind its worker's inputs the step is: the time since the inputs closed
    /// the epoch the step still works on.
    pub(crate) fn lag(&self, now: Instant) -> Duration {
        match self.frontier() {
            Some(f) => self.worker.time_since_epoch_closed(f, now),
            None => Duration::ZERO,
        }
    }
}

struct Outcome {
    phase: RunPhase,
    reason: Option<String>,
}

struct Shared {
    flow_id: String,
    dataflow_json: String,
    inputs: Vec<StepId>,
    outputs: Vec<StepId>,
    metrics: bool,
    started: Instant,
    place: Mutex<(usize, usize)>,
    outcome: Mutex<Outcome>,
    resumed: Mutex<Option<Resumed>>,
    workers: Mutex<BTreeMap<usize, Arc<WorkerSlot>>>,
    steps: Mutex<Vec<Arc<StepSlot>>>,
    directory: Mutex<Option<PathBuf>>,
    /// The cluster's durable frontier, as this process's recovery writers last heard it.
    durable: AtomicU64,
}

/// A monitor that does not keep its run's data alive.
pub(crate) struct WeakMonitor(std::sync::Weak<Shared>);

impl WeakMonitor {
    pub(crate) fn upgrade(&self) -> Option<Monitor> {
        self.0.upgrade().map(|shared| Monitor { shared })
    }
}

/// What a process knows about the run of its flow: phase, epochs, resume point, and
/// per-step progress. The dataflow API serves it (`/status`, `/metrics`), the command line
/// reports from it, and the engine updates it once per batch.
///
/// Give it to a run with [`RunConfig::monitor`](crate::RunConfig::monitor):
///
/// ```
/// use bwx::monitor::{Monitor, RunPhase};
/// use bwx::prelude::*;
/// use bwx::testing::{TestingSink, TestingSource};
///
/// let flow = Dataflow::new("watched");
/// flow.input("inp", TestingSource::new(0..100u32))
///     .map("double", |x| x * 2)
///     .output("out", TestingSink::new());
/// let monitor = Monitor::new(&flow);
/// bwx::run_main_with(&flow, RunConfig::default().monitor(monitor.clone())).unwrap();
/// let status = monitor.status();
/// assert_eq!(status.phase, RunPhase::Finished);
/// assert_eq!((status.items_read, status.items_written), (Some(100), Some(100)));
/// ```
#[derive(Clone)]
pub struct Monitor {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("flow_id", &self.shared.flow_id)
            .field("metrics", &self.shared.metrics)
            .finish()
    }
}

impl Monitor {
    /// A monitor of `flow` whose steps count items and time batches into the
    /// [registry](super::registry).
    pub fn new(flow: &Dataflow) -> Monitor {
        Self::with_metrics(flow, true)
    }

    /// A monitor that tracks the phase and epochs of the run but keeps no metrics: steps
    /// count nothing.
    pub fn status_only(flow: &Dataflow) -> Monitor {
        Self::with_metrics(flow, false)
    }

    fn with_metrics(flow: &Dataflow, metrics: bool) -> Monitor {
        let steps = flow.steps();
        let of = |op: &str| {
            steps
                .iter()
                .filter(|s| s.operator == op)
                .map(|s| s.id.clone())
                .collect()
        };
        let monitor = Monitor {
            shared: Arc::new(Shared {
                flow_id: flow.id(),
                dataflow_json: flow.to_json(),
                inputs: of("input"),
                outputs: of("output"),
                metrics,
                started: Instant::now(),
                place: Mutex::new((0, 1)),
                outcome: Mutex::new(Outcome {
                    phase: RunPhase::Starting,
                    reason: None,
                }),
                resumed: Mutex::new(None),
                workers: Mutex::new(BTreeMap::new()),
                steps: Mutex::new(Vec::new()),
                directory: Mutex::new(None),
                durable: AtomicU64::new(NO_EPOCH),
            }),
        };
        if metrics {
            // Registers the families before the first scrape, so a scrape during start-up
            // already sees them.
            super::families::families();
            super::live::watch(&monitor);
        }
        monitor
    }

    /// The flow id.
    pub fn flow_id(&self) -> &str {
        &self.shared.flow_id
    }

    /// The flow as JSON ([`Dataflow::to_json`]), as `GET /dataflow` serves it.
    pub fn dataflow_json(&self) -> &str {
        &self.shared.dataflow_json
    }

    /// Whether steps keep metrics.
    pub fn metrics_enabled(&self) -> bool {
        self.shared.metrics
    }

    /// Records this process's place in the cluster (for `/status`).
    pub fn set_process(&self, process_id: usize, processes: usize) {
        *lock(&self.shared.place) = (process_id, processes.max(1));
    }

    /// Records the recovery directory, for `/status` and the logs.
    pub fn set_recovery_directory(&self, directory: PathBuf) {
        *lock(&self.shared.directory) = Some(directory);
    }

    /// The processes agreed where the run resumes: records it and, the first time, logs it.
    pub(crate) fn resumed_at(&self, point: ResumePoint) {
        let mut resumed = lock(&self.shared.resumed);
        if resumed.is_some() {
            return;
        }
        let directory = lock(&self.shared.directory).clone();
        let shown = directory
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        if point.execution == 0 && point.epoch == crate::recovery::FIRST_EPOCH {
            tracing::info!(
                directory = shown,
                "recovery directory {shown}: first execution, starting at epoch {}",
                crate::recovery::FIRST_EPOCH
            );
        } else {
            tracing::info!(
                directory = shown,
                execution = point.execution,
                resume_epoch = point.epoch,
                "recovery directory {shown}: execution {} resumes at epoch {}",
                point.execution,
                point.epoch
            );
        }
        *resumed = Some(Resumed {
            execution: Some(point.execution),
            epoch: point.epoch,
            directory,
        });
    }

    /// Where the run resumed from, if recovery is on.
    pub fn resumed(&self) -> Option<Resumed> {
        lock(&self.shared.resumed).clone()
    }

    /// The newest epoch of this process's inputs.
    pub fn epoch(&self) -> Option<u64> {
        lock(&self.shared.workers)
            .values()
            .filter_map(|w| w.epoch())
            .max()
    }

    /// With recovery on, the cluster's durable frontier: every epoch before it is stored in
    /// every recovery partition. `None` until this process heard of one.
    pub fn durable_until(&self) -> Option<u64> {
        Some(self.shared.durable.load(Ordering::Relaxed)).filter(|e| *e != NO_EPOCH)
    }

    /// The cluster's durable frontier moved to `frontier`.
    pub(crate) fn set_durable_until(&self, frontier: u64) {
        let durable = &self.shared.durable;
        let known = durable.load(Ordering::Relaxed);
        if known == NO_EPOCH || frontier > known {
            durable.store(frontier, Ordering::Relaxed);
        }
    }

    /// The phase of the run.
    pub fn phase(&self) -> RunPhase {
        let outcome = lock(&self.shared.outcome);
        match outcome.phase {
            RunPhase::Starting if self.epoch().is_some() => RunPhase::Running,
            phase => phase,
        }
    }

    /// Records how the run ended: `stopped` when it stopped before the end of its input,
    /// `error` when it failed.
    pub(crate) fn ended(&self, error: Option<String>, stopped: Option<String>) {
        let mut outcome = lock(&self.shared.outcome);
        *outcome = match (error, stopped) {
            (Some(e), _) => Outcome {
                phase: RunPhase::Failed,
                reason: Some(e),
            },
            (None, Some(why)) => Outcome {
                phase: RunPhase::Stopped,
                reason: Some(why),
            },
            (None, None) => Outcome {
                phase: RunPhase::Finished,
                reason: None,
            },
        };
    }

    /// Items read by the input steps of this process, over all its workers (`None` when
    /// the monitor keeps no metrics).
    pub fn items_read(&self) -> Option<u64> {
        self.shared
            .metrics
            .then(|| self.sum(&self.shared.inputs, &super::families::families().item_out))
    }

    /// Items written by the output steps of this process, over all its workers (`None`
    /// when the monitor keeps no metrics).
    pub fn items_written(&self) -> Option<u64> {
        self.shared
            .metrics
            .then(|| self.sum(&self.shared.outputs, &super::families::families().item_inp))
    }

    fn sum(&self, steps: &[StepId], family: &prometheus::IntCounterVec) -> u64 {
        let workers: Vec<String> = lock(&self.shared.workers).keys().map(|w| w.to_string()).collect();
        let mut total = 0;
        for step in steps {
            for worker in &workers {
                if let Ok(counter) = family.get_metric_with_label_values(&[step.as_str(), worker.as_str()]) {
                    total += counter.get();
                }
            }
        }
        total
    }

    /// The run as `GET /status` reports it.
    pub fn status(&self) -> StatusReport {
        let phase = self.phase();
        let (process_id, processes) = *lock(&self.shared.place);
        let workers: Vec<WorkerStatus> = lock(&self.shared.workers).values().map(|w| w.status()).collect();
        StatusReport {
            flow_id: self.shared.flow_id.clone(),
            phase,
            ready: matches!(phase, RunPhase::Running | RunPhase::Finished),
            epoch: self.epoch(),
            resumed: self.resumed(),
            durable_until: self.durable_until(),
            process_id,
            processes,
            workers,
            items_read: self.items_read(),
            items_written: self.items_written(),
            uptime_seconds: self.shared.started.elapsed().as_secs_f64(),
            reason: lock(&self.shared.outcome).reason.clone(),
        }
    }

    /// The worker's slot, made on first use.
    pub(crate) fn worker(&self, index: usize) -> Arc<WorkerSlot> {
        lock(&self.shared.workers)
            .entry(index)
            .or_insert_with(|| Arc::new(WorkerSlot::new(index)))
            .clone()
    }

    /// A new slot for a step on a worker.
    pub(crate) fn step(&self, step_id: &StepId, worker: usize) -> Arc<StepSlot> {
        let slot = Arc::new(StepSlot {
            step_id: step_id.clone(),
            worker: self.worker(worker),
            frontier: AtomicU64::new(NO_EPOCH),
        });
        lock(&self.shared.steps).push(slot.clone());
        slot
    }

    /// Every step slot, for the live gauges.
    pub(crate) fn steps(&self) -> Vec<Arc<StepSlot>> {
        lock(&self.shared.steps).clone()
    }

    /// Every worker slot.
    pub(crate) fn workers(&self) -> Vec<Arc<WorkerSlot>> {
        lock(&self.shared.workers).values().cloned().collect()
    }

    pub(crate) fn downgrade(&self) -> WeakMonitor {
        WeakMonitor(Arc::downgrade(&self.shared))
    }

    /// Seconds since the Unix epoch, for timestamps in gauges.
    pub(crate) fn unix_now() -> i64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}
