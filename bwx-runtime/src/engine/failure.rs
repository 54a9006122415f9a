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
    stop: AtomicBool,
    aborted: AtomicBool,
    first: Mutex<Option<FlowError>>,
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
        self.aborted.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
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
            failure.fail(FlowError::Setup(format!(
                "lost the connection to another process: {message}"
            )));
        }
        return !clusters.is_empty();
    }
    false
}

fn panic_message(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_string());
    match info.location() {
        Some(loc) => format!("{text} (at {}:{})", loc.file(), loc.line()),
        None => text,
    }
}
