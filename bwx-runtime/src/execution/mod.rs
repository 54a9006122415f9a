//! Running a flow: on the calling thread, on worker threads, or as one process of a cluster.
//!
//! Every entry point checks the flow first, runs it until every input is exhausted (EOF),
//! and fails fast: the first panic or connector error on any worker stops every worker,
//! and the error names the step and the worker.

mod cluster;
mod handshake;
mod heartbeat;
mod network;
pub(crate) mod reserved_ports;
mod secret;
mod wire;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[cfg(feature = "cli")]
pub(crate) use heartbeat::{ENV_SUPERVISOR_REPORT, tell_supervisor};
pub use secret::{ClusterSecret, ENV_SECRET, ENV_SECRET_FILE};

use crate::engine::failure::{self, Failure};
use crate::engine::run::run_worker;
use crate::engine::{Control, ExecConfig};
use crate::errors::FlowError;
use crate::flow::Dataflow;
use crate::monitor::Monitor;
use crate::monitor::snapshots::MeasuredRecovery;
use crate::recovery::RecoveryStore;

/// The default epoch length when recovery is off (as in Bytewax).
pub const DEFAULT_EPOCH_INTERVAL: Duration = Duration::from_secs(10);
/// How long a process waits by default for its peers to connect at start-up.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a peer may stay silent by default before it counts as stopped, hung or cut off.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the processes of a cluster connect to and watch each other (see
/// [`cluster_main`]). Ignored when a flow runs in one process.
///
/// ```
/// use std::time::Duration;
/// use bwx::{ClusterOptions, ClusterSecret, RunConfig};
///
/// let options = ClusterOptions::default()
///     .secret(ClusterSecret::new("a long shared secret for this cluster").unwrap())
///     .encrypt(true)
///     .bind("0.0.0.0")
///     .heartbeat_timeout(Duration::from_secs(5));
/// let config = RunConfig::default().cluster(options);
/// assert!(config.cluster.encrypt);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterOptions {
    /// The secret every process proves before its connections reach the dataflow; `None`
    /// authenticates nothing (and warns when an address is not a loopback one).
    pub secret: Option<ClusterSecret>,
    /// Seal every byte between processes (ChaCha20-Poly1305); needs a secret.
    pub encrypt: bool,
    /// Where to listen: a host or IP, with or without a port (without one, this process's
    /// port); `None` listens on this process's own address.
    pub bind: Option<String>,
    /// How long to wait for every peer at start-up before failing with the peers' names.
    pub startup_timeout: Duration,
    /// How long a peer may send no heartbeat before the cluster stops naming it.
    pub heartbeat_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            secret: None,
            encrypt: false,
            bind: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
        }
    }
}

impl ClusterOptions {
    /// Sets the cluster secret.
    pub fn secret(mut self, secret: ClusterSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Turns sealing of the connections on or off.
    pub fn encrypt(mut self, on: bool) -> Self {
        self.encrypt = on;
        self
    }

    /// Sets the address to listen on.
    pub fn bind(mut self, address: impl Into<String>) -> Self {
        self.bind = Some(address.into());
        self
    }

    /// Sets the start-up timeout.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Sets the heartbeat timeout.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }
}

/// How to run a flow, beyond where.
#[derive(Clone)]
pub struct RunConfig {
    /// How often inputs start a new epoch; zero starts one after every source batch.
    pub epoch_interval: Duration,
    /// Where snapshots go and resume state comes from; `None` turns recovery off.
    pub recovery: Option<Arc<dyn RecoveryStore>>,
    /// Set to stop the flow gracefully: inputs stop, the last epoch closes, a final
    /// snapshot is written, and the run returns `Ok` (see [`RunConfig::stop_on_signals`]).
    /// In a cluster, a stop in one process stops every process.
    pub stop: Arc<AtomicBool>,
    /// Whether stored state that matches no step or partition of the flow is dropped with
    /// a warning, instead of refusing to resume ([`FlowError::UnmatchedState`]).
    pub drop_unmatched_state: bool,
    /// How the processes of a cluster connect and watch each other.
    pub cluster: ClusterOptions,
    /// Counts, times and tracks the run; `None` keeps no metrics (see [`crate::monitor`]).
    pub monitor: Option<Monitor>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            epoch_interval: DEFAULT_EPOCH_INTERVAL,
            recovery: None,
            stop: Arc::default(),
            drop_unmatched_state: false,
            cluster: ClusterOptions::default(),
            monitor: None,
        }
    }
}

