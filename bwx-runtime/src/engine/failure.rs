//! Fail-stop: the first error or panic of any worker stops every worker of the execution.
//!
//! Each worker thread registers its execution's [`Failure`] and its step table in a
//! thread-local. Operators record the step they are running with [`enter_step`] (one
//! thread-local write per activation), so the panic hook can name the step and worker.

use std::cell::{Cell, RefCell};
use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};

use crate::errors::FlowError;
use crate::flow::StepId;

/// Shared by all workers of one execution in this process.
#[derive(Default)]
pub(crate) struct Failure {
    /// Set by an error or an abort; an abort records no error.
    stop: AtomicBool,
    first: Mutex<Option<FlowError>>,
    /// The stop came from another process (so there is no need to tell the others).
    from_peer: AtomicBool,
    /// A worker of this process has told the other processes about the stop.
    told: AtomicBool,
}

impl Failure {
    /// Records an error (the first one wins) and tells every worker to stop.
    pub(crate) fn fail(&self, err: FlowError) {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(err);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    /// A source asked to abort the execution (no EOF, no error), as Bytewax's `AbortExecution`.
    pub(crate) fn abort(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Another process failed with `err` (or lost its connection to this one).
    pub(crate) fn fail_from_peer(&self, err: FlowError) {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() && !self.should_stop() {
            self.from_peer.store(true, Ordering::SeqCst);
            *first = Some(err);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Another process aborted the execution.
    pub(crate) fn abort_from_peer(&self) {
        if !self.should_stop() {
            self.from_peer.store(true, Ordering::SeqCst);
        }
        self.abort();
    }

    /// Whether the calling worker should tell the other processes that this one stopped
    /// early: true once per execution, when the stop started in this process.
    pub(crate) fn should_tell_peers(&self) -> bool {
        self.should_stop()
            && !self.from_peer.load(Ordering::SeqCst)
            && !self.told.swap(true, Ordering::SeqCst)
    }

    pub(crate) fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub(crate) fn error(&self) -> Option<FlowError> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct WorkerCtx {
    failure: Arc<Failure>,
    worker: usize,
    steps: Arc<[StepId]>,
}

thread_local! {
    static WORKER: RefCell<Option<WorkerCtx>> = const { RefCell::new(None) };
    static CURRENT_STEP: Cell<usize> = const { Cell::new(usize::MAX) };
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Silences panics on this thread from now on: timely tears a worker down after our code
/// returns, and with a peer gone that panics ("MergeQueue poisoned") with nothing to add to
/// the error already recorded.
pub(crate) fn silence_teardown() {
    QUIET.with(|q| q.set(true));
}

/// Runs `f`, catching a panic without printing it. For the clean-up of a failed cluster
/// execution, whose cause is already recorded: joining timely's network threads re-raises
/// their panics ("Send thread panic"), and telling peers may hit a closed connection.
pub(crate) fn quietly<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    let was = QUIET.with(|q| q.replace(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    outcome
}

/// Executions whose peers live in other processes: a failing timely network thread
/// (a lost connection) stops them.
static CLUSTERS: Mutex<Vec<Weak<Failure>>> = Mutex::new(Vec::new());

pub(crate) fn register_cluster(failure: &Arc<Failure>) {
    let mut clusters = CLUSTERS.lock().unwrap_or_else(|e| e.into_inner());
    clusters.retain(|w| w.strong_count() > 0);
    clusters.push(Arc::downgrade(failure));
}

/// Marks the current thread as worker `worker` of an execution, until the guard drops.
pub(crate) fn enter_worker(failure: Arc<Failure>, worker: usize, steps: Arc<[StepId]>) -> WorkerGuard {
    install_hook();
    WORKER.with(|w| {
        *w.borrow_mut() = Some(WorkerCtx {
            failure,
            worker,
            steps,
        })
    });
    CURRENT_STEP.with(|c| c.set(usize::MAX));
    WorkerGuard(())
}

pub(crate) struct WorkerGuard(());

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        WORKER.with(|w| *w.borrow_mut() = None);
    }
}

/// Records that the worker now runs the step at `index` of the flow.
#[inline]
pub(crate) fn enter_step(index: usize) {
    CURRENT_STEP.with(|c| c.set(index));
}

/// The step the current worker thread is running, for error messages.
pub(crate) fn current_step() -> String {
    let index = CURRENT_STEP.with(Cell::get);
    WORKER.with(|w| {
        w.borrow()
            .as_ref()
            .and_then(|ctx| ctx.steps.get(index).map(|s| s.to_string()))
            .unwrap_or_else(|| "<none>".to_string())
    })
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !on_panic(info) {
                previous(info);
            }
        }));
    });
}

/// Returns whether the panic was handled (recorded for a bwx worker).
fn on_panic(info: &PanicHookInfo<'_>) -> bool {
    if QUIET.with(Cell::get) {
        return true;
    }
    let message = panic_message(info);
    let handled = WORKER.with(|w| {
        let Ok(guard) = w.try_borrow() else { return false };
        let Some(ctx) = guard.as_ref() else { return false };
        let step = ctx.steps.get(CURRENT_STEP.with(Cell::get)).map(|s| s.to_string());
        ctx.failure.fail(FlowError::StepPanicked {
            step: step.unwrap_or_else(|| "<none>".to_string()),
            worker: ctx.worker,
            message: message.clone(),
        });
        true
    });
    if handled {
        return true;
    }
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("");
    if name.starts_with("timely:send") || name.starts_with("timely:recv") {
        let clusters = CLUSTERS.lock().unwrap_or_else(|e| e.into_inner());
        for failure in clusters.iter().filter_map(Weak::upgrade) {
            // The location is inside timely; the text says what happened.
            failure.fail_from_peer(FlowError::Cluster(format!(
                "lost the connection to another process (did it crash or get killed?): {}",
                panic_text(info)
            )));
        }
        return !clusters.is_empty();
    }
    false
}

fn panic_text(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_string())
}

fn panic_message(info: &PanicHookInfo<'_>) -> String {
    let text = panic_text(info);
    match info.location() {
        Some(loc) => format!("{text} (at {}:{})", loc.file(), loc.line()),
        None => text,
    }
}
