//! [`Meter`]: what one internal operator of a step counts, on one worker.
//!
//! A step's build function asks the build context for the step's [`MeterPlan`] and picks
//! what each of its operators records: the operator that takes the step's input counts
//! items in, the one that makes its output counts items out, and the one that runs the
//! user's code times its batches. The plan hands the input count and the output count to
//! one operator each: the first to ask gets it, so a step that prepares its input before
//! a shared operator (a stateful one) counts its input there, and one that splits a shared
//! operator's output claims the output count before building it. Label values are resolved here, once per step and worker; at run time a
//! meter only adds to resolved counters, once per batch. Without a monitor (or with one
//! that keeps no metrics) every field is `None` and a batch costs a few untaken branches.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use prometheus::{Histogram, IntCounter, IntGauge};

use super::families::families;
use super::status::{Monitor, StepSlot};
use crate::flow::StepId;

/// Which duration histogram an operator's timed calls go to.
#[derive(Clone, Copy, Debug)]
#[allow(clippy::enum_variant_names)] // Named after Bytewax's calls, which all take batches.
pub(crate) enum Timing {
    /// `bytewax_inp_part_next_batch_duration_seconds` (with the batch-size histogram).
    NextBatch,
    /// `bytewax_out_part_write_batch_duration_seconds`.
    WriteBatch,
    /// `bytewax_flat_map_batch_duration_seconds`.
    FlatMapBatch,
    /// `bytewax_stateful_batch_on_batch_duration_seconds`.
    OnBatch,
}

/// Names the spans of a step's calls.
struct Tag {
    step_id: StepId,
    worker: usize,
}

/// What one operator records.
#[derive(Clone, Default)]
pub(crate) struct Meter {
    /// Set on meters that time calls: they also open a span per call.
    tag: Option<(Arc<Tag>, Timing)>,
    inp: Option<IntCounter>,
    out: Option<IntCounter>,
    time: Option<Histogram>,
    sizes: Option<Histogram>,
    late: Option<IntCounter>,
    keys: Option<IntGauge>,
    on_notify: Option<Histogram>,
    on_eof: Option<Histogram>,
    notify_at: Option<Histogram>,
    snapshot: Option<Histogram>,
    step: Option<Arc<StepSlot>>,
}

/// How a step's build function makes the meters of its operators.
pub(crate) struct MeterPlan {
    tag: Arc<Tag>,
    labels: Option<[String; 2]>,
    step: Option<Arc<StepSlot>>,
    in_claimed: Cell<bool>,
    out_claimed: Cell<bool>,
}

impl MeterPlan {
    /// The plan for `step` on worker `worker`; `monitor` is the run's, if any.
    pub(crate) fn new(monitor: Option<&Monitor>, step: &StepId, worker: usize) -> MeterPlan {
        let tag = Arc::new(Tag {
            step_id: step.clone(),
            worker,
        });
        match monitor {
            None => MeterPlan {
                tag,
                labels: None,
                step: None,
                in_claimed: Cell::new(false),
                out_claimed: Cell::new(false),
            },
            Some(m) => {
                let slot = m.step(step, worker);
                MeterPlan {
                    tag,
                    labels: m
                        .metrics_enabled()
                        .then(|| [step.to_string(), worker.to_string()]),
                    step: Some(slot),
                    in_claimed: Cell::new(false),
                    out_claimed: Cell::new(false),
                }
            }
        }
    }

    /// A meter that records nothing but the step's frontier.
    pub(crate) fn meter(&self) -> Meter {
        Meter {
            step: self.step.clone(),
            ..Meter::default()
        }
    }

    fn labels(&self) -> Option<[&str; 2]> {
        self.labels.as_ref().map(|[s, w]| [s.as_str(), w.as_str()])
    }

    /// The meter of an input step's operator: items out, `next_batch` times and sizes,
    /// and the worker's epoch.
    pub(crate) fn source_meter(&self) -> Meter {
        self.meter().counting_out(self).timing(self, Timing::NextBatch)
    }

