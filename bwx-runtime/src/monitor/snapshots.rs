//! Snapshot commits, measured: a [`RecoveryStore`] around the run's own, whose writers
//! time every write and count its bytes.

use std::sync::Arc;
use std::time::Instant;

use super::families::families;
use super::status::Monitor;
use crate::flow::StepId;
use crate::recovery::{PartitionWriter, Progress, RecoveryError, RecoveryStore, ResumePlan, Snapshot};

/// Passes everything to the run's store; its partition writers record how long each write
/// took, how many bytes each step handed over, the last epoch each partition holds, and
/// the cluster's durable frontier, and log every write at debug level.
pub(crate) struct MeasuredRecovery {
    inner: Arc<dyn RecoveryStore>,
    monitor: Monitor,
}

impl MeasuredRecovery {
    pub(crate) fn wrap(inner: Arc<dyn RecoveryStore>, monitor: Monitor) -> Arc<dyn RecoveryStore> {
        Arc::new(MeasuredRecovery { inner, monitor })
    }
}

impl RecoveryStore for MeasuredRecovery {
    fn partitions(&self) -> usize {
        self.inner.partitions()
    }

    fn partition_of(&self, step: &StepId, key: &[u8]) -> usize {
        self.inner.partition_of(step, key)
    }

    fn local_summary(&self) -> Result<Vec<u8>, RecoveryError> {
        self.inner.local_summary()
    }

    /// The plan, which the monitor records as where the run resumed from.
    fn plan(&self, summaries: &[Vec<u8>]) -> Result<ResumePlan, RecoveryError> {
        let plan = self.inner.plan(summaries)?;
        self.monitor.resumed_at(plan.point);
        Ok(plan)
    }

    fn load(&self, plan: &ResumePlan, process: usize) -> Result<Vec<Snapshot>, RecoveryError> {
        self.inner.load(plan, process)
    }

    fn open_writer(
        &self,
        plan: &ResumePlan,
        parts: Vec<usize>,
        workers: usize,
    ) -> Result<Box<dyn PartitionWriter>, RecoveryError> {
        let inner = self.inner.open_writer(plan, parts.clone(), workers)?;
        let label = parts.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        Ok(Box::new(MeasuredWriter {
            inner,
            parts,
            label,
            monitor: self.monitor.clone(),
        }))
    }
}

/// A partition writer that measures what it writes.
struct MeasuredWriter {
    inner: Box<dyn PartitionWriter>,
    parts: Vec<usize>,
    /// The partitions, as the commit histogram's label: `0,2`.
    label: String,
    monitor: Monitor,
}

impl PartitionWriter for MeasuredWriter {
    fn write(&mut self, rows: Vec<Snapshot>, progress: Progress) -> Result<(), RecoveryError> {
        let metrics = self.monitor.metrics_enabled();
        let count = rows.len();
        let bytes = count_bytes(&rows, metrics);
        let started = Instant::now();
        self.inner.write(rows, progress)?;
        let seconds = started.elapsed().as_secs_f64();
        let until = match progress {
            Progress::Until(e) | Progress::Complete { until: e } => e,
        };
        if metrics {
            let f = families();
            f.snapshot_commit_duration
                .with_label_values(&[self.label.as_str()])
                .observe(seconds);
            let now = Monitor::unix_now();
            for part in &self.parts {
                let part = [part.to_string()];
                if let Some(last) = until.checked_sub(1) {
                    f.snapshot_epoch.with_label_values(&part).set(last as i64);
                }
                f.snapshot_time.with_label_values(&part).set(now);
            }
        }
        tracing::debug!(
            target: "bwx::recovery",
            partitions = %self.label,
            until,
            snapshots = count,
            bytes,
            seconds,
            "committed the snapshots of the epochs before {until} to partitions {}",
            self.label
        );
        Ok(())
    }

    fn durable(&mut self, frontier: u64) -> Result<(), RecoveryError> {
        self.monitor.set_durable_until(frontier);
        self.inner.durable(frontier)
    }

    fn has_garbage(&self) -> bool {
        self.inner.has_garbage()
    }

    fn collect_garbage(&mut self) -> Result<(), RecoveryError> {
        self.inner.collect_garbage()
    }
}

/// The encoded size (keys and states) of `rows`; with `metrics`, also added to each step's
/// byte counter.
fn count_bytes(rows: &[Snapshot], metrics: bool) -> u64 {
    if !metrics {
        return rows
            .iter()
            .map(|r| (r.key.len() + r.state.as_ref().map_or(0, Vec::len)) as u64)
            .sum();
    }
    let mut total = 0u64;
    let mut current: Option<(&StepId, u64)> = None;
    let flush = |step: &StepId, n: u64| {
        families()
            .snapshot_bytes
            .with_label_values(&[step.as_str()])
            .inc_by(n);
    };
    for row in rows {
        let n = (row.key.len() + row.state.as_ref().map_or(0, Vec::len)) as u64;
        total += n;
        match &mut current {
            Some((step, sum)) if *step == &row.step_id => *sum += n,
            _ => {
                if let Some((step, sum)) = current.take() {
                    flush(step, sum);
                }
                current = Some((&row.step_id, n));
            }
        }
    }
    if let Some((step, sum)) = current {
        flush(step, sum);
    }
    total
}
