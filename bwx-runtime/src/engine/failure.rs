//! Fail-stop: the first error or panic of any worker stops every worker of the execution.
//!
//! Each worker thread registers its execution's [`Failure`] and its step table in a
//! thread-local. Operators record the step they are running with [`enter_step`] (one
//! thread-local write per activation), so the panic hook can name the step and worker.
//! Threads that carry a connection to a peer register with [`enter_network_thread`]: the
//! connection records why it failed before timely's thread panics, so that panic is silent.

use std::cell::{Cell, RefCell};
use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock, Weak};
use std::time::Instant;

use crate::errors::FlowError;
use crate::flow::StepId;

/// Executions of this process whose workers are not all running yet (see [`in_setup`]).
static SETTING_UP: AtomicUsize = AtomicUsize::new(0);

/// Whether an execution of this process is still being set up: connecting to its peers, or
/// building its dataflow (where a source may block, say opening a FIFO), so that no input
/// would see a graceful stop yet.
pub(crate) fn in_setup() -> bool {
    SETTING_UP.load(Ordering::SeqCst) > 0
}

/// Shared by all workers of one execution in this process.
pub(crate) struct Failure {
    /// Set by an error or an abort; an abort records no error.
    stop: AtomicBool,
    first: Mutex<Option<FlowError>>,
    /// The stop came from another process (so there is no need to tell the others).
    from_peer: AtomicBool,
    /// A worker of this process has told the other processes about the stop.
    told: AtomicBool,
    /// When the stop was first asked for.
    stopped_at: OnceLock<Instant>,
    /// Local workers that have not started running their dataflow yet.
    setting_up: AtomicUsize,
}

impl Failure {
    /// For an execution with `workers` worker threads in this process; it counts as being
    /// set up until each has called [`worker_running`] or the execution ended.
    pub(crate) fn new(workers: usize) -> Failure {
        if workers > 0 {
            SETTING_UP.fetch_add(1, Ordering::SeqCst);
        }
        Failure {
            stop: AtomicBool::new(false),
            first: Mutex::new(None),
            from_peer: AtomicBool::new(false),
            told: AtomicBool::new(false),
            stopped_at: OnceLock::new(),
            setting_up: AtomicUsize::new(workers),
        }
    }

    /// One local worker started running its dataflow.
    fn worker_running(&self) {
        let left = self
            .setting_up
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if left == Ok(1) {
            SETTING_UP.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The execution ended (however far it got).
    pub(crate) fn ended(&self) {
        if self.setting_up.swap(0, Ordering::SeqCst) > 0 {
            SETTING_UP.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn set_stop(&self) {
        self.stopped_at.get_or_init(Instant::now);
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Records an error (the first one wins) and tells every worker to stop.
    pub(crate) fn fail(&self, err: FlowError) {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(err);
        }
        self.set_stop();
    }

    /// A source asked to abort the execution (no EOF, no error), as Bytewax's `AbortExecution`.
    pub(crate) fn abort(&self) {
        self.set_stop();
    }

    /// Another process failed with `err` (or lost its connection to this one).
    pub(crate) fn fail_from_peer(&self, err: FlowError) {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() && !self.should_stop() {
            self.from_peer.store(true, Ordering::SeqCst);
            *first = Some(err);
        }
        self.set_stop();
    }

    /// The error, if this process's execution failed on its own (not because a peer did).
    pub(crate) fn error_from_here(&self) -> Option<FlowError> {
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        first.clone().filter(|_| !self.from_peer.load(Ordering::SeqCst))
    }

    /// When the execution was asked to stop, if it was.
    pub(crate) fn stopped_at(&self) -> Option<Instant> {
        self.stopped_at.get().copied()
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

/// A thread that carries a connection: whose execution, and to which peer.
struct NetworkCtx {
    failure: Weak<Failure>,
    peer: String,
}

thread_local! {
    static WORKER: RefCell<Option<WorkerCtx>> = const { RefCell::new(None) };
    static CURRENT_STEP: Cell<usize> = const { Cell::new(usize::MAX) };
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static NETWORK: RefCell<Option<NetworkCtx>> = const { RefCell::new(None) };
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

/// Marks the current thread as carrying the connection to `peer` for the execution of
/// `failure`: a panic on it stops that execution (timely's network threads panic when their
/// connection fails) and is not printed. Cheap after the first call on a thread.
pub(crate) fn enter_network_thread(failure: &Arc<Failure>, peer: &str) {
    NETWORK.with(|n| {
        let Ok(mut slot) = n.try_borrow_mut() else { return };
        if slot.is_none() {
            install_hook();
            *slot = Some(NetworkCtx {
                failure: Arc::downgrade(failure),
                peer: peer.to_string(),
            });
        }
    });
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

/// Records that the calling worker has built its dataflow and runs it: a graceful stop now
/// reaches its inputs (see [`in_setup`]).
pub(crate) fn worker_running() {
    WORKER.with(|w| {
        if let Ok(ctx) = w.try_borrow()
            && let Some(ctx) = ctx.as_ref()
        {
            ctx.failure.worker_running();
        }
    });
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
    NETWORK.with(|n| {
        let Ok(slot) = n.try_borrow() else { return false };
        let Some(ctx) = slot.as_ref() else { return false };
        if let Some(failure) = ctx.failure.upgrade() {
            // The connection usually recorded a better cause already; the first one wins.
            failure.fail_from_peer(FlowError::Cluster(format!(
                "the connection to {} failed: {}",
                ctx.peer,
                panic_text(info)
            )));
        }
        true
    })
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
