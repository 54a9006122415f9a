//! Making epochs durable: snapshots travel to the worker that owns their recovery
//! partition, which writes them off the worker thread and reports back; the cluster's
//! durable frontier then flows to every sink and source through a feedback edge.
//!
//! The operator here holds a capability at the first epoch its partitions do not hold
//! yet. Timely's progress tracking is global, so the frontier of its output, seen by any
//! worker, is the least over all partitions: the epochs before it are durable everywhere,
//! and sinks and sources commit them ([`super::epochs`]). An epoch counts as complete at an owner once
//! its snapshot input frontier passes it: every operator of every worker closed the epoch
//! and sent its snapshots at the epoch's own time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Concatenate;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::progress::Antichain;
use timely::scheduling::SyncActivator;

use crate::errors::FlowError;
use crate::recovery::{PartitionWriter, Progress, RecoveryError, RecoveryStore, ResumePlan, Snapshot};

use super::failure::Failure;
use super::{BuildCtx, TStream};

/// Work for a writer thread.
enum Job {
    /// Store these rows, then this progress.
    Write(Vec<Snapshot>, Progress),
    /// The cluster's durable frontier moved.
    Durable(u64),
}

/// What a writer thread reports back.
#[derive(Default)]
struct Report {
    /// The progress last made durable.
    done: Option<Progress>,
    error: Option<RecoveryError>,
}

/// Attaches the durability operator to the snapshot streams of this worker; returns the
/// stream whose frontier is the cluster's durable frontier (for the feedback edge).
/// `writers[p]` is the worker that writes partition `p`.
pub(crate) fn attach<'s>(
    ctx: &BuildCtx<'s>,
    streams: Vec<TStream<'s, Snapshot>>,
    durable_in: TStream<'s, ()>,
    store: Arc<dyn RecoveryStore>,
    plan: &ResumePlan,
    writers: &[usize],
) -> Result<TStream<'s, ()>, FlowError> {
    let me = ctx.worker_index();
    let workers = ctx.worker_count();
    let start = ctx.config.start_epoch;
    let failure = ctx.failure.clone();
    let owned: Vec<usize> = (0..writers.len()).filter(|p| writers[*p] == me).collect();
    let writer = if owned.is_empty() {
        None
    } else {
        Some(store.open_writer(plan, owned, workers)?)
    };
    let route_store = store.clone();
    let route_to: Vec<u64> = writers.iter().map(|w| *w as u64).collect();
    let route = Exchange::new(move |s: &Snapshot| route_to[route_store.partition_of(&s.step_id, &s.key)]);
    let snapshots = ctx.scope.concatenate(streams);

    let mut builder = OperatorBuilder::new("bwx.durability".to_string(), ctx.scope);
    let address = builder.operator_info().address;
    let activator = ctx.scope.worker().sync_activator_for(address.to_vec());
    let mut input = builder.new_input(snapshots, route);
    let (_, durable_out) = builder.new_output::<Vec<()>>();
    let mut cluster = builder.new_input_connection(durable_in, Pipeline, [(0, Antichain::new())]);

    let mut thread = match writer {
        Some(writer) => Some(WriterThread::spawn(writer, activator, me)?),
        None => None,
    };
    builder.build(move |mut caps| {
        let mut cap = caps.pop();
        if let Some(c) = cap.as_mut() {
            c.downgrade(&start);
        }
        if thread.is_none() {
            cap = None;
        }
        // Snapshots that arrived, by epoch, until their epoch is complete here.
        let mut pending: BTreeMap<u64, Vec<Snapshot>> = BTreeMap::new();
        // The progress last handed to the writer, and the last frontier of it.
        let mut sent: Option<Progress> = None;
        let mut sent_until = start;
        let mut heard = start;
        move |frontiers| {
            input.for_each(|_, data| {
                for snap in data.drain(..) {
                    pending.entry(snap.epoch).or_default().push(snap);
                }
            });
            cluster.for_each(|_, data| data.clear());
            let frontier = frontiers[0].frontier().first().copied();
            let Some(writer) = thread.as_mut() else { return };
            if failure.should_stop() {
                return;
            }
            let cluster_frontier = frontiers[1].frontier().first().copied();
            if cap.is_none() {
                // This writer is complete; once every partition is, the last frontier it
                // wrote is a garbage-collection point for its partitions too.
                if cluster_frontier.is_none()
                    && let Some(done) = thread.take()
                {
                    done.send(Job::Durable(sent_until));
                    if let Err(e) = done.finish() {
                        fail(&failure, e, me);
                    }
                }
                return;
            }
            let progress = match frontier {
                Some(f) => Progress::Until(f),
                None => Progress::Complete { until: sent_until },
            };
            if sent != Some(progress) && !matches!(sent, Some(Progress::Complete { .. })) {
                let rows = match progress {
                    Progress::Until(f) => {
                        sent_until = f;
                        let later = pending.split_off(&f);
                        std::mem::replace(&mut pending, later)
                    }
                    Progress::Complete { .. } => std::mem::take(&mut pending),
                };
                writer.send(Job::Write(rows.into_values().flatten().collect(), progress));
                sent = Some(progress);
            }
            if let Some(f) = cluster_frontier
                && f > heard
            {
                heard = f;
                writer.send(Job::Durable(f));
            }
            match writer.take_report() {
                Report { error: Some(e), .. } => fail(&failure, e, me),
                Report {
                    done: Some(Progress::Until(f)),
                    ..
                } => {
                    if let Some(c) = cap.as_mut().filter(|c| *c.time() < f) {
                        c.downgrade(&f);
                    }
                }
                Report {
                    done: Some(Progress::Complete { .. }),
                    ..
                } => cap = None,
                Report { done: None, .. } => {}
            }
        }
    });
    Ok(durable_out)
}

