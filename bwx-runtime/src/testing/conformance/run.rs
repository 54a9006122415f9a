//! Running one of the kit's flows, on threads of this process or in a child process, and
//! watching it: what it read (its log), stopping it, killing it, and how it ended.
//!
//! Both ways share the same files in the case directory, so the kit watches them alike:
//! `run-<n>.log` gets a line `<record> <epoch> <worker>` for every item the flow saw
//! (`-` for an item that is not a record); creating `stop-<n>` stops the run gracefully;
//! a child writes how it ended to `end-<n>`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::case::Case;
use crate::errors::FlowError;
use crate::recovery::RecoveryStore;
use crate::testing::MemoryStore;

/// How often watchers look.
pub(crate) const POLL: Duration = Duration::from_millis(5);

/// Where a run keeps its recovery state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Store {
    /// Recovery off.
    None,
    /// A [`MemoryStore`] (in this process only).
    Memory,
    /// A SQLite directory made by `init_dir`.
    Sqlite(PathBuf),
}

/// Which connector a run builds.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Variant {
    /// The system's connector for the case.
    Normal,
    /// Its connector for a resource that does not exist.
    Missing,
    /// Its connector for a wrong address.
    Unreachable,
}

/// The plan of the kit's own source in the sink checks: `parts` partitions of `records`
/// records each, `batch` per batch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Plan {
    pub parts: usize,
    pub records: u64,
    pub batch: u64,
    /// Partition 0 aborts the execution after this many of its batches (in this run).
    pub abort_after: Option<u64>,
    /// Places (a record's seq) where every partition ends its input; a resumed run
    /// continues after the first one it has not passed.
    pub eof_at: Vec<u64>,
}

/// One run of a kit flow.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RunSpec {
    /// The run's number in its case, for file names.
    pub run: usize,
    pub workers: usize,
    pub store: Store,
    /// The epoch interval; zero closes an epoch per batch.
    pub epoch: Duration,
    /// Stop gracefully once this run saw this many records.
    pub stop_after: Option<usize>,
    pub variant: Variant,
    /// Sleep this long per item seen (so that a kill lands mid-run).
    pub pace: Duration,
    /// Write what the source read to the kit's exactly-once file (`out.txt`).
    pub exactly_once_out: bool,
    /// The kit source's plan (sink checks).
    pub plan: Option<Plan>,
}

impl RunSpec {
    pub fn new(run: usize, workers: usize) -> Self {
        RunSpec {
            run,
            workers,
            store: Store::None,
            epoch: Duration::from_millis(20),
            stop_after: None,
            variant: Variant::Normal,
            pace: Duration::ZERO,
            exactly_once_out: false,
            plan: None,
        }
    }
}

/// One item a flow saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The record, or `None` for an item that is not one.
    pub record: Option<u64>,
    pub epoch: u64,
    pub worker: usize,
}

/// The log of a run, written by the flow.
pub(crate) struct Log {
    file: Mutex<File>,
    seen: std::sync::atomic::AtomicUsize,
}

impl Log {
    pub fn create(case: &Case, run: usize) -> std::io::Result<Log> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(case, run))?;
        Ok(Log {
            file: Mutex::new(file),
            seen: Default::default(),
        })
    }

    /// Logs an item; returns how many records this run has seen.
    pub fn push(&self, record: Option<u64>, epoch: u64, worker: usize) -> usize {
        let line = match record {
            Some(r) => format!("{r} {epoch} {worker}\n"),
            None => format!("- {epoch} {worker}\n"),
        };
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // A lost log line shows as a lost record, so a failed write is not hidden.
        let _ = file.write_all(line.as_bytes());
        self.seen.fetch_add(1, Ordering::SeqCst) + 1
    }
}

fn log_path(case: &Case, run: usize) -> PathBuf {
    case.dir().join(format!("run-{run}.log"))
}

fn stop_path(case: &Case, run: usize) -> PathBuf {
    case.dir().join(format!("stop-{run}"))
}

fn end_path(case: &Case, run: usize) -> PathBuf {
    case.dir().join(format!("end-{run}"))
}

/// What a run read so far.
pub(crate) fn seen(case: &Case, run: usize) -> Vec<Seen> {
    let text = std::fs::read_to_string(log_path(case, run)).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let record = fields.next()?;
            let epoch = fields.next()?.parse().ok()?;
            let worker = fields.next()?.parse().ok()?;
            Some(Seen {
                record: record.parse().ok(),
                epoch,
                worker,
            })
        })
        .collect()
}

/// Sets `stop` once `stop-<run>` exists in the case directory, until `done`.
pub(crate) fn watch_stop_file(case: &Case, run: usize, stop: Arc<AtomicBool>, done: Arc<AtomicBool>) {
    let path = stop_path(case, run);
    std::thread::spawn(move || {
        while !done.load(Ordering::SeqCst) {
            if path.exists() {
                stop.store(true, Ordering::SeqCst);
                return;
            }
            std::thread::sleep(POLL);
        }
    });
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// It returned `Ok`.
    Ok,
    /// It returned an error (its report, cause chain included).
    Failed(String),
    /// It was still running at the deadline and was left (a thread) or killed (a child).
    Hung,
    /// It was killed with SIGKILL by the kit.
    Killed,
}

