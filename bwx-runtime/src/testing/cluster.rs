//! Running a flow across several local processes inside a test: [`LocalCluster`].

use std::fmt;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::errors::FlowError;
use crate::execution::reserved_ports::ReservedPorts;
use crate::execution::{RunConfig, cluster_main};
use crate::flow::Dataflow;

const ENV_PROCESS_ID: &str = "BWX_TEST_CLUSTER_PROCESS_ID";
const ENV_ADDRESSES: &str = "BWX_TEST_CLUSTER_ADDRESSES";
const ENV_WORKERS: &str = "BWX_TEST_CLUSTER_WORKERS";

/// How often the parent looks at its children.
const POLL: Duration = Duration::from_millis(10);

/// A cluster of local processes running one test's flow.
///
/// A test cannot start other processes of "itself" the way a flow binary does with
/// `--processes`, because its binary is the test harness. [`LocalCluster`] re-executes the
/// test binary instead: each child runs only the calling test (`<name> --exact
/// --nocapture`), with environment variables that tell it its place in the cluster. The
/// test therefore has two branches: in a child, [`LocalCluster::member`] returns the
/// [`ClusterMember`] and the test runs its part of the flow with
/// [`ClusterMember::run`], which exits the child process; in the parent it returns `None`
/// and the test starts the cluster with [`LocalCluster::run`] and checks each process's
/// exit status and output.
///
/// Children print what the parent should see (a sink that prints its items, with a prefix
/// so they stand out from the harness's own lines). The parent waits for every child up to a
/// timeout and kills those still running then; it never kills a child because another
/// failed, so a test can check that a failure stops the whole cluster by itself.
///
/// ```no_run
/// # #![allow(unused)] // a `#[test]` function is not compiled into a doc example
/// use bwx::prelude::*;
/// use bwx::testing::{LocalCluster, TestingSource};
/// use bwx::outputs::{DynamicSink, StatelessSinkPartition};
/// # use bwx::inputs::ConnectorError;
///
/// /// Prints `item: <x>` for every item.
/// struct Print;
/// struct PrintPart;
/// impl DynamicSink for Print {
///     type Item = u64;
///     type Partition = PrintPart;
///     fn build(&self, _: &StepId, _: usize, _: usize) -> Result<PrintPart, ConnectorError> {
///         Ok(PrintPart)
///     }
/// }
/// impl StatelessSinkPartition for PrintPart {
///     type Item = u64;
///     fn write_batch(&mut self, items: &mut Vec<u64>) -> Result<(), ConnectorError> {
///         for x in items.drain(..) {
///             println!("item: {x}");
///         }
///         Ok(())
///     }
/// }
///
/// #[test]
/// fn doubles_on_two_processes() {
///     if let Some(member) = LocalCluster::member() {
///         let flow = Dataflow::new("double");
///         flow.input("inp", TestingSource::new(1..=10u64))
///             .redistribute("spread")
///             .map("double", |x| x * 2)
///             .output("out", Print);
///         member.run(&flow, RunConfig::default());
///     }
///     let outcomes = LocalCluster::new("doubles_on_two_processes", 2).run().unwrap();
///     let mut got: Vec<u64> = Vec::new();
///     for outcome in &outcomes {
///         assert!(outcome.status.success(), "{outcome}");
///         got.extend(outcome.lines("item: ").map(|l| l.parse::<u64>().unwrap()));
///     }
///     got.sort();
///     assert_eq!(got, (1..=10).map(|x| x * 2).collect::<Vec<_>>());
/// }
/// ```
#[derive(Debug, Clone)]
pub struct LocalCluster {
    test: String,
    processes: usize,
    workers_per_process: usize,
    timeout: Duration,
    env: Vec<(String, String)>,
}

impl LocalCluster {
    /// A cluster of `processes` processes (at least 1) that each run the test called
    /// `test_name`, with 1 worker each and a 30 s timeout. The name is the test's path
    /// within its test binary, as `cargo test -- --exact` expects it (`module::test` for a
    /// test in a module).
    pub fn new(test_name: &str, processes: usize) -> Self {
        LocalCluster {
            test: test_name.to_string(),
            processes: processes.max(1),
            workers_per_process: 1,
            timeout: Duration::from_secs(30),
            env: Vec::new(),
        }
    }

    /// Worker threads in each process (at least 1).
    pub fn workers_per_process(mut self, workers: usize) -> Self {
        self.workers_per_process = workers.max(1);
        self
    }

    /// How long to wait for the processes before killing those still running.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets an environment variable in every child, for example to pick a scenario.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// In a child process started by [`run`](Self::run): this process's place in the
    /// cluster. `None` in the parent (the test as started by the harness).
    pub fn member() -> Option<ClusterMember> {
        let process_id = std::env::var(ENV_PROCESS_ID).ok()?.parse().ok()?;
        let addresses = std::env::var(ENV_ADDRESSES)
            .ok()?
            .split(';')
            .map(String::from)
            .collect();
        let workers_per_process = std::env::var(ENV_WORKERS).ok()?.parse().ok()?;
        Some(ClusterMember {
            process_id,
            addresses,
            workers_per_process,
        })
    }

