//! Snapshot commits, measured: a [`RecoveryHook`] around the run's own.

use std::sync::Arc;
use std::time::Instant;

use super::families::families;
use super::status::Monitor;
use crate::errors::FlowError;
use crate::flow::StepId;
use crate::recovery::{RecoveryHook, Snapshot, StoredStates};

/// Passes everything to the run's recovery hook, and records how long each epoch's
/// commit took, how many bytes each step handed over, and the last committed epoch; logs
/// every commit at debug level.
pub(crate) struct MeasuredRecovery {
    inner: Arc<dyn RecoveryHook>,
    monitor: Monitor,
}

impl MeasuredRecovery {
    pub(crate) fn wrap(inner: Arc<dyn RecoveryHook>, monitor: Monitor) -> Arc<dyn RecoveryHook> {
        Arc::new(MeasuredRecovery { inner, monitor })
    }
}

impl RecoveryHook for MeasuredRecovery {
    fn resume_epoch(&self) -> u64 {
        self.inner.resume_epoch()
    }

    fn execution(&self) -> Option<u64> {
        self.inner.execution()
    }

    fn begin(&self, worker: usize, worker_count: usize, steps: &[StepId]) -> Result<(), FlowError> {
        self.inner.begin(worker, worker_count, steps)
    }

    fn resume_states(&self, step: &StepId) -> Result<Arc<StoredStates>, FlowError> {
        self.inner.resume_states(step)
    }

    fn epoch_closed(&self, worker: usize, epoch: u64, snapshots: Vec<Snapshot>) -> Result<(), FlowError> {
        let count = snapshots.len();
        let mut bytes = 0;
        if self.monitor.metrics_enabled() && count > 0 {
            bytes = count_bytes(worker, &snapshots);
        }
        let started = Instant::now();
        let result = self.inner.epoch_closed(worker, epoch, snapshots);
        let seconds = started.elapsed().as_secs_f64();
        if result.is_ok() {
            self.monitor.worker(worker).snapshot_committed(epoch);
            if self.monitor.metrics_enabled() {
                let f = families();
                let w = [worker.to_string()];
                f.snapshot_commit_duration.with_label_values(&w).observe(seconds);
                f.snapshot_epoch.with_label_values(&w).set(epoch as i64);
                f.snapshot_time.with_label_values(&w).set(Monitor::unix_now());
            }
            tracing::debug!(
                target: "bwx::recovery",
                worker,
                epoch,
                snapshots = count,
                bytes,
                seconds,
                "committed the snapshots of epoch {epoch} on worker {worker}"
            );
        }
        result
    }

    fn finished(&self, worker: usize) -> Result<(), FlowError> {
        self.inner.finished(worker)
    }
}

/// Adds each step's encoded state sizes to its byte counter; returns the total.
fn count_bytes(worker: usize, snapshots: &[Snapshot]) -> u64 {
    let worker = worker.to_string();
    let mut total = 0u64;
    let mut current: Option<(&StepId, u64)> = None;
    let flush = |step: &StepId, n: u64| {
        families()
            .snapshot_bytes
            .with_label_values(&[step.as_str(), worker.as_str()])
            .inc_by(n);
    };
    for snap in snapshots {
        let n = (snap.key.len() + snap.state.as_ref().map_or(0, Vec::len)) as u64;
        total += n;
        match &mut current {
            Some((step, sum)) if *step == &snap.step_id => *sum += n,
            _ => {
                if let Some((step, sum)) = current.take() {
                    flush(step, sum);
                }
                current = Some((&snap.step_id, n));
            }
        }
    }
    if let Some((step, sum)) = current {
        flush(step, sum);
    }
    total
}