    /// The meter of an output step's operator: items in and `write_batch` times.
    pub(crate) fn sink_meter(&self) -> Meter {
        self.meter().counting_in(self).timing(self, Timing::WriteBatch)
    }

    /// The meter of a keyed stateful operator: items in and out (unless other operators
    /// of the step count them), and the times of the step's logic.
    pub(crate) fn keyed_meter(&self) -> Meter {
        self.meter()
            .counting_in(self)
            .counting_out(self)
            .timing(self, Timing::OnBatch)
    }

    /// Whether the operator asking may count the step's input (only the first may).
    fn claim_in(&self) -> bool {
        !self.in_claimed.replace(true)
    }

    /// Whether the operator asking may count the step's output (only the first may).
    fn claim_out(&self) -> bool {
        !self.out_claimed.replace(true)
    }
}

impl Meter {
    /// Also counts the batches it is given as the step's input, unless another operator
    /// of the step already does.
    pub(crate) fn counting_in(mut self, plan: &MeterPlan) -> Meter {
        if plan.claim_in() {
            self.inp = plan.labels().map(|l| families().item_inp.with_label_values(&l));
        }
        self
    }

    /// Also counts what it emits as the step's output, unless another operator of the step
    /// already does.
    pub(crate) fn counting_out(mut self, plan: &MeterPlan) -> Meter {
        if plan.claim_out() {
            self.out = plan.labels().map(|l| families().item_out.with_label_values(&l));
        }
        self
    }

    /// Also times the user's code into `timing`'s histogram.
    pub(crate) fn timing(mut self, plan: &MeterPlan, timing: Timing) -> Meter {
        self.tag = Some((plan.tag.clone(), timing));
        let f = families();
        let family = match timing {
            Timing::NextBatch => &f.next_batch_duration,
            Timing::WriteBatch => &f.write_batch_duration,
            Timing::FlatMapBatch => &f.flat_map_batch_duration,
            Timing::OnBatch => &f.on_batch_duration,
        };
        self.time = plan.labels().map(|l| family.with_label_values(&l));
        if let Timing::NextBatch = timing {
            self.sizes = plan.labels().map(|l| f.next_batch_size.with_label_values(&l));
        }
        if let Timing::OnBatch = timing {
            let hist =
                |family: &prometheus::HistogramVec| plan.labels().map(|l| family.with_label_values(&l));
            self.on_notify = hist(&f.on_notify_duration);
            self.on_eof = hist(&f.on_eof_duration);
            self.notify_at = hist(&f.notify_at_duration);
            self.snapshot = hist(&f.snapshot_duration);
            self.keys = plan.labels().map(|l| f.keys.with_label_values(&l));
        }
        self
    }

    /// Also counts the late items of a windowing step.
    pub(crate) fn counting_late(mut self, plan: &MeterPlan) -> Meter {
        self.late = plan.labels().map(|l| families().late_items.with_label_values(&l));
        self
    }

    /// Whether the meter counts items in or out.
    pub(crate) fn counts_items(&self) -> bool {
        self.inp.is_some() || self.out.is_some()
    }

    /// `n` items came into the step.
    #[inline]
    pub(crate) fn items_in(&self, n: usize) {
        if let Some(c) = &self.inp {
            c.inc_by(n as u64);
        }
    }

    /// `n` items left the step.
    #[inline]
    pub(crate) fn items_out(&self, n: usize) {
        if let Some(c) = &self.out {
            c.inc_by(n as u64);
        }
    }

    /// `n` items were late for their window.
    #[inline]
    pub(crate) fn late_items(&self, n: usize) {
        if let Some(c) = &self.late {
            c.inc_by(n as u64);
        }
    }

    /// The step holds state for `n` keys (`None`: its store does not count them).
    #[inline]
    pub(crate) fn keys(&self, n: Option<usize>) {
        if let (Some(g), Some(n)) = (&self.keys, n) {
            g.set(n as i64);
        }
    }

