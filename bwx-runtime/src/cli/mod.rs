//! The command line of a flow binary: `bwx::cli::main(flow)`.
//!
//! A flow's binary is its runner. Its `main` builds the [`Dataflow`] and hands it to
//! [`main`], which parses `run` with Bytewax's flags and environment variables:
//!
//! | flag | variable | meaning |
//! |---|---|---|
//! | `-w/--workers-per-process N` | `BYTEWAX_WORKERS_PER_PROCESS` | worker threads per process (default 1) |
//! | `-p/--processes N` | | start N local processes (re-executes this binary with `-i/-a`) |
//! | `-i/--process-id ID` | `BYTEWAX_PROCESS_ID` | this process's index in the addresses |
//! | `-a/--addresses "h:p;h:p"` | `BYTEWAX_ADDRESSES` | every process's address |
//! | `-s/--snapshot-interval D` (alias `--epoch-interval`) | `BYTEWAX_SNAPSHOT_INTERVAL` | epoch length (default 10 s) |
//! | `-r/--recovery-directory DIR` | `BYTEWAX_RECOVERY_DIRECTORY` | recovery partitions; needs `-s` and `-b` |
//! | `-b/--backup-interval D` | `BYTEWAX_RECOVERY_BACKUP_INTERVAL` | how long superseded snapshots are kept |
//! | `--pod-name` | `BYTEWAX_POD_NAME` | Kubernetes: with the StatefulSet name, the process id is the pod ordinal |
//! | `--statefulset-name` | `BYTEWAX_STATEFULSET_NAME` | Kubernetes: the pod's StatefulSet |
//! | `--hostfile-path FILE` | `BYTEWAX_HOSTFILE_PATH` | Kubernetes: the addresses, one per line |
//! | `--cluster-secret S` | `BWX_CLUSTER_SECRET` | the secret every process proves (prefer the variable) |
//! | `--cluster-secret-file FILE` | `BWX_CLUSTER_SECRET_FILE` | a file holding it |
//! | `--cluster-encryption` | `BWX_CLUSTER_ENCRYPTION` | seal all traffic between processes (needs a secret) |
//! | `--bind-address A` | `BWX_BIND_ADDRESS` | listen there (e.g. `0.0.0.0`) instead of on this process's address |
//! | `--startup-timeout D` | `BWX_STARTUP_TIMEOUT` | how long to wait for every peer at start-up (default 60 s) |
//! | `--heartbeat-timeout D` | `BWX_HEARTBEAT_TIMEOUT` | silence after which a peer counts as failed (default 10 s) |
//! | `--restarts N` | `BWX_RESTARTS` | with `--processes` and `-r`: restart the cluster from the last snapshot after a failure, at most N times |
//! | `--dataflow-api` | `BYTEWAX_DATAFLOW_API_ENABLED` | serve the [dataflow API](crate::api) |
//! | `--dataflow-api-port PORT` | `BYTEWAX_DATAFLOW_API_PORT` | its port (3030; process i of `--processes` uses PORT + i) |
//! | `--dataflow-api-bind IP` | `BWX_DATAFLOW_API_BIND` | its address (0.0.0.0) |
//! | `--dataflow-api-cache-path DIR` | `BYTEWAX_DATAFLOW_API_CACHE_PATH` | where `dataflow.json` is written (`.`) |
//! | `--no-progress` | `BWX_NO_PROGRESS` | no progress line on a terminal |
//! | `--log-format text\|json` | `BWX_LOG_FORMAT` | how log lines are written (any command) |
//!
//! Durations are seconds (`30`) or carry a unit (`30s`, `5m`, `100ms`). A flag wins over its
//! variable; `-i` wins over the pod ordinal and `-a` over the host file. Bad flags print a
//! usage error and exit with code 2; a failing flow prints one line naming the step and
//! worker and exits with code 1 (one line for a `--processes` cluster too). SIGINT or
//! SIGTERM stop the inputs at the next epoch; the run then prints where it stopped and how
//! to resume, and exits with 130 (SIGINT) or 143 (SIGTERM).
//!
//! Logs go to stderr, filtered by `RUST_LOG` (warnings and errors when it is unset;
//! `RUST_LOG=info` for the life of a run, `RUST_LOG=bwx::recovery=debug` for every
//! snapshot commit), with colours only on a terminal. Besides `run`, a flow binary has
//! `visualize --format mermaid|dot|json`, `recovery init DIR N`, `recovery inspect DIR` and
//! `--version` ([`Runner::version`]).
//!
//! ```no_run
//! use bwx::prelude::*;
//! use bwx::testing::{TestingSink, TestingSource};
//!
//! fn main() -> std::process::ExitCode {
//!     let flow = Dataflow::new("double");
//!     flow.input("inp", TestingSource::new(vec![1, 2, 3]))
//!         .map("double", |x| x * 2)
//!         .output("out", TestingSink::new());
//!     bwx::cli::main(flow)
//! }
//! ```
//!
//! Recovery is provided by a [`RecoveryBackend`]: the SQLite store
//! ([`crate::recovery::SqliteBackend`]) unless [`Runner::recovery_backend`] registers
//! another; after [`Runner::without_recovery`], `-r` and `recovery init` fail with
//! "recovery is not available in this build".

