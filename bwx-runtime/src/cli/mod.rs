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
//!
//! Durations are seconds (`30`) or carry a unit (`30s`, `5m`, `100ms`). A flag wins over its
//! variable; `-i` wins over the pod ordinal and `-a` over the host file. Bad flags print a
//! usage error and exit with code 2; a failing flow prints one line naming the step and
//! worker and exits with code 1.
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
pub(crate) mod place;
mod spawn;

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches};

pub use args::{AddressList, Cli, CliCommand, Launch, PartList, Placement, RecoveryCommand, RunArgs};
pub use duration::parse_duration;
pub use place::{parse_addresses, pod_ordinal, read_hostfile};
pub(crate) use spawn::describe as describe_status;

use crate::errors::FlowError;
use crate::execution::{RunConfig, cluster_main, run_workers};
use crate::flow::Dataflow;
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
}

impl CliError {
    /// The exit code for this error: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
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
        }
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
    pub fn exit_code_from<I, T>(self, args: I) -> u8
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
        init_tracing();
        let outcome = match &cli.command {
            CliCommand::Run(args) => self.run(args),
            CliCommand::Recovery(RecoveryCommand::Init {
                directory,
                partitions,
                parts,
                store_id,
            }) => self.init_recovery(directory, *partitions, parts.as_ref(), store_id.as_deref()),
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
            Err(err) => {
                eprintln!("error: {}", crate::errors::report(&err));
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
                let command = |child: &[OsString]| match &self.command {
                    Some(make) => Ok(make(child)),
                    None => spawn::current_exe_command(child),
                };
                spawn::run_processes(args, processes, &command).map_err(CliError::Processes)
            }
            Launch::Here(placement) => self.run_here(args, placement),
        }
    }

    fn run_here(&self, args: &RunArgs, placement: Placement) -> Result<(), CliError> {
        // SIGINT / SIGTERM stop the inputs at the next epoch and write a final snapshot.
        let mut config = RunConfig::default()
            .epoch_interval(args.epoch_interval())
            .cluster(args.cluster_options()?)
            .drop_unmatched_state(args.drop_unmatched_state)
            .stop_on_signals()?;
        if let (Some(recovery), Some(backend)) = (args.recovery(), &self.recovery) {
            config = config.recovery(backend.open(&recovery)?);
        }
        let workers = placement.workers_per_process;
        if placement.addresses.len() <= 1 {
            run_workers(&self.flow, workers, config)?;
        } else {
            cluster_main(
                &self.flow,
                placement.addresses,
                placement.process_id,
                workers,
                config,
            )?;
        }
        Ok(())
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
        Cli::command()
            .name(name.clone())
            .bin_name(name)
            .about(format!("Runs the bwx dataflow '{}'.", self.flow.id()))
    }
}

/// Parses the process's arguments and runs `flow`; returns the exit code for `main`.
pub fn main(flow: Dataflow) -> ExitCode {
    Runner::new(flow).main()
}

/// Logs go to stderr, filtered by `RUST_LOG` (warnings and errors when it is unset). A
/// subscriber the program installed first is kept.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
}