    /// The step works on `epoch` (`None`: its input ended).
    #[inline]
    pub(crate) fn frontier(&self, epoch: Option<u64>) {
        if let Some(s) = &self.step {
            s.set_frontier(epoch);
        }
    }

    /// An input step is in `epoch`: sets the step's frontier and the worker's epoch.
    #[inline]
    pub(crate) fn input_epoch(&self, epoch: u64) {
        if let Some(s) = &self.step {
            s.set_frontier(Some(epoch));
            s.worker.input_epoch(epoch);
        }
    }

    /// Runs `f`, timing it into the meter's main histogram, in a span named after the
    /// call (`next_batch`, `write_batch`, `flat_map_batch` or `on_batch`).
    #[inline]
    pub(crate) fn time<R>(&self, f: impl FnOnce() -> R) -> R {
        let span = self.span(None);
        let _entered = span.enter();
        observe(&self.time, f)
    }

    /// Runs `f` (an `on_notify` call), timing it.
    #[inline]
    pub(crate) fn time_notify<R>(&self, f: impl FnOnce() -> R) -> R {
        let span = self.span(Some(Call::OnNotify));
        let _entered = span.enter();
        observe(&self.on_notify, f)
    }

    /// Runs `f` (an `on_eof` call), timing it.
    #[inline]
    pub(crate) fn time_eof<R>(&self, f: impl FnOnce() -> R) -> R {
        let span = self.span(Some(Call::OnEof));
        let _entered = span.enter();
        observe(&self.on_eof, f)
    }

    /// Runs `f` (a `notify_at` call), timing it.
    #[inline]
    pub(crate) fn time_notify_at<R>(&self, f: impl FnOnce() -> R) -> R {
        observe(&self.notify_at, f)
    }

    /// Runs `f` (taking a snapshot), timing it.
    #[inline]
    pub(crate) fn time_snapshot<R>(&self, f: impl FnOnce() -> R) -> R {
        let span = self.span(Some(Call::Snapshot));
        let _entered = span.enter();
        observe(&self.snapshot, f)
    }

    /// The span of one call: disabled (and nearly free) unless a subscriber wants
    /// `bwx::step` spans at debug level.
    #[inline]
    fn span(&self, call: Option<Call>) -> tracing::Span {
        let Some((tag, timing)) = &self.tag else {
            return tracing::Span::none();
        };
        macro_rules! step_span {
            ($name:literal) => {
                tracing::debug_span!(target: "bwx::step", $name, step_id = %tag.step_id, worker_index = tag.worker as i64)
            };
        }
        match (call, timing) {
            (Some(Call::OnNotify), _) => step_span!("on_notify"),
            (Some(Call::OnEof), _) => step_span!("on_eof"),
            (Some(Call::Snapshot), _) => step_span!("snapshot"),
            (None, Timing::NextBatch) => step_span!("next_batch"),
            (None, Timing::WriteBatch) => step_span!("write_batch"),
            (None, Timing::FlatMapBatch) => step_span!("flat_map_batch"),
            (None, Timing::OnBatch) => step_span!("on_batch"),
        }
    }

    /// A source partition returned a batch of `n` items, which the step emits.
    #[inline]
    pub(crate) fn source_batch(&self, n: usize) {
        if let Some(h) = &self.sizes {
            h.observe(n as f64);
        }
        self.items_out(n);
    }
}

/// The other calls of a stateful step.
#[derive(Clone, Copy)]
enum Call {
    OnNotify,
    OnEof,
    Snapshot,
}

#[inline]
fn observe<R>(histogram: &Option<Histogram>, f: impl FnOnce() -> R) -> R {
    match histogram {
        Some(h) => {
            let started = Instant::now();
            let result = f();
            h.observe(started.elapsed().as_secs_f64());
            result
        }
        None => f(),
    }
}