mod args;
mod duration;
mod logging;
mod monitor_args;
pub(crate) mod place;
mod progress;
mod spawn;
mod stop;
mod terminal;

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, ValueEnum};

pub use args::{AddressList, Cli, CliCommand, Launch, PartList, Placement, RecoveryCommand, RunArgs};
pub use duration::parse_duration;
pub use logging::LogFormat;
pub use monitor_args::{DiagramFormat, MonitorArgs, VisualizeArgs};
pub use place::{parse_addresses, pod_ordinal, read_hostfile};
pub use stop::StopReport;

use crate::api::{ApiError, DataflowApi};
use crate::errors::FlowError;
use crate::execution::{RunConfig, cluster_main, run_workers};
use crate::flow::Dataflow;
use crate::monitor::{Monitor, RunPhase};
use crate::recovery::{RecoveryBackend, RecoveryError};

/// Why `run` did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The flags do not fit together (exit code 2, like a parse error).
    #[error("{0}")]
    Usage(String),
    /// The flow failed (exit code 1).
    #[error(transparent)]
    Flow(#[from] FlowError),
    /// The recovery store could not be opened or created (exit code 1).
    #[error("recovery: {0}")]
    Recovery(#[from] RecoveryError),
    /// A process of a `--processes` run failed, or could not be started (exit code 1).
    #[error("{0}")]
    Processes(String),
    /// Recovery was asked for, but no [`RecoveryBackend`] is registered (exit code 1).
    #[error(
        "recovery is not available in this build: no recovery backend is registered \
         (register one with bwx::cli::Runner::recovery_backend)"
    )]
    RecoveryUnavailable,
    /// The dataflow API could not start (exit code 1).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A signal stopped the flow before the end of its input (exit code 128 + the
    /// signal's number: 130 for SIGINT, 143 for SIGTERM).
    #[error("{0}")]
    Stopped(StopReport),
}

impl CliError {
    /// The exit code for this error: 2 for usage errors, 130 or 143 for a run a signal
    /// stopped, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Stopped(report) => report.exit_code(),
            _ => 1,
        }
    }
}

/// Runs a flow from the command line, with optional extensions. [`main`] is
/// `Runner::new(flow).main()`.
pub struct Runner {
    flow: Dataflow,
    recovery: Option<Arc<dyn RecoveryBackend>>,
    command: Option<Box<ProcessCommand>>,
    version: Option<String>,
    log_format: LogFormat,
}

/// Makes the command that starts one process of a `--processes` run, from its arguments.
type ProcessCommand = dyn Fn(&[OsString]) -> Command;

impl Runner {
    /// A runner for `flow`, without recovery.
    pub fn new(flow: Dataflow) -> Self {
        let backend: Arc<dyn RecoveryBackend> = Arc::new(crate::recovery::SqliteBackend::new(&flow.id()));
        Runner {
            flow,
            recovery: Some(backend),
            command: None,
            version: None,
            log_format: LogFormat::default(),
        }
    }

    /// The version `--version` prints beside bwx's, usually your crate's:
    /// `.version(env!("CARGO_PKG_VERSION"))`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Turns `-r` and `recovery init` off (they then fail with a clear error).
    pub fn without_recovery(mut self) -> Self {
        self.recovery = None;
        self
    }

    /// Enables `-r` and `recovery init` with this backend instead of the SQLite store.
    pub fn recovery_backend(mut self, backend: impl RecoveryBackend) -> Self {
        self.recovery = Some(Arc::new(backend));
        self
    }

    /// How `--processes` starts each process, given its arguments (`run -i K -a ... -w ...`).
    /// The default runs the current executable with them; a launcher or a test harness can
    /// wrap them differently.
    pub fn process_command(mut self, command: impl Fn(&[OsString]) -> Command + 'static) -> Self {
        self.command = Some(Box::new(command));
        self
    }

    /// Parses the process's arguments, runs, and returns the exit code (after printing any
    /// error to stderr).
    pub fn main(self) -> ExitCode {
        self.main_from(std::env::args_os())
    }