impl std::fmt::Debug for RunConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunConfig")
            .field("epoch_interval", &self.epoch_interval)
            .field("recovery", &self.recovery.is_some())
            .field("cluster", &self.cluster)
            .field("monitor", &self.monitor)
            .finish()
    }
}

impl RunConfig {
    /// Sets the epoch interval. Zero closes an epoch after every source batch (Bytewax's
    /// `-s 0`): with recovery, nothing already read is lost to an abort, at the cost of a
    /// snapshot per batch.
    pub fn epoch_interval(mut self, interval: Duration) -> Self {
        self.epoch_interval = interval;
        self
    }

    /// Sets how the processes of a cluster connect and watch each other.
    pub fn cluster(mut self, options: ClusterOptions) -> Self {
        self.cluster = options;
        self
    }

    /// Counts items, times batches and tracks the run's phase and epochs in `monitor`
    /// (which [`crate::api`] serves); see [`Monitor`].
    pub fn monitor(mut self, monitor: Monitor) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// Turns recovery on with the given store.
    pub fn recovery(mut self, store: Arc<dyn RecoveryStore>) -> Self {
        self.recovery = Some(store);
        self
    }

    /// Drops stored state that matches no step or partition of the flow (a renamed or
    /// removed step, a file no longer read) with a warning, instead of refusing to resume.
    pub fn drop_unmatched_state(mut self, drop: bool) -> Self {
        self.drop_unmatched_state = drop;
        self
    }

    /// Uses `flag` as the graceful-stop flag: storing `true` stops the flow at the next
    /// activation of each input, with a final snapshot, and the run returns `Ok`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::AtomicBool;
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(0..1_000_000u64)).output("out", out.clone());
    /// let stop = Arc::new(AtomicBool::new(true));
    /// bwx::run_main_with(&flow, RunConfig::default().stop_flag(stop)).unwrap();
    /// assert!(out.take().len() < 1_000_000);
    /// ```
    pub fn stop_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = flag;
        self
    }

    /// Stops the flow gracefully on SIGINT or SIGTERM (Bytewax #268): inputs stop, a
    /// final snapshot is written, the run returns `Ok` and the process can exit 0. In a
    /// cluster every process stops so. A second signal while stopping exits the process at
    /// once with status 1, and so does the first one while the flow is still being set up
    /// (connecting to its peers, or building its steps: a source may block there, say
    /// opening a FIFO), when there is nothing to snapshot yet.
    pub fn stop_on_signals(self) -> Result<Self, FlowError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        for signal in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag as it was before this signal set it.
            signal_hook::flag::register_conditional_shutdown(signal, 1, self.stop.clone())
                .and_then(|_| signal_hook::flag::register(signal, self.stop.clone()))
                .map_err(|e| FlowError::Setup(format!("cannot handle signal {signal}: {e}")))?;
        }
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .map_err(|e| FlowError::Setup(format!("cannot handle stop signals: {e}")))?;
        std::thread::Builder::new()
            .name("bwx:signals".to_string())
            .spawn(move || {
                for signal in signals.forever() {
                    if failure::in_setup() {
                        eprintln!(
                            "error: stopped by signal {signal} while the flow was being set up, \
                             before it processed anything"
                        );
                        std::process::exit(1);
                    }
                }
            })
            .map_err(|e| FlowError::Setup(format!("cannot start the signal thread: {e}")))?;
        Ok(self)
    }
}

impl ExecConfig {
    /// The settings of an execution with `workers_per_process` worker threads per process.
    fn new(config: RunConfig, workers_per_process: usize) -> Self {
        // The monitor learns where the run resumes from the plan the processes agree on.
        let recovery = match (config.recovery, &config.monitor) {
            (Some(store), Some(monitor)) => Some(MeasuredRecovery::wrap(store, monitor.clone())),
            (store, _) => store,
        };
        ExecConfig {
            epoch_interval: config.epoch_interval,
            // Without recovery the first epoch is 1, as in Bytewax; with it, the run starts
            // where the cluster agrees to resume.
            start_epoch: crate::recovery::FIRST_EPOCH,
            workers_per_process: workers_per_process.max(1),
            recovery,
            // Alone, a process stops its inputs as soon as it knows it is stopping.
            stopping: config.stop.clone(),
            stop: config.stop,
            drop_unmatched_state: config.drop_unmatched_state,
            monitor: config.monitor,
        }
    }

