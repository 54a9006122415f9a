//! The command line: `run` with Bytewax's flags and environment variables, and `recovery init`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::duration::parse_duration;
use super::place::{parse_addresses, pod_ordinal, read_hostfile};
use crate::errors::FlowError;
use crate::execution::{ClusterOptions, ClusterSecret};
use crate::recovery::{RecoveryOptions, parse_parts};

/// The arguments of a flow binary.
#[derive(Parser, Debug, Clone, PartialEq)]
#[command(
    about = "Runs a bwx dataflow.",
    after_help = "Run `<command> --help` for the flags of a command."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: CliCommand,
}

/// The commands of a flow binary.
// Parsed once per process: the size of `run`'s flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum CliCommand {
    /// Run the dataflow: on one thread by default, on several with -w, as one process of a
    /// cluster with -i/-a, or as several local processes with --processes.
    Run(RunArgs),
    /// Manage the recovery partitions of a flow.
    #[command(subcommand)]
    Recovery(RecoveryCommand),
}

/// `recovery ...` commands.
#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum RecoveryCommand {
    /// Create DIR (if needed) and PARTITIONS empty recovery partitions in it.
    Init {
        /// The recovery directory to create.
        directory: PathBuf,
        /// How many partitions the set has (at least 1).
        #[arg(value_parser = parse_positive)]
        partitions: usize,
        /// Create only these partitions of the set, for a host that keeps its own on its own
        /// disk: indexes and ranges such as `0,2` or `0-3`. Needs --store-id.
        #[arg(long, value_parser = parse_part_list, requires = "store_id")]
        parts: Option<PartList>,
        /// The id of the store, the same on every host (`bwx recovery store-id` makes one,
        /// `bwx recovery store-id DIR` reads it from a host's partitions). Without it, a new
        /// store gets a fresh id.
        #[arg(long)]
        store_id: Option<String>,
    },
}

/// The partitions `recovery init --parts` creates, by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartList(pub Vec<usize>);

fn parse_part_list(text: &str) -> Result<PartList, String> {
    parse_parts(text).map(PartList).map_err(|e| e.to_string())
}

/// The flags of `run`. Every flag can also be given by its environment variable; a flag on
/// the command line wins over the variable.
#[derive(Args, Debug, Clone, PartialEq)]
#[command(after_help = "\
Durations are seconds (`30`) or have a unit (`30s`, `5m`, `100ms`).

Examples:
  run -w 4                              4 worker threads in this process
  run --processes 2 -w 2                2 local processes of 2 workers each
  run -i 0 -a \"host0:2101;host1:2101\"   process 0 of a cluster (run -i 1 on host1)
  run -r ./state -s 10s -b 1m           with recovery, snapshotting every 10 s")]