    /// [`main`](Self::main) with explicit arguments; the first is the program name.
    pub fn main_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        ExitCode::from(self.exit_code_from(args))
    }

    /// [`main_from`](Self::main_from), returning the exit code as a number: 0 on success
    /// (and for `--help`), 1 when the flow or a process failed, 2 for bad flags. For
    /// harnesses that end the process with [`std::process::exit`].
    pub fn exit_code_from<I, T>(mut self, args: I) -> u8
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut command = self.clap_command(args.first());
        let parsed = command
            .try_get_matches_from_mut(&args)
            .and_then(|mut m| Cli::from_arg_matches_mut(&mut m));
        let cli = match parsed {
            Ok(cli) => cli,
            Err(err) => {
                // Help goes to stdout with code 0, errors to stderr with code 2.
                let _ = err.print();
                return if err.use_stderr() { 2 } else { 0 };
            }
        };
        self.log_format = cli.log_format;
        let _logs = logging::init(cli.log_format);
        let outcome = match &cli.command {
            CliCommand::Run(args) => self.run(args),
            CliCommand::Recovery(RecoveryCommand::Init {
                directory,
                partitions,
                parts,
                store_id,
            }) => self.init_recovery(directory, *partitions, parts.as_ref(), store_id.as_deref()),
            CliCommand::Recovery(RecoveryCommand::Inspect {
                directory,
                json,
                step,
                key,
            }) => self.inspect_recovery(directory, *json, step.as_deref().zip(key.as_deref())),
            CliCommand::Visualize(args) => {
                print!("{}", self.diagram(args.format));
                Ok(())
            }
        };
        match outcome {
            Ok(()) => 0,
            Err(CliError::Usage(message)) => {
                let kind = clap::error::ErrorKind::ArgumentConflict;
                let err = match command.find_subcommand_mut("run") {
                    Some(run) => run.error(kind, message),
                    None => command.error(kind, message),
                };
                let _ = err.print();
                2
            }
            Err(CliError::Stopped(report)) => {
                stop::last_line(&format!("stopped: {report}"));
                report.exit_code()
            }
            Err(err) => {
                stop::last_line(&format!("error: {}", crate::errors::report(&err)));
                err.exit_code()
            }
        }
    }

    /// Runs the flow as `args` say: here (1 or N threads, or one process of a cluster), or as
    /// `--processes` local processes.
    pub fn run(&self, args: &RunArgs) -> Result<(), CliError> {
        let launch = args.launch().map_err(CliError::Usage)?;
        let recovery = args.recovery();
        if recovery.is_some() && self.recovery.is_none() {
            return Err(CliError::RecoveryUnavailable);
        }
        match launch {
            Launch::Spawn { processes: 1, .. } => self.run_here(
                args,
                Placement {
                    process_id: 0,
                    addresses: Vec::new(),
                    workers_per_process: args.workers_per_process,
                },
            ),
            Launch::Spawn { processes, .. } => {
                let format = self
                    .log_format
                    .to_possible_value()
                    .map(|v| v.get_name().to_string());
                let command = |child: &[OsString]| {
                    let mut command = match &self.command {
                        Some(make) => make(child),
                        None => spawn::current_exe_command(child)?,
                    };
                    if let Some(format) = &format {
                        command.env("BWX_LOG_FORMAT", format);
                    }
                    Ok(command)
                };
                match spawn::run_processes(args, processes, &command).map_err(CliError::Processes)? {
                    None => Ok(()),
                    Some(report) => Err(CliError::Stopped(report)),
                }
            }
            Launch::Here(placement) => self.run_here(args, placement),
        }
    }

    fn run_here(&self, args: &RunArgs, placement: Placement) -> Result<(), CliError> {
        // SIGINT / SIGTERM stop the inputs at the next epoch and write a final snapshot.
        let signals =
            stop::Signals::register().map_err(|e| FlowError::Setup(format!("cannot handle signals: {e}")))?;
        let mut config = RunConfig::default()
            .epoch_interval(args.epoch_interval())
            .cluster(args.cluster_options()?)
            .drop_unmatched_state(args.drop_unmatched_state)
            .stop_on_signals()?;
        let api = args.monitoring.api_config();
        // A process of a --processes run shares its terminal with the others.
        let supervised = std::env::var_os(crate::execution::ENV_SUPERVISOR_REPORT).is_some();
        if placement.processes() > 1 {
            terminal::mark_process(placement.process_id, supervised);
        }
        let progress = !args.monitoring.no_progress && terminal::stderr_is_terminal() && !supervised;
        let monitor = if api.is_some() || progress {
            Monitor::new(&self.flow)
        } else {
            Monitor::status_only(&self.flow)
        };
        monitor.set_process(placement.process_id, placement.processes());
        tracing::info!(
            flow = %self.flow.id(),
            process = placement.process_id,
            processes = placement.processes(),
            workers_per_process = placement.workers_per_process,
            epoch_interval = ?args.epoch_interval(),
            "starting flow '{}': process {} of {}, {} worker(s) each",
            self.flow.id(),
            placement.process_id,
            placement.processes(),
            placement.workers_per_process,
        );
        let recovery = args.recovery();
        if let (Some(recovery), Some(backend)) = (&recovery, &self.recovery) {
            // Where the run resumes is known once the processes agreed on it; the monitor
            // logs it then.
            monitor.set_recovery_directory(recovery.directory.clone());
            config = config.recovery(backend.open(recovery)?);
        }
        let _api = api
            .map(|api| DataflowApi::start(&api, monitor.clone()))
            .transpose()?;
        let progress = progress.then(|| progress::Progress::start(monitor.clone()));
        let config = config.monitor(monitor.clone());
        let workers = placement.workers_per_process;
        let result = if placement.addresses.len() <= 1 {
            run_workers(&self.flow, workers, config)
        } else {
            cluster_main(
                &self.flow,
                placement.addresses,
                placement.process_id,
                workers,
                config,
            )
        };
        drop(progress);
        if let Err(err) = result {
            tracing::info!(flow = %self.flow.id(), error = %err, "flow '{}' failed", self.flow.id());
            return Err(err.into());
        }
        match monitor.phase() {
            RunPhase::Stopped => {
                // Without a signal of its own, another process of the cluster asked for
                // the stop.
                let signal = signals.received();
                let dir = recovery.as_ref().map(|r| r.directory.as_path());
                let report = StopReport::new(&monitor, signal, dir);
                tracing::info!(
                    flow = %self.flow.id(),
                    epoch = monitor.epoch(),
                    signal = signal.map(stop::signal_name),
                    "flow '{}' stopped before the end of its input",
                    self.flow.id()
                );
                Err(CliError::Stopped(report))
            }
            _ => {
                tracing::info!(
                    flow = %self.flow.id(),
                    epoch = monitor.epoch(),
                    items_read = monitor.items_read(),
                    items_written = monitor.items_written(),
                    "flow '{}' finished: every input reached its end",
                    self.flow.id()
                );
                Ok(())
            }
        }
    }

    fn inspect_recovery(
        &self,
        directory: &Path,
        json: bool,
        key: Option<(&str, &str)>,
    ) -> Result<(), CliError> {
        if self.recovery.is_none() {
            return Err(CliError::RecoveryUnavailable);
        }
        let text = match key {
            Some((step, key)) => {
                let found = crate::recovery::inspect::key_state(directory, step, key)
                    .map_err(FlowError::from)?
                    .ok_or_else(|| {
                        CliError::Usage(format!("step '{step}' has no stored state for key {key}"))
                    })?;
                if json {
                    serde_json::to_string_pretty(&found).unwrap_or_default() + "\n"
                } else {
                    format!("{step} {}: {}\n", found.key, found.state)
                }
            }
            None => {
                let found = crate::recovery::inspect(directory).map_err(FlowError::from)?;
                if json {
                    serde_json::to_string_pretty(&found).unwrap_or_default() + "\n"
                } else {
                    found.to_string()
                }
            }
        };
        print!("{text}");
        Ok(())
    }

    fn diagram(&self, format: DiagramFormat) -> String {
        match format {
            DiagramFormat::Mermaid => self.flow.to_mermaid(),
            DiagramFormat::Dot => self.flow.to_dot(),
            DiagramFormat::Json => self.flow.to_json() + "\n",
        }
    }

    fn init_recovery(
        &self,
        directory: &Path,
        partitions: usize,
        parts: Option<&PartList>,
        store_id: Option<&str>,
    ) -> Result<(), CliError> {
        let backend = self.recovery.as_ref().ok_or(CliError::RecoveryUnavailable)?;
        match store_id {
            None => backend.init(directory, partitions)?,
            Some(id) => {
                let all: Vec<usize> = (0..partitions).collect();
                let parts = parts.map_or(&all[..], |p| &p.0[..]);
                backend.init_parts(directory, partitions, parts, id)?;
            }
        }
        Ok(())
    }

    fn clap_command(&self, program: Option<&OsString>) -> clap::Command {
        let name = program
            .map(Path::new)
            .and_then(Path::file_stem)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "flow".to_string());
        let bwx = format!("bwx {}", env!("CARGO_PKG_VERSION"));
        let version = match &self.version {
            Some(v) => format!("{v} ({bwx})"),
            None => bwx,
        };
        Cli::command()
            .name(name.clone())
            .bin_name(name)
            .version(version)
            .about(format!("Runs the bwx dataflow '{}'.", self.flow.id()))
    }
}

/// Parses the process's arguments and runs `flow`; returns the exit code for `main`.
pub fn main(flow: Dataflow) -> ExitCode {
    Runner::new(flow).main()
}

/// Writes a line to stderr below any progress line.
#[cfg(feature = "otlp")]
pub(crate) fn write_stderr_line(line: &str) -> std::io::Result<()> {
    terminal::write_lines(format!("{line}\n").as_bytes())
}