/// The function that runs a kit flow in this process: the spec, the graceful-stop flag,
/// and the in-memory store of an in-process run.
pub(crate) type RunFn = Arc<
    dyn Fn(&RunSpec, Arc<AtomicBool>, Option<Arc<dyn RecoveryStore>>) -> Result<(), FlowError> + Send + Sync,
>;

enum Way {
    Thread(Option<JoinHandle<Result<(), FlowError>>>),
    Child(Child),
}

/// A run in progress.
pub(crate) struct Running {
    case: Case,
    run: usize,
    way: Way,
    started: Instant,
    killed: bool,
    stderr: PathBuf,
}

impl Running {
    /// Starts `spec` on a thread of this process.
    pub fn in_thread(case: &Case, spec: RunSpec, memory: Option<Arc<MemoryStore>>, run: RunFn) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        watch_stop_file(case, spec.run, stop.clone(), done.clone());
        let number = spec.run;
        let handle = std::thread::spawn(move || {
            let store = memory.map(|m| m as Arc<dyn RecoveryStore>);
            let result = run(&spec, stop, store);
            done.store(true, Ordering::SeqCst);
            result
        });
        Running {
            case: case.clone(),
            run: number,
            way: Way::Thread(Some(handle)),
            started: Instant::now(),
            killed: false,
            stderr: PathBuf::new(),
        }
    }

    /// Starts `spec` in a child process: the test binary running only `test`.
    pub fn in_child(
        case: &Case,
        spec: &RunSpec,
        test: &str,
        job: &super::child::Job,
    ) -> std::io::Result<Running> {
        let exe = std::env::current_exe()?;
        let stdin_path = case.dir().join("stdin");
        let stdin = if stdin_path.exists() {
            Stdio::from(File::open(&stdin_path)?)
        } else {
            Stdio::null()
        };
        let stdout = OpenOptions::new()
            .create(true)
            .append(true)
            .open(case.dir().join("stdout"))?;
        let stderr_path = case.dir().join(format!("stderr-{}", spec.run));
        let stderr = File::create(&stderr_path)?;
        let child = Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
            .env(
                super::child::ENV,
                serde_json::to_string(job).map_err(std::io::Error::other)?,
            )
            .env_remove("BWX_FAILPOINT")
            .stdin(stdin)
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()?;
        Ok(Running {
            case: case.clone(),
            run: spec.run,
            way: Way::Child(child),
            started: Instant::now(),
            killed: false,
            stderr: stderr_path,
        })
    }

    /// What it read so far.
    pub fn seen(&self) -> Vec<Seen> {
        seen(&self.case, self.run)
    }

    /// Whether it has ended.
    pub fn finished(&mut self) -> bool {
        match &mut self.way {
            Way::Thread(handle) => handle.as_ref().is_none_or(|h| h.is_finished()),
            Way::Child(child) => !matches!(child.try_wait(), Ok(None)),
        }
    }

    /// Asks it to stop gracefully.
    pub fn stop(&self) {
        let _ = File::create(stop_path(&self.case, self.run));
    }

    /// Kills a child with SIGKILL (a thread cannot be killed: it is asked to stop).
    pub fn kill(&mut self) {
        match &mut self.way {
            Way::Thread(_) => self.stop(),
            Way::Child(child) => {
                let _ = child.kill();
                let _ = child.wait();
                self.killed = true;
            }
        }
    }

    /// Waits until it ends or `deadline` passes.
    pub fn wait(mut self, deadline: Duration) -> End {
        while !self.finished() && self.started.elapsed() < deadline {
            std::thread::sleep(POLL);
        }
        if self.killed {
            return End::Killed;
        }
        match self.way {
            Way::Thread(ref mut handle) => {
                if !handle.as_ref().is_none_or(|h| h.is_finished()) {
                    // Asked to stop; a thread that ignores it is left behind.
                    self.stop();
                    return End::Hung;
                }
                match handle.take().map(|h| h.join()) {
                    Some(Ok(Ok(()))) => End::Ok,
                    Some(Ok(Err(e))) => End::Failed(e.report()),
                    Some(Err(panic)) => End::Failed(format!(
                        "the run panicked: {}",
                        super::battery::panic_text(&panic)
                    )),
                    None => End::Failed("the run was already collected".into()),
                }
            }
            Way::Child(ref mut child) => {
                if matches!(child.try_wait(), Ok(None)) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return End::Hung;
                }
                let text = std::fs::read_to_string(end_path(&self.case, self.run)).unwrap_or_default();
                match text.strip_prefix("error: ") {
                    _ if text == "ok" => End::Ok,
                    Some(report) => End::Failed(report.to_string()),
                    None => {
                        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                        End::Failed(format!(
                            "the child process ended without saying how ({}); its stderr: {}",
                            child
                                .try_wait()
                                .ok()
                                .flatten()
                                .map(crate::exit_status::describe)
                                .unwrap_or_default(),
                            stderr.trim()
                        ))
                    }
                }
            }
        }
    }
}

/// Records how a child's run ended, for the parent.
pub(crate) fn write_end(case: &Case, run: usize, result: &Result<(), FlowError>) {
    let text = match result {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("error: {}", e.report()),
    };
    let _ = std::fs::write(end_path(case, run), text);
}