pub struct RunArgs {
    /// Worker threads in each process.
    #[arg(
        short = 'w',
        long,
        env = "BYTEWAX_WORKERS_PER_PROCESS",
        default_value_t = 1,
        value_parser = parse_positive,
        value_name = "N"
    )]
    pub workers_per_process: usize,

    /// Start N processes on this machine, connected over loopback TCP; the run fails as
    /// soon as one of them fails.
    #[arg(
        short = 'p',
        long,
        value_parser = parse_positive,
        value_name = "N",
        conflicts_with_all = ["process_id", "addresses"],
        help_heading = "Processes"
    )]
    pub processes: Option<usize>,

    /// This process's index in --addresses (0-based).
    #[arg(
        short = 'i',
        long,
        env = "BYTEWAX_PROCESS_ID",
        value_name = "ID",
        help_heading = "Processes"
    )]
    pub process_id: Option<usize>,

    /// The host:port of every process of the cluster, in process-id order, separated by
    /// semicolons: "host0:2101;host1:2101".
    #[arg(
        short = 'a',
        long,
        env = "BYTEWAX_ADDRESSES",
        value_parser = parse_address_list,
        value_name = "ADDRESSES",
        help_heading = "Processes"
    )]
    pub addresses: Option<AddressList>,

    /// Length of an epoch: inputs start a new epoch this often, and with recovery state is
    /// snapshotted at every epoch close [default: 10s].
    #[arg(
        short = 's',
        long,
        visible_alias = "epoch-interval",
        env = "BYTEWAX_SNAPSHOT_INTERVAL",
        value_parser = parse_duration,
        value_name = "DURATION"
    )]
    pub snapshot_interval: Option<Duration>,

    /// Recover state from, and snapshot it to, the partitions in DIR (create them with
    /// `recovery init`). Needs -s and -b.
    #[arg(
        short = 'r',
        long,
        env = "BYTEWAX_RECOVERY_DIRECTORY",
        value_name = "DIR",
        requires_all = ["snapshot_interval", "backup_interval"],
        help_heading = "Recovery"
    )]
    pub recovery_directory: Option<PathBuf>,

    /// How long superseded snapshots are kept, so that partitions backed up at different
    /// times still share a resume point. Set it to your backup period.
    #[arg(
        short = 'b',
        long,
        env = "BYTEWAX_RECOVERY_BACKUP_INTERVAL",
        value_parser = parse_duration,
        value_name = "DURATION",
        help_heading = "Recovery"
    )]
    pub backup_interval: Option<Duration>,

    /// Resume even when the recovery store holds state that matches no step or partition
    /// of this flow (a renamed or removed step, a file no longer read): that state is
    /// dropped with a warning. Without it such a resume is refused.
    #[arg(long, requires = "recovery_directory", help_heading = "Recovery")]
    pub drop_unmatched_state: bool,

    /// Kubernetes: this pod's name; with --statefulset-name its ordinal is the process id.
    #[arg(
        long,
        env = "BYTEWAX_POD_NAME",
        value_name = "NAME",
        help_heading = "Kubernetes"
    )]
    pub pod_name: Option<String>,

    /// Kubernetes: the StatefulSet the pod belongs to.
    #[arg(
        long,
        env = "BYTEWAX_STATEFULSET_NAME",
        value_name = "NAME",
        help_heading = "Kubernetes"
    )]
    pub statefulset_name: Option<String>,

    /// Kubernetes: a file listing the address of every process, one host:port per line.
    #[arg(
        long,
        env = "BYTEWAX_HOSTFILE_PATH",
        value_name = "FILE",
        help_heading = "Kubernetes"
    )]
    pub hostfile_path: Option<PathBuf>,

    /// The cluster secret every process must prove before its connections are accepted
    /// (at least 16 bytes). Prefer the variable or --cluster-secret-file: a flag shows in
    /// the process list. --processes makes a random one when none is given.
    #[arg(
        long,
        env = "BWX_CLUSTER_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        conflicts_with = "cluster_secret_file",
        help_heading = "Cluster security"
    )]
    pub cluster_secret: Option<String>,

    /// A file holding the cluster secret (a mounted Kubernetes Secret, say).
    #[arg(
        long,
        env = "BWX_CLUSTER_SECRET_FILE",
        value_name = "FILE",
        help_heading = "Cluster security"
    )]
    pub cluster_secret_file: Option<PathBuf>,

    /// Encrypt and authenticate every byte between processes (ChaCha20-Poly1305, keys
    /// from the handshake); needs a cluster secret, and every process must agree.
    #[arg(long, env = "BWX_CLUSTER_ENCRYPTION", help_heading = "Cluster security")]
    pub cluster_encryption: bool,

    /// Listen on this host or IP (with or without a port) instead of this process's own
    /// address: `0.0.0.0` in a container, say.
    #[arg(
        long,
        env = "BWX_BIND_ADDRESS",
        value_name = "ADDRESS",
        help_heading = "Processes"
    )]
    pub bind_address: Option<String>,

    /// How long to wait for every other process at start-up before failing, naming those
    /// that could not be reached [default: 60s].
    #[arg(
        long,
        env = "BWX_STARTUP_TIMEOUT",
        value_parser = parse_duration,
        value_name = "DURATION",
        help_heading = "Processes"
    )]
    pub startup_timeout: Option<Duration>,

    /// How long another process may stay silent (stopped, hung, cut off by the network)
    /// before the cluster stops with an error naming it [default: 10s].
    #[arg(
        long,
        env = "BWX_HEARTBEAT_TIMEOUT",
        value_parser = parse_duration,
        value_name = "DURATION",
        help_heading = "Processes"
    )]
    pub heartbeat_timeout: Option<Duration>,

    /// With --processes: after a process fails, restart the whole cluster from the last
    /// snapshot, at most N times (needs -r).
    #[arg(
        long,
        env = "BWX_RESTARTS",
        value_name = "N",
        requires_all = ["processes", "recovery_directory"],
        help_heading = "Processes"
    )]
    pub restarts: Option<usize>,
}

/// A parsed `-a` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressList(pub Vec<String>);

fn parse_address_list(text: &str) -> Result<AddressList, String> {
    parse_addresses(text).map(AddressList)
}

fn parse_positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{text}' is not a whole number")),
    }
}

/// Where this process runs: its place in the cluster and its worker threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// This process's index (0 when there is one process).
    pub process_id: usize,
    /// The address of every process; empty when there is one process and no `-a`.
    pub addresses: Vec<String>,
    /// Worker threads in each process.
    pub workers_per_process: usize,
}