    /// Records in the monitor how the run ended.
    fn report(&self, outcome: &Result<(), FlowError>) {
        let Some(monitor) = &self.monitor else { return };
        let stopped = self.stop.load(Ordering::SeqCst);
        match outcome {
            Err(err) => monitor.ended(Some(err.to_string()), None),
            Ok(()) if stopped => monitor.ended(None, Some("stopped before the end of its input".into())),
            Ok(()) => monitor.ended(None, None),
        }
    }
}

/// Runs a flow on the calling thread with the default configuration.
///
/// ```
/// use bwx::prelude::*;
/// use bwx::testing::{TestingSink, TestingSource};
///
/// let flow = Dataflow::new("f");
/// let out = TestingSink::new();
/// flow.input("inp", TestingSource::new(vec![1])).output("out", out.clone());
/// bwx::run_main(&flow).unwrap();
/// assert_eq!(out.take(), vec![1]);
/// ```
pub fn run_main(flow: &Dataflow) -> Result<(), FlowError> {
    run_main_with(flow, RunConfig::default())
}

/// Runs a flow on the calling thread.
pub fn run_main_with(flow: &Dataflow, config: RunConfig) -> Result<(), FlowError> {
    flow.check()?;
    let failure = Arc::new(Failure::new(1));
    let config = Arc::new(ExecConfig::new(config, 1));
    let flow = flow.clone();
    let outcome = failure.clone();
    let run_config = config.clone();
    timely::execute::execute_directly(move |worker| run_guarded(worker, &flow, run_config, outcome, false));
    let result = finish(&failure);
    config.report(&result);
    result
}

/// Runs a flow on `workers` threads of this process.
///
/// ```
/// use bwx::prelude::*;
/// use bwx::testing::{TestingSink, TestingSource};
///
/// let flow = Dataflow::new("f");
/// let out = TestingSink::new();
/// flow.input("inp", TestingSource::new(vec![("a".to_string(), 1), ("b".to_string(), 2), ("a".to_string(), 3)]))
///     .reduce_final("sum", |x, y| x + y)
///     .output("out", out.clone());
/// bwx::run_workers(&flow, 3, RunConfig::default()).unwrap();
/// let mut got = out.take();
/// got.sort();
/// assert_eq!(got, vec![("a".to_string(), 4), ("b".to_string(), 2)]);
/// ```
pub fn run_workers(flow: &Dataflow, workers: usize, config: RunConfig) -> Result<(), FlowError> {
    if workers <= 1 {
        return run_main_with(flow, config);
    }
    execute(flow, Comm::Threads(workers), config)
}

/// Runs this process's part of a flow on a cluster of processes.
///
/// `addresses` lists `host:port` of every process, `process_id` is this one's index in it,
/// and every process runs `workers_per_process` worker threads. With no addresses (or
/// one), this is the only process: it runs `workers_per_process` workers on threads, as
/// Bytewax's `cluster_main` does, and `process_id` must be 0. All processes must run the
/// same flow with the same arguments: the processes greet each other with the flow id,
/// the number of processes and the workers per process, and refuse a peer where these
/// differ (with an error saying which). Other connections to the port are dropped.
///
/// Fail-stop holds across processes: when a step panics or a connector fails in one
/// process, that process tells the others, and every process returns the same error
/// (naming the step and worker). A process that dies without a word (killed) is noticed by
/// its peers when the connection drops, and one that stops answering (stopped, hung, cut off
/// by the network) when its heartbeats stop for [`ClusterOptions::heartbeat_timeout`]; they
/// return [`FlowError::Cluster`] naming it.
///
/// [`RunConfig::cluster`] says how the processes authenticate each other (a shared
/// secret), where they listen, and the start-up and heartbeat timeouts; see the
/// `network` module's documentation in the source for the protocol.
///
/// To run several processes of a flow inside a test, see [`crate::testing::LocalCluster`].
pub fn cluster_main(
    flow: &Dataflow,
    addresses: Vec<String>,
    process_id: usize,
    workers_per_process: usize,
    config: RunConfig,
) -> Result<(), FlowError> {
    if addresses.len() <= 1 {
        if process_id != 0 {
            return Err(FlowError::Setup(format!(
                "process id {process_id} is out of range: with {} address{} this is the only process, 0",
                addresses.len(),
                if addresses.is_empty() { "es" } else { "" }
            )));
        }
        return run_workers(flow, workers_per_process, config);
    }
    if process_id >= addresses.len() {
        return Err(FlowError::Setup(format!(
            "process id {process_id} is out of range for {} addresses",
            addresses.len()
        )));
    }
    if let Some(monitor) = &config.monitor {
        monitor.set_process(process_id, addresses.len());
    }
    let comm = Comm::Cluster {
        addresses,
        process: process_id,
        threads: workers_per_process.max(1),
    };
    execute(flow, comm, config)
}