    /// Starts the processes on free loopback ports and waits for all of them (up to the
    /// timeout). Returns one outcome per process, in process-id order.
    pub fn run(&self) -> std::io::Result<Vec<ProcessOutcome>> {
        let exe = std::env::current_exe()?;
        let ports = ReservedPorts::bind(self.processes)?;
        let addresses = ports.addresses()?.join(";");
        let started = Instant::now();
        let mut running = Vec::with_capacity(self.processes);
        for id in 0..self.processes {
            let mut command = Command::new(&exe);
            command
                .args([
                    self.test.as_str(),
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                    "-q",
                ])
                .env(ENV_PROCESS_ID, id.to_string())
                .env(ENV_ADDRESSES, &addresses)
                .env(ENV_WORKERS, self.workers_per_process.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (key, value) in &self.env {
                command.env(key, value);
            }
            ports.hand_to(id, &mut command);
            match Running::start(command) {
                Ok(child) => running.push(child),
                Err(e) => {
                    for child in running {
                        child.kill_and_finish(id, started);
                    }
                    return Err(e);
                }
            }
        }
        // Every child holds its own socket now.
        drop(ports);
        let deadline = started + self.timeout;
        let mut finished: Vec<Option<(ExitStatus, Duration)>> = vec![None; self.processes];
        while finished.iter().any(Option::is_none) && Instant::now() < deadline {
            for (child, slot) in running.iter_mut().zip(finished.iter_mut()) {
                if slot.is_none()
                    && let Some(status) = child.child.try_wait()?
                {
                    *slot = Some((status, started.elapsed()));
                }
            }
            std::thread::sleep(POLL);
        }
        Ok(running
            .into_iter()
            .zip(finished)
            .enumerate()
            .map(|(id, (child, done))| match done {
                Some((status, elapsed)) => child.finish(id, status, elapsed, false),
                None => child.kill_and_finish(id, started),
            })
            .collect())
    }
}

/// A child process and the threads draining its output (so a full pipe never blocks it).
struct Running {
    child: Child,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
}

impl Running {
    fn start(mut command: Command) -> std::io::Result<Running> {
        let mut child = command.spawn()?;
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        Ok(Running {
            child,
            stdout,
            stderr,
        })
    }

    fn kill_and_finish(mut self, id: usize, started: Instant) -> ProcessOutcome {
        let _ = self.child.kill();
        let status = self.child.wait();
        let elapsed = started.elapsed();
        match status {
            Ok(status) => self.finish(id, status, elapsed, true),
            // `wait` only fails if the child was already reaped, which we never do twice.
            Err(e) => ProcessOutcome {
                process_id: id,
                status: ExitStatus::default(),
                timed_out: true,
                elapsed,
                stdout: String::new(),
                stderr: format!("cannot wait for the process: {e}"),
            },
        }
    }

    fn finish(self, id: usize, status: ExitStatus, elapsed: Duration, timed_out: bool) -> ProcessOutcome {
        ProcessOutcome {
            process_id: id,
            status,
            timed_out,
            elapsed,
            stdout: self.stdout.join().unwrap_or_default(),
            stderr: self.stderr.join().unwrap_or_default(),
        }
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// How one process of a [`LocalCluster`] ended.
#[derive(Debug, Clone)]
pub struct ProcessOutcome {
    /// The process's index in the cluster.
    pub process_id: usize,
    /// Its exit status.
    pub status: ExitStatus,
    /// Whether it was still running at the timeout (and so was killed).
    pub timed_out: bool,
    /// When it ended, counted from the start of the cluster.
    pub elapsed: Duration,
    /// Everything it printed to stdout (the test harness's lines included).
    pub stdout: String,
    /// Everything it printed to stderr.
    pub stderr: String,
}

impl ProcessOutcome {
    /// The stdout lines that start with `prefix`, without it.
    pub fn lines<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.stdout.lines().filter_map(move |l| l.strip_prefix(prefix))
    }
}

impl fmt::Display for ProcessOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.timed_out {
            "timed out and was killed"
        } else {
            "ended"
        };
        write!(
            f,
            "process {} {how} after {:?} with {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.process_id,
            self.elapsed,
            crate::exit_status::describe(self.status),
            self.stdout,
            self.stderr
        )
    }
}

/// This process's place in a [`LocalCluster`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMember {
    /// This process's index.
    pub process_id: usize,
    /// Every process's address.
    pub addresses: Vec<String>,
    /// Worker threads in each process.
    pub workers_per_process: usize,
}

impl ClusterMember {
    /// Runs this process's part of `flow` with [`cluster_main`].
    pub fn cluster_main(&self, flow: &Dataflow, config: RunConfig) -> Result<(), FlowError> {
        cluster_main(
            flow,
            self.addresses.clone(),
            self.process_id,
            self.workers_per_process,
            config,
        )
    }

    /// Runs this process's part of `flow` and exits the process as a flow binary would: 0 on
    /// success, or 1 after printing the error to stderr.
    pub fn run(&self, flow: &Dataflow, config: RunConfig) -> ! {
        let outcome = self.cluster_main(flow, config);
        // The harness captures nothing here (--nocapture), but flush what sinks printed.
        use std::io::Write;
        let _ = std::io::stdout().flush();
        match outcome {
            Ok(()) => std::process::exit(0),
            Err(err) => {
                eprintln!("error: {err}");
                std::process::exit(1)
            }
        }
    }
}