impl Placement {
    /// How many processes the execution has.
    pub fn processes(&self) -> usize {
        self.addresses.len().max(1)
    }

    /// How many workers the execution has in all processes.
    pub fn total_workers(&self) -> usize {
        self.processes() * self.workers_per_process
    }
}

/// What `run` was asked to do, after flags and environment are reconciled.
#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    /// Run in this process.
    Here(Placement),
    /// Start this many local processes, each with these workers.
    Spawn {
        /// Number of processes.
        processes: usize,
        /// Worker threads in each.
        workers_per_process: usize,
    },
}

impl RunArgs {
    /// The epoch length: `-s`, or [`DEFAULT_EPOCH_INTERVAL`](crate::execution::DEFAULT_EPOCH_INTERVAL).
    pub fn epoch_interval(&self) -> Duration {
        self.snapshot_interval
            .unwrap_or(crate::execution::DEFAULT_EPOCH_INTERVAL)
    }

    /// The recovery options, when `-r` is given (clap already checked that -s and -b are).
    pub fn recovery(&self) -> Option<RecoveryOptions> {
        Some(RecoveryOptions {
            directory: self.recovery_directory.clone()?,
            backup_interval: self.backup_interval?,
        })
    }

    /// The cluster secret of --cluster-secret or --cluster-secret-file (or their variables).
    pub fn cluster_secret(&self) -> Result<Option<ClusterSecret>, FlowError> {
        match (&self.cluster_secret, &self.cluster_secret_file) {
            (Some(secret), _) => ClusterSecret::new(secret)
                .map(Some)
                .map_err(|e| FlowError::Setup(format!("{e} (in --cluster-secret / BWX_CLUSTER_SECRET)"))),
            (None, Some(path)) => ClusterSecret::from_file(path).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// How this process connects to and watches the others.
    pub fn cluster_options(&self) -> Result<ClusterOptions, FlowError> {
        let mut options = ClusterOptions::default().encrypt(self.cluster_encryption);
        options.secret = self.cluster_secret()?;
        options.bind = self.bind_address.clone();
        if let Some(timeout) = self.startup_timeout {
            options.startup_timeout = timeout;
        }
        if let Some(timeout) = self.heartbeat_timeout {
            options.heartbeat_timeout = timeout;
        }
        Ok(options)
    }

    /// Reconciles the cluster flags: `-i` wins over the pod ordinal, `-a` over the host file.
    /// Reads the host file if one is named.
    pub fn launch(&self) -> Result<Launch, String> {
        let process_id = match (self.process_id, &self.pod_name, &self.statefulset_name) {
            (Some(id), _, _) => Some(id),
            (None, Some(pod), Some(set)) => Some(pod_ordinal(pod, set)?),
            (None, Some(_), None) => {
                return Err("BYTEWAX_POD_NAME is set but BYTEWAX_STATEFULSET_NAME is not; \
                            the process id is the pod's ordinal in its StatefulSet"
                    .to_string());
            }
            (None, None, _) => None,
        };
        let addresses = match (&self.addresses, &self.hostfile_path) {
            (Some(list), _) => Some(list.0.clone()),
            (None, Some(path)) => Some(read_hostfile(path)?),
            (None, None) => None,
        };
        if let Some(processes) = self.processes {
            if process_id.is_some() || addresses.is_some() {
                return Err(
                    "--processes starts its own cluster; it cannot be combined with a process \
                            id or addresses (-i, -a, or the Kubernetes variables)"
                        .to_string(),
                );
            }
            return Ok(Launch::Spawn {
                processes,
                workers_per_process: self.workers_per_process,
            });
        }
        let placement = match (process_id, addresses) {
            (None, None) => Placement {
                process_id: 0,
                addresses: Vec::new(),
                workers_per_process: self.workers_per_process,
            },
            (Some(id), Some(addresses)) => {
                if id >= addresses.len() {
                    return Err(format!(
                        "process id {id} is out of range: there are {} addresses (ids 0 to {})",
                        addresses.len(),
                        addresses.len() - 1
                    ));
                }
                Placement {
                    process_id: id,
                    addresses,
                    workers_per_process: self.workers_per_process,
                }
            }
            (Some(id), None) => {
                return Err(format!(
                    "process id {id} is given but no addresses: pass -a \"host:port;...\" \
                     (or BYTEWAX_ADDRESSES / BYTEWAX_HOSTFILE_PATH)"
                ));
            }
            (None, Some(addresses)) if addresses.len() == 1 => Placement {
                process_id: 0,
                addresses,
                workers_per_process: self.workers_per_process,
            },
            (None, Some(_)) => {
                return Err("addresses are given but no process id: pass -i ID \
                            (or BYTEWAX_PROCESS_ID, or the Kubernetes pod variables)"
                    .to_string());
            }
        };
        Ok(Launch::Here(placement))
    }

    /// The arguments of process `process_id` of a `--processes` run: these flags with the
    /// given cluster in place of `--processes`.
    pub(crate) fn child_args(&self, process_id: usize, addresses: &[String]) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec![
            "run".into(),
            "-w".into(),
            self.workers_per_process.to_string().into(),
            "-i".into(),
            process_id.to_string().into(),
            "-a".into(),
            addresses.join(";").into(),
        ];
        if let Some(interval) = self.snapshot_interval {
            args.push("-s".into());
            args.push(humantime::format_duration(interval).to_string().into());
        }
        if let Some(dir) = &self.recovery_directory {
            args.push("-r".into());
            args.push(dir.into());
        }
        if let Some(interval) = self.backup_interval {
            args.push("-b".into());
            args.push(humantime::format_duration(interval).to_string().into());
        }
        if self.drop_unmatched_state {
            args.push("--drop-unmatched-state".into());
        }
        // The secret goes by environment variable, never on a command line.
        if self.cluster_encryption {
            args.push("--cluster-encryption".into());
        }
        for (flag, timeout) in [
            ("--startup-timeout", self.startup_timeout),
            ("--heartbeat-timeout", self.heartbeat_timeout),
        ] {
            if let Some(timeout) = timeout {
                args.push(flag.into());
                args.push(humantime::format_duration(timeout).to_string().into());
            }
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(std::iter::once("flowbin").chain(args.iter().copied())).unwrap();
        match cli.command {
            CliCommand::Run(run) => run,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn run_args_resolve_to_a_placement() {
        let args = parse(&["run", "-w", "3", "-s", "5m"]);
        assert_eq!(args.epoch_interval(), Duration::from_secs(300));
        assert_eq!(args.recovery(), None);
        assert_eq!(
            args.launch().unwrap(),
            Launch::Here(Placement {
                process_id: 0,
                addresses: vec![],
                workers_per_process: 3
            })
        );
        assert_eq!(parse(&["run"]).epoch_interval(), Duration::from_secs(10));

        let args = parse(&[
            "run",
            "-i",
            "1",
            "-a",
            "h0:1;h1:1",
            "--pod-name",
            "flow-0",
            "--statefulset-name",
            "flow",
        ]);
        let Launch::Here(placement) = args.launch().unwrap() else {
            panic!()
        };
        assert_eq!(placement.process_id, 1, "-i wins over the pod ordinal");
        assert_eq!((placement.processes(), placement.total_workers()), (2, 2));

        let args = parse(&[
            "run",
            "-a",
            "h0:1;h1:1;h2:1",
            "--pod-name",
            "flow-2",
            "--statefulset-name",
            "flow",
        ]);
        let Launch::Here(placement) = args.launch().unwrap() else {
            panic!()
        };
        assert_eq!(placement.process_id, 2);

        let err = parse(&["run", "-a", "h0:1;h1:1", "--pod-name", "flow-0"])
            .launch()
            .unwrap_err();
        assert!(err.contains("BYTEWAX_STATEFULSET_NAME"), "{err}");

        let args = parse(&["run", "-p", "3", "-w", "2"]);
        assert_eq!(
            args.launch().unwrap(),
            Launch::Spawn {
                processes: 3,
                workers_per_process: 2
            }
        );

        let args = parse(&["run", "-r", "state", "-s", "30", "-b", "1h"]);
        let recovery = args.recovery().unwrap();
        assert_eq!(recovery.directory, std::path::PathBuf::from("state"));
        assert_eq!(args.epoch_interval(), Duration::from_secs(30));
        assert_eq!(recovery.backup_interval, Duration::from_secs(3600));
    }

    #[test]
    fn zero_intervals_and_a_backup_interval_alone_are_accepted() {
        let args = parse(&["run", "-r", "state", "-s", "0", "-b", "0"]);
        assert_eq!(args.epoch_interval(), Duration::ZERO);
        assert_eq!(args.recovery().unwrap().backup_interval, Duration::ZERO);
        // As in Bytewax, `-b` without `-r` is accepted and changes nothing.
        let args = parse(&["run", "-b", "1m"]);
        assert_eq!(args.recovery(), None);
        let child = parse(&[
            "run",
            "-r",
            "state",
            "-s",
            "0",
            "-b",
            "0",
            "--drop-unmatched-state",
        ])
        .child_args(1, &["a:1".into(), "b:2".into()]);
        let child: Vec<String> = child.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(child.windows(2).any(|w| w == ["-s", "0s"]), "{child:?}");
        assert!(child.contains(&"--drop-unmatched-state".to_string()), "{child:?}");
    }
}