/// Where the workers of an execution are.
enum Comm {
    /// Threads of this process.
    Threads(usize),
    /// Threads of this process and of other processes.
    Cluster {
        addresses: Vec<String>,
        process: usize,
        threads: usize,
    },
}

fn execute(flow: &Dataflow, comm: Comm, config: RunConfig) -> Result<(), FlowError> {
    flow.check()?;
    let local_workers = match &comm {
        Comm::Threads(threads) => *threads,
        Comm::Cluster { threads, .. } => *threads,
    };
    let failure = Arc::new(Failure::new(local_workers));
    let outcome = execute_with(flow, comm, config, &failure);
    failure.ended();
    outcome
}

fn execute_with(
    flow: &Dataflow,
    comm: Comm,
    config: RunConfig,
    failure: &Arc<Failure>,
) -> Result<(), FlowError> {
    let cluster = matches!(comm, Comm::Cluster { .. });
    let requested = config.stop.clone();
    let options = config.cluster.clone();
    let workers_per_process = match &comm {
        Comm::Threads(threads) => *threads,
        Comm::Cluster { threads, .. } => *threads,
    };
    let mut config = ExecConfig::new(config, workers_per_process);
    if cluster {
        // In a cluster the engine stops once the peers know (see `heartbeat`).
        config.stop = Arc::default();
        config.stopping = Arc::default();
    }
    let stop = heartbeat::StopFlags {
        requested,
        stopping: config.stopping.clone(),
        engine: config.stop.clone(),
    };
    let config = Arc::new(config);
    let report = config.clone();
    let run = {
        let (flow, config, outcome) = (flow.clone(), config.clone(), failure.clone());
        move |worker: &mut timely::worker::Worker| {
            run_guarded(worker, &flow, config.clone(), outcome.clone(), cluster)
        }
    };
    match comm {
        Comm::Threads(threads) => {
            let timely_config = timely::Config {
                communication: timely::CommunicationConfig::Process(threads),
                worker: timely::WorkerConfig::default(),
            };
            let guards = timely::execute(timely_config, run).map_err(FlowError::Setup)?;
            record_results(failure, failure::quietly(|| guards.join()));
        }
        Comm::Cluster {
            addresses,
            process,
            threads,
        } => {
            let connected =
                cluster::Connected::connect(flow, &addresses, process, threads, &options, stop, failure)?;
            let guards = timely::execute::execute_from(
                connected.builders,
                Box::new(connected.comms),
                timely::WorkerConfig::default(),
                run,
            )
            .map_err(FlowError::Setup)?;
            let grace = options.heartbeat_timeout.max(Duration::from_secs(1));
            record_results(failure, join_bounded(guards, failure, grace));
            let ending = match failure.error() {
                Some(err) => heartbeat::Ending::Failed(err.to_string()),
                None => heartbeat::Ending::Done,
            };
            connected.heartbeat.finish(ending);
            drop(connected.listening);
        }
    }
    let result = finish(failure);
    report.report(&result);
    result
}

type Joined = std::thread::Result<Vec<Result<(), String>>>;

fn record_results(failure: &Failure, joined: Joined) {
    match joined {
        Ok(results) => {
            for result in results {
                if let Err(message) = result
                    && failure.error().is_none()
                {
                    failure.fail(FlowError::Setup(message));
                }
            }
        }
        // Joining also joins timely's network threads, which re-raise a lost connection as
        // a panic here; its cause is already recorded.
        Err(_) if failure.error().is_some() => {}
        Err(_) => failure.fail(FlowError::Cluster(
            "a network thread failed while the flow shut down".to_string(),
        )),
    }
}

