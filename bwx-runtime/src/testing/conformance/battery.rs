//! What the two kits share: [`Battery`], the settings of a kit and the loop that runs each
//! check in a fresh case and reports it, and how a kit flow is started and configured.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::case::{Case, run_id};
use super::child::{self, Job, Kit};
use super::report::{Report, Verdict, finish};
use super::run::{End, RunFn, RunSpec, Running, Store};
use crate::errors::FlowError;
use crate::inputs::ConnectorError;
use crate::recovery::{RecoveryStore, SqliteRecovery};
use crate::testing::MemoryStore;

/// A battery of checks `C` run against the system `S`: [`SourceKit`](super::SourceKit) (the
/// checks are [`SourceCheck`](super::SourceCheck)s) or [`SinkKit`](super::SinkKit)
/// ([`SinkCheck`](super::SinkCheck)s). See the [module docs](super).
pub struct Battery<S, C> {
    pub(super) system: Arc<S>,
    pub(super) test: String,
    pub(super) records: u64,
    pub(super) timeout: Duration,
    only: Option<BTreeSet<C>>,
}

/// Makes a fresh case of the running battery by name.
pub(super) type NewCase<'a> = &'a dyn Fn(&str) -> Result<Case, String>;

impl<S, C: Copy + Ord + fmt::Debug> Battery<S, C> {
    pub(super) fn with(system: S, test: &str) -> Self {
        Battery {
            system: Arc::new(system),
            test: test.to_string(),
            records: 12,
            timeout: Duration::from_secs(60),
            only: None,
        }
    }

    /// Records per partition (at least 6; default 12).
    pub fn records_per_partition(mut self, n: u64) -> Self {
        self.records = n.max(6);
        self
    }

    /// How long one run may take before it counts as hung (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs only these checks.
    pub fn only(mut self, checks: impl IntoIterator<Item = C>) -> Self {
        self.only = Some(checks.into_iter().collect());
        self
    }

    /// Runs each check of `all` that was asked for, in order: `check` gets it, a maker of
    /// fresh cases and the run's id; an `Err` or a panic fails the check. In a child process
    /// of `kit`'s kill check, runs the child's flow (from `run_fn`) and exits instead.
    pub(super) fn run_checks(
        &self,
        kit: Kit,
        connector: String,
        all: &[C],
        run_fn: impl FnOnce(&Case) -> RunFn,
        check: impl Fn(C, NewCase<'_>, &str) -> Result<Verdict, String>,
    ) -> Report<C> {
        let mut report = Report::new(connector);
        if let Some(job) = child::job() {
            if job.kit == kit {
                child::main(job, run_fn);
            }
            // A child of the other kit in the same test: that kit runs it.
            return report;
        }
        let base = std::env::temp_dir().join(format!("bwx-conformance-{}", run_id()));
        let run = run_id();
        let case =
            |name: &str| Case::fresh(&base, &run, name).map_err(|e| format!("cannot make a case: {e}"));
        for &c in all {
            if self.only.as_ref().is_some_and(|o| !o.contains(&c)) {
                continue;
            }
            let started = Instant::now();
            let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(c, &case, &run)))
                .map(|outcome| outcome.unwrap_or_else(Verdict::Failed))
                .unwrap_or_else(|panic| {
                    Verdict::Failed(format!("the check panicked: {}", panic_text(&panic)))
                });
            report.push(c, verdict, started.elapsed());
        }
        finish(&base, &mut report);
        report
    }

    /// Starts a kit flow: in a thread of this process (with `memory` as its store), or in a
    /// child process when the system needs one.
    pub(super) fn start_run(
        &self,
        kit: Kit,
        in_subprocess: bool,
        case: &Case,
        spec: RunSpec,
        memory: Option<Arc<MemoryStore>>,
        run_fn: impl FnOnce(&Case) -> RunFn,
    ) -> Result<Running, String> {
        if in_subprocess {
            return self.start_child(kit, case, spec);
        }
        Ok(Running::in_thread(case, spec, memory, run_fn(case)))
    }

    /// Starts a kit flow in a child process: the test binary, re-executed.
    pub(super) fn start_child(&self, kit: Kit, case: &Case, spec: RunSpec) -> Result<Running, String> {
        let job = Job {
            kit,
            case_name: case.name().to_string(),
            case_dir: case.dir().to_path_buf(),
            spec: spec.clone(),
        };
        Running::in_child(case, &spec, &self.test, &job)
            .map_err(|e| format!("cannot start a child process: {e}"))
    }
}

/// The connector (`what`: source or sink) a run's variant asked for, or the error that
/// stops the run naming `step`.
pub(super) fn connector_of<T>(
    built: Option<Result<T, ConnectorError>>,
    step: &str,
    what: &str,
) -> Result<T, FlowError> {
    built
        .ok_or_else(|| FlowError::Setup(format!("the system has no such {what}")))?
        .map_err(|e| {
            FlowError::connector(
                &crate::StepId::new(step.to_string()),
                0,
                "-",
                format!("cannot build the {what}"),
                e,
            )
        })
}

/// The configuration of a kit flow: its epochs, its stop flag and its recovery store.
pub(super) fn run_config(
    spec: &RunSpec,
    stop: Arc<AtomicBool>,
    memory: Option<Arc<dyn RecoveryStore>>,
) -> Result<crate::RunConfig, FlowError> {
    let config = crate::RunConfig::default()
        .epoch_interval(spec.epoch)
        .stop_flag(stop);
    Ok(match &spec.store {
        Store::None => config,
        Store::Memory => {
            let store = memory.ok_or_else(|| FlowError::Setup("no in-memory store for this run".into()))?;
            config.recovery(store)
        }
        Store::Sqlite(dir) => config.recovery(SqliteRecovery::open(dir, Duration::ZERO, "kit")?),
    })
}

/// How a run ended, for a verdict.
pub(super) fn describe_end(end: &End) -> String {
    match end {
        End::Ok => "ended".into(),
        End::Failed(report) => format!("failed: {report}"),
        End::Hung => "did not end before the timeout".into(),
        End::Killed => "was killed".into(),
    }
}

/// An error and its causes, on one line.
pub(crate) fn report(err: &(dyn std::error::Error + 'static)) -> String {
    crate::errors::report(err)
}

/// What a panic said.
pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(not a string)".into()
    }
}