fn fail(failure: &Failure, err: RecoveryError, worker: usize) {
    tracing::debug!(worker, error = %err, "recovery: a partition write failed");
    failure.fail(FlowError::Recovery(err));
}

/// A writer on a thread of its own, with the channel to it and its report.
struct WriterThread {
    jobs: Option<Sender<Job>>,
    report: Arc<Mutex<Report>>,
    /// Set when the execution stopped early: the thread skips its last collection.
    abandoned: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl WriterThread {
    fn spawn(
        writer: Box<dyn PartitionWriter>,
        activator: SyncActivator,
        worker: usize,
    ) -> Result<Self, FlowError> {
        let (jobs, rx) = mpsc::channel();
        let report = Arc::new(Mutex::new(Report::default()));
        let shared = report.clone();
        let abandoned = Arc::new(AtomicBool::new(false));
        let stop_early = abandoned.clone();
        let handle = std::thread::Builder::new()
            .name(format!("bwx-recovery-writer-{worker}"))
            .spawn(move || run(writer, rx, &shared, &stop_early, &activator))
            .map_err(|e| {
                FlowError::Setup(format!(
                    "cannot start the recovery writer thread of worker {worker}: {e}"
                ))
            })?;
        Ok(WriterThread {
            jobs: Some(jobs),
            report,
            abandoned,
            handle: Some(handle),
        })
    }

    fn send(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            // A send fails only when the thread stopped; its error is in the report.
            let _ = jobs.send(job);
        }
    }

    fn take_report(&self) -> Report {
        std::mem::take(&mut *self.report.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Closes the channel and waits for the thread.
    fn finish(mut self) -> Result<(), RecoveryError> {
        self.jobs = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(RecoveryError::Usage("the recovery writer thread panicked".into())),
            _ => Ok(()),
        }
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        // An execution that stopped early waits for the write under way, but not for garbage
        // collection: a write left running would race the next execution's resume plan.
        self.abandoned.store(true, Ordering::Relaxed);
        self.jobs = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// How long an idle writer waits for work before it looks for garbage again.
const IDLE: Duration = Duration::from_millis(100);

/// The writer thread: writes as they come (several waiting ones at once), and collects
/// garbage while there is nothing to write.
fn run(
    mut writer: Box<dyn PartitionWriter>,
    jobs: Receiver<Job>,
    report: &Mutex<Report>,
    abandoned: &AtomicBool,
    wake: &SyncActivator,
) {
    let outcome = (|| -> Result<(), RecoveryError> {
        loop {
            let job = if writer.has_garbage() {
                match jobs.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => {
                        writer.collect_garbage()?;
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            } else {
                match jobs.recv_timeout(IDLE) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            match job {
                Job::Durable(frontier) => writer.durable(frontier)?,
                Job::Write(rows, progress) => {
                    let (rows, progress) = gather(rows, progress, &jobs, &mut *writer)?;
                    writer.write(rows, progress)?;
                    report.lock().unwrap_or_else(|e| e.into_inner()).done = Some(progress);
                    // A failed activation means the dataflow is gone: nothing waits.
                    let _ = wake.activate();
                }
            }
        }
        // The execution is over: the collection it asked for finishes before the thread.
        while writer.has_garbage() && !abandoned.load(Ordering::Relaxed) {
            writer.collect_garbage()?;
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        report.lock().unwrap_or_else(|e| e.into_inner()).error = Some(e);
        let _ = wake.activate();
    }
}

/// Takes every write already waiting behind `rows` into one (one transaction per
/// partition instead of several). Every row is kept: another partition, restored from a
/// backup or slower to write, can make a resume start at any of the epochs in between.
fn gather(
    mut rows: Vec<Snapshot>,
    mut progress: Progress,
    jobs: &Receiver<Job>,
    writer: &mut dyn PartitionWriter,
) -> Result<(Vec<Snapshot>, Progress), RecoveryError> {
    while let Ok(job) = jobs.try_recv() {
        match job {
            Job::Write(more, next) => {
                rows.extend(more);
                progress = next;
            }
            Job::Durable(frontier) => writer.durable(frontier)?,
        }
    }
    Ok((rows, progress))
}