/// Joins the workers and timely's network threads, but after a failure waits at most
/// `grace` for them: a thread blocked on a peer that never answers, or a worker stuck in
/// user code, must not keep a failed process from exiting. Threads still running then are
/// left behind.
fn join_bounded(
    guards: timely::communication::WorkerGuards<()>,
    failure: &Failure,
    grace: Duration,
) -> Joined {
    let (tx, rx) = std::sync::mpsc::channel();
    let joiner = std::thread::Builder::new()
        .name("bwx:join".to_string())
        .spawn(move || {
            let _ = tx.send(failure::quietly(|| guards.join()));
        });
    if joiner.is_err() {
        return Ok(Vec::new());
    }
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(joined) => return joined,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(Vec::new()),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(since) = failure.stopped_at()
            && failure.error().is_some()
            && since.elapsed() >= grace
        {
            tracing::warn!(
                "threads of the failed execution did not finish within {grace:?} of the failure; leaving them"
            );
            return Ok(Vec::new());
        }
    }
}

/// Runs one worker, turning panics into errors. In a cluster (`cluster`), a worker of the
/// process where a failure started tells the other processes, which otherwise could not
/// tell a failed peer from a finished one.
fn run_guarded(
    worker: &mut timely::worker::Worker,
    flow: &Dataflow,
    config: Arc<ExecConfig>,
    failure: Arc<Failure>,
    cluster: bool,
) {
    let index = worker.index();
    let slot = config.monitor.as_ref().map(|m| m.worker(index));
    // Allocated first on every worker, so all get the same channel.
    let mut control = cluster.then(|| Control::new(worker));
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        run_worker(worker, flow, config, failure.clone(), control.as_mut())
    }));
    record(&failure, outcome, index);
    if let Some(slot) = slot {
        slot.done();
    }
    // A stopped execution leaves dataflows unfinished; drop them, or timely would keep
    // stepping them after we return.
    if failure.should_stop() {
        for dataflow in worker.installed_dataflows() {
            worker.drop_dataflow(dataflow);
        }
    }
    if let Some(control) = &mut control
        && failure.should_tell_peers()
    {
        // A peer that is already gone makes the network thread panic; nothing to add then.
        let _ = failure::quietly(|| control.broadcast(worker, &failure));
    }
    if cluster && failure.should_stop() {
        failure::silence_teardown();
    }
}

fn record(failure: &Failure, outcome: std::thread::Result<Result<(), FlowError>>, index: usize) {
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(err)) => failure.fail(err),
        // The panic hook recorded the step, worker and message.
        Err(_) => failure.fail(FlowError::StepPanicked {
            step: failure::current_step(),
            worker: index,
            message: "panicked".into(),
        }),
    }
}

fn finish(failure: &Failure) -> Result<(), FlowError> {
    failure.ended();
    match failure.error() {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use super::*;
    use crate::testing::{TestingSink, TestingSource};

    /// The workers that saw an item of a flow spreading 0..30 over all workers.
    fn workers_seen(run: impl FnOnce(&Dataflow) -> Result<(), FlowError>) -> BTreeSet<usize> {
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let log = seen.clone();
        let flow = Dataflow::new("f");
        flow.input("inp", TestingSource::new(0..30u32))
            .redistribute("spread")
            .inspect_debug("see", move |_step, _x, _epoch, worker| {
                log.lock().unwrap().insert(worker);
            })
            .output("out", TestingSink::new());
        run(&flow).unwrap();
        seen.lock().unwrap().clone()
    }

    #[test]
    fn cluster_main_without_addresses_runs_one_process_of_n_workers() {
        let seen = workers_seen(|flow| cluster_main(flow, Vec::new(), 0, 3, RunConfig::default()));
        assert_eq!(seen, BTreeSet::from([0, 1, 2]));
    }

    #[test]
    fn cluster_main_without_addresses_refuses_another_process_id() {
        let flow = Dataflow::new("f");
        flow.input("inp", TestingSource::new(0..1u32))
            .output("out", TestingSink::new());
        let err = cluster_main(&flow, Vec::new(), 1, 2, RunConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("process id 1 is out of range"), "{err}");
    }
}
