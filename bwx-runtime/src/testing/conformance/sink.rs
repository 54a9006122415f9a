//! The sink battery: [`SinkKit`] runs a [`SinkSystem`]'s sink through every [`SinkCheck`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::battery::{Battery, NewCase, connector_of, describe_end, report, run_config};
use super::case::Case;
use super::child::Kit;
use super::flows::{KitSource, Rng};
use super::records::{Tally, range, sample};
use super::report::{Report, SinkCheck, Verdict};
use super::run::{End, POLL, Plan, RunFn, RunSpec, Running, Seen, Store, Variant};
use crate::Data;
use crate::errors::FlowError;
use crate::flow::Dataflow;
use crate::inputs::ConnectorError;
use crate::operators::{DynamicKind, FixedKind, IntoSink};
use crate::outputs::{Delivery, DynamicSink, FixedPartitionedSink};
use crate::recovery::{RecoveryStore, SqliteRecovery, init_dir};
use crate::testing::MemoryStore;

/// What the kit needs to know about a sink beyond [`IntoSink`]: the guarantee it declares,
/// and its partitions for a fixed-partitioned sink. Implemented for every
/// [`FixedPartitionedSink`] ([`FixedKind`]) and every [`DynamicSink`] ([`DynamicKind`]).
pub trait SinkUnderTest<T, M>: IntoSink<T, M> {
    /// The guarantee the sink declares.
    fn declared_delivery(&self) -> Delivery;
    /// The partitions this instance lists; `None` for a dynamic sink.
    fn listed_parts(&self) -> Option<Result<Vec<String>, ConnectorError>>;
}

impl<S: FixedPartitionedSink> SinkUnderTest<(S::Key, S::Value), FixedKind> for S {
    fn declared_delivery(&self) -> Delivery {
        self.delivery()
    }
    fn listed_parts(&self) -> Option<Result<Vec<String>, ConnectorError>> {
        Some(self.list_parts())
    }
}

impl<S: DynamicSink> SinkUnderTest<S::Item, DynamicKind> for S {
    fn declared_delivery(&self) -> Delivery {
        self.delivery()
    }
    fn listed_parts(&self) -> Option<Result<Vec<String>, ConnectorError>> {
        None
    }
}

/// The system a sink writes to, as the kit drives it.
///
/// The kit's own source emits records (see the [module docs](super)) from 3 partitions;
/// `item` turns a record into what the sink takes, and `read_back` finds every record the
/// system holds (as a reader would see it: committed output only).
pub trait SinkSystem: Send + Sync + 'static {
    /// [`FixedKind`] or [`DynamicKind`].
    type Kind: 'static;
    /// What the sink takes: `(key, value)` for a fixed-partitioned sink.
    type Item: Data;
    /// The sink under test.
    type Sink: SinkUnderTest<Self::Item, Self::Kind>;

    /// The connector's name, for the report.
    fn describe(&self) -> String;

    /// Creates the case's resources, empty (a table, a topic, a directory).
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError>;

    /// The sink that writes to the case's resources.
    fn sink(&self, case: &Case) -> Result<Self::Sink, ConnectorError>;

    /// The item that carries `record`.
    fn item(&self, record: u64) -> Self::Item;

    /// Every record the case's resources hold, as a reader sees them, once per copy.
    fn read_back(&self, case: &Case) -> Result<Vec<u64>, ConnectorError>;

    /// A sink for a resource that does not exist; `None` when the system has no such
    /// thing. An `Err` means the connector refused it when built, which passes.
    fn missing(&self, case: &Case) -> Option<Result<Self::Sink, ConnectorError>> {
        let _ = case;
        None
    }

    /// A sink for a wrong address; `None` when the system has no address.
    fn unreachable(&self, case: &Case) -> Option<Result<Self::Sink, ConnectorError>> {
        let _ = case;
        None
    }

    /// Whether every run must be in a child process of its own (a sink to standard output:
    /// the child's stdout is appended to the file `stdout` in the case directory).
    fn in_subprocess(&self) -> bool {
        false
    }
}

/// Runs the sink battery. See the [module docs](super).
pub type SinkKit<S> = Battery<S, SinkCheck>;

const ALL: [SinkCheck; 7] = [
    SinkCheck::PartitionsListed,
    SinkCheck::WritesOnce,
    SinkCheck::DeliveryAcrossAborts,
    SinkCheck::Rescale,
    SinkCheck::KillAndResume,
    SinkCheck::MissingResource,
    SinkCheck::WrongAddress,
];

/// The step id of the sink in every kit flow.
const STEP: &str = "kit.out";
/// Partitions of the kit's source.
const PARTS: usize = 3;
/// Records per batch of the kit's source.
const BATCH: u64 = 3;

impl<S: SinkSystem> SinkKit<S> {
    /// A kit for `system`'s sink, in the test called `test` (its path in the test binary,
    /// which the kill check re-executes).
    pub fn new(system: S, test: &str) -> Self {
        Battery::with(system, test)
    }

    /// Runs the checks and reports. In a child process of the kill check, runs the child's
    /// flow and exits instead.
    pub fn run(self) -> Report<SinkCheck> {
        self.run_checks(
            Kit::Sink,
            self.system.describe(),
            &ALL,
            |case| self.run_fn(case),
            |check, case, run| self.check(check, case, run),
        )
    }

    fn check(&self, check: SinkCheck, case: NewCase<'_>, run: &str) -> Result<Verdict, String> {
        match check {
            SinkCheck::PartitionsListed => case("parts").and_then(|c| self.partitions_listed(&c)),
            SinkCheck::WritesOnce => self.writes_once(case),
            SinkCheck::DeliveryAcrossAborts => self.delivery_across_aborts(case),
            SinkCheck::Rescale => case("rescale").and_then(|c| self.rescale(&c)),
            SinkCheck::KillAndResume => case("kill").and_then(|c| self.kill_and_resume(&c, run)),
            SinkCheck::MissingResource => case("missing").and_then(|c| self.refused(&c, Variant::Missing)),
            SinkCheck::WrongAddress => case("address").and_then(|c| self.refused(&c, Variant::Unreachable)),
        }
    }

    fn sink(&self, case: &Case) -> Result<S::Sink, String> {
        self.system
            .sink(case)
            .map_err(|e| format!("cannot build the sink: {}", report(&*e)))
    }

    fn prepared(&self, case: &Case) -> Result<(), String> {
        self.system
            .prepare(case)
            .map_err(|e| format!("cannot prepare the case {}: {}", case.name(), report(&*e)))
    }

    fn read_back(&self, case: &Case) -> Result<Vec<u64>, String> {
        self.system
            .read_back(case)
            .map_err(|e| format!("cannot read the case {} back: {}", case.name(), report(&*e)))
    }

    fn plan(&self) -> Plan {
        Plan {
            parts: PARTS,
            records: self.records,
            batch: BATCH,
            abort_after: None,
            eof_at: Vec::new(),
        }
    }

    fn all(&self) -> Vec<u64> {
        range(PARTS, 0, self.records).concat()
    }

    /// Whether `got` keeps the guarantee `delivery` for every record of the plan; the
    /// records in `may_repeat` may come more than once in an at-least-once sink.
    fn judge(&self, delivery: Delivery, got: &[u64], may_repeat: Option<&BTreeSet<u64>>) -> Option<String> {
        let tally = Tally::of(self.all(), got.iter().copied());
        match delivery {
            Delivery::ExactlyOnce => {
                (!tally.exact()).then(|| format!("exactly-once: {}", tally.describe(false)))
            }
            _ => {
                if !tally.lost.is_empty() || !tally.unexpected.is_empty() {
                    return Some(format!("at-least-once: {}", tally.describe(true)));
                }
                let repeated: Vec<u64> = tally
                    .duplicated
                    .iter()
                    .map(|(r, _)| *r)
                    .filter(|r| may_repeat.is_some_and(|m| !m.contains(r)))
                    .collect();
                (!repeated.is_empty()).then(|| {
                    format!(
                        "at-least-once: {} records of epochs that were durable before the resume were written again ({})",
                        repeated.len(),
                        sample(repeated.iter().copied())
                    )
                })
            }
        }
    }

    // ---- the checks ----

    fn partitions_listed(&self, case: &Case) -> Result<Verdict, String> {
        self.prepared(case)?;
        if self.sink(case)?.listed_parts().is_none() {
            return Ok(Verdict::NotApplicable("a dynamic sink has no partitions".into()));
        }
        let mut first: Option<Vec<String>> = None;
        for _ in 0..3 {
            let sink = self.sink(case)?;
            for _ in 0..3 {
                let mut parts = match sink.listed_parts() {
                    Some(Ok(parts)) => parts,
                    Some(Err(e)) => {
                        return Ok(Verdict::Failed(format!("list_parts failed: {}", report(&*e))));
                    }
                    None => return Ok(Verdict::Failed("the sink stopped listing partitions".into())),
                };
                let before = parts.len();
                parts.sort();
                parts.dedup();
                if parts.len() != before {
                    return Ok(Verdict::Failed(format!(
                        "a listing names a partition twice: {parts:?}"
                    )));
                }
                if parts.is_empty() {
                    return Ok(Verdict::Failed("the sink lists no partitions".into()));
                }
                match &first {
                    None => first = Some(parts),
                    Some(f) if *f != parts => {
                        return Ok(Verdict::Failed(format!(
                            "listings differ: {f:?} and then {parts:?}; items are routed over the list, so every worker must list the same"
                        )));
                    }
                    Some(_) => {}
                }
            }
        }
        let parts = first.unwrap_or_default();
        Ok(Verdict::Passed(format!(
            "3 instances x 3 listings agree on {parts:?}"
        )))
    }

    fn writes_once(&self, case: NewCase<'_>) -> Result<Verdict, String> {
        let mut done = Vec::new();
        for workers in [1, 3] {
            let case = case(&format!("once{workers}"))?;
            self.prepared(&case)?;
            let mut spec = RunSpec::new(0, workers);
            spec.plan = Some(self.plan());
            let end = self.start(&case, spec, None)?.wait(self.timeout);
            if end != End::Ok {
                return Ok(Verdict::Failed(format!(
                    "on {workers} workers: {}",
                    describe_end(&end)
                )));
            }
            let got = self.read_back(&case)?;
            let tally = Tally::of(self.all(), got.iter().copied());
            if !tally.exact() {
                return Ok(Verdict::Failed(format!(
                    "on {workers} workers, without failures: {}",
                    tally.describe(false)
                )));
            }
            done.push(format!("{} records on {workers} worker(s)", got.len()));
        }
        Ok(Verdict::Passed(done.join(", ")))
    }

    fn delivery_across_aborts(&self, case: NewCase<'_>) -> Result<Verdict, String> {
        let batches = self.records.div_ceil(BATCH);
        let points: Vec<u64> = sample_points(batches);
        let delivery = {
            let c = case("delivery")?;
            self.prepared(&c)?;
            self.sink(&c)?.declared_delivery()
        };
        let mut repeats = 0;
        for &k in &points {
            let case = case(&format!("abort{k}"))?;
            self.prepared(&case)?;
            let (store, memory) = self.store(&case, "db")?;
            let mut spec = RunSpec::new(0, 2);
            spec.store = store.clone();
            spec.epoch = Duration::ZERO;
            spec.plan = Some(Plan {
                abort_after: Some(k),
                ..self.plan()
            });
            let end = self.start(&case, spec, memory.clone())?.wait(self.timeout);
            if let End::Failed(_) | End::Hung = end {
                return Ok(Verdict::Failed(format!(
                    "the run aborted after batch {k}: {}",
                    describe_end(&end)
                )));
            }
            let first = super::run::seen(&case, 0);
            let resumed = memory.as_ref().map(|m| m.resume());
            let resume_epoch = match (&store, &resumed) {
                (_, Some(m)) => m.resume_point().epoch,
                (Store::Sqlite(dir), _) => {
                    let store = SqliteRecovery::open(dir, Duration::ZERO, "kit")
                        .map_err(|e| format!("cannot open the recovery directory: {e}"))?;
                    let summary = store
                        .local_summary()
                        .map_err(|e| format!("cannot read the recovery directory: {e}"))?;
                    store
                        .plan(&[summary])
                        .map_err(|e| format!("cannot plan a resume from the recovery directory: {e}"))?
                        .point
                        .epoch
                }
                _ => 0,
            };
            let mut spec = RunSpec::new(1, 3);
            spec.store = store;
            spec.plan = Some(self.plan());
            let end = self.start(&case, spec, resumed)?.wait(self.timeout);
            if end != End::Ok {
                return Ok(Verdict::Failed(format!(
                    "resumed after an abort after batch {k}: {}",
                    describe_end(&end)
                )));
            }
            let got = self.read_back(&case)?;
            let may_repeat = replayed(&first, resume_epoch);
            if let Some(bad) = self.judge(delivery, &got, Some(&may_repeat)) {
                return Ok(Verdict::Failed(format!(
                    "aborted after batch {k} of partition 0, resumed at epoch {resume_epoch}: {bad}"
                )));
            }
            repeats += got.len().saturating_sub(self.all().len());
        }
        Ok(Verdict::Passed(format!(
            "declared {delivery:?}; aborted after batch {points:?} of {batches} and resumed: kept ({repeats} records written again in all)"
        )))
    }

    fn rescale(&self, case: &Case) -> Result<Verdict, String> {
        self.prepared(case)?;
        let delivery = self.sink(case)?.declared_delivery();
        let dir = case.dir().join("db");
        init_dir(&dir, 3).map_err(|e| format!("cannot make the recovery directory: {e}"))?;
        let third = self.records / 3;
        for (run, workers) in [1usize, 3, 2].into_iter().enumerate() {
            let mut spec = RunSpec::new(run, workers);
            spec.store = Store::Sqlite(dir.clone());
            spec.epoch = Duration::from_millis(5);
            spec.plan = Some(Plan {
                eof_at: vec![third, 2 * third],
                ..self.plan()
            });
            let end = self.start(case, spec, None)?.wait(self.timeout);
            if end != End::Ok {
                return Ok(Verdict::Failed(format!(
                    "run {} on {workers} workers: {}",
                    run + 1,
                    describe_end(&end)
                )));
            }
        }
        let got = self.read_back(case)?;
        if let Some(bad) = self.judge(delivery, &got, None) {
            return Ok(Verdict::Failed(format!("over runs on 1, 3 and 2 workers: {bad}")));
        }
        Ok(Verdict::Passed(format!(
            "declared {delivery:?}; {} records written over runs on 1, 3 and 2 workers",
            got.len()
        )))
    }

    fn kill_and_resume(&self, case: &Case, run: &str) -> Result<Verdict, String> {
        self.prepared(case)?;
        let delivery = self.sink(case)?.declared_delivery();
        let dir = case.dir().join("db");
        init_dir(&dir, 3).map_err(|e| format!("cannot make the recovery directory: {e}"))?;
        let mut rng = Rng::new(run.bytes().map(u64::from).sum::<u64>() + 1);
        let (mut kills, mut runs) = (0, 0);
        loop {
            let mut spec = RunSpec::new(runs, [2, 1, 3][runs % 3]);
            spec.store = Store::Sqlite(dir.clone());
            spec.epoch = Duration::from_millis(15);
            spec.pace = Duration::from_millis(30);
            spec.plan = Some(self.plan());
            let mut running = self.start_child(Kit::Sink, case, spec)?;
            runs += 1;
            if kills < 3 {
                // Mid-run: after a random number of the kit source's batches.
                let threshold = 1 + rng.below(self.all().len() as u64 / 3) as usize;
                let started = Instant::now();
                while running.seen().len() < threshold
                    && !running.finished()
                    && started.elapsed() < self.timeout
                {
                    std::thread::sleep(POLL);
                }
                if !running.finished() {
                    running.kill();
                    kills += 1;
                    continue;
                }
            }
            let end = running.wait(self.timeout);
            if end != End::Ok {
                return Ok(Verdict::Failed(format!(
                    "run {runs} after {kills} kills: {}",
                    describe_end(&end)
                )));
            }
            if kills >= 3 || runs > 12 {
                break;
            }
        }
        if kills == 0 {
            return Ok(Verdict::Failed(
                "every run ended before it could be killed".into(),
            ));
        }
        let got = self.read_back(case)?;
        if let Some(bad) = self.judge(delivery, &got, None) {
            return Ok(Verdict::Failed(format!(
                "after {kills} kills with SIGKILL in {runs} runs: {bad}"
            )));
        }
        Ok(Verdict::Passed(format!(
            "declared {delivery:?}; {} records written ({} expected) after {kills} kills with SIGKILL in {runs} runs",
            got.len(),
            self.all().len()
        )))
    }

    fn refused(&self, case: &Case, variant: Variant) -> Result<Verdict, String> {
        let built = match variant {
            Variant::Missing => self.system.missing(case),
            _ => self.system.unreachable(case),
        };
        let what = match variant {
            Variant::Missing => "missing resource",
            _ => "wrong address",
        };
        match built {
            None => Ok(Verdict::NotApplicable(format!("the system has no {what} to try"))),
            Some(Err(e)) => Ok(Verdict::Passed(format!("refused when built: {}", report(&*e)))),
            Some(Ok(_)) => {
                let mut spec = RunSpec::new(0, 2);
                spec.variant = variant;
                spec.plan = Some(self.plan());
                let end = self
                    .start(case, spec, None)?
                    .wait(self.timeout.min(Duration::from_secs(30)));
                match end {
                    End::Failed(report) if report.contains(STEP) => Ok(Verdict::Passed(report)),
                    End::Failed(report) => Ok(Verdict::Failed(format!(
                        "the error does not name the step '{STEP}': {report}"
                    ))),
                    End::Ok => Ok(Verdict::Failed(format!(
                        "a {what} gave a run that ended without an error: it must be an error, not a run that writes nowhere"
                    ))),
                    other => Ok(Verdict::Failed(format!("a {what}: {}", describe_end(&other)))),
                }
            }
        }
    }

    // ---- running ----

    /// The recovery store of a check: in memory, or SQLite for runs in child processes.
    fn store(&self, case: &Case, name: &str) -> Result<(Store, Option<Arc<MemoryStore>>), String> {
        if self.system.in_subprocess() {
            let dir = case.dir().join(name);
            init_dir(&dir, 3).map_err(|e| format!("cannot make the recovery directory: {e}"))?;
            Ok((Store::Sqlite(dir), None))
        } else {
            Ok((Store::Memory, Some(MemoryStore::new(3))))
        }
    }

    fn start(&self, case: &Case, spec: RunSpec, memory: Option<Arc<MemoryStore>>) -> Result<Running, String> {
        let subprocess = self.system.in_subprocess();
        self.start_run(Kit::Sink, subprocess, case, spec, memory, |case| {
            self.run_fn(case)
        })
    }

    fn run_fn(&self, case: &Case) -> RunFn {
        let system = self.system.clone();
        let case = case.clone();
        Arc::new(
            move |spec: &RunSpec, stop: Arc<AtomicBool>, memory: Option<Arc<dyn RecoveryStore>>| {
                run_sink_flow(&system, &case, spec, stop, memory)
            },
        )
    }
}

/// Builds the kit's sink flow for `spec` and runs it here.
fn run_sink_flow<S: SinkSystem>(
    system: &Arc<S>,
    case: &Case,
    spec: &RunSpec,
    stop: Arc<AtomicBool>,
    memory: Option<Arc<dyn RecoveryStore>>,
) -> Result<(), FlowError> {
    let built = match spec.variant {
        Variant::Normal => Some(system.sink(case)),
        Variant::Missing => system.missing(case),
        Variant::Unreachable => system.unreachable(case),
    };
    let sink = connector_of(built, STEP, "sink")?;
    let plan = spec
        .plan
        .clone()
        .ok_or_else(|| FlowError::Setup("a sink run without the kit source's plan".into()))?;
    let log = Arc::new(super::run::Log::create(case, spec.run).map_err(|e| FlowError::Setup(e.to_string()))?);
    let flow = Dataflow::new("kit");
    let item = system.clone();
    flow.input(
        "inp",
        KitSource {
            plan,
            pace: spec.pace,
        },
    )
    .inspect_debug("seen", move |_, record, epoch, worker| {
        log.push(Some(*record), epoch, worker);
    })
    .map("item", move |record| item.item(record))
    .output("out", sink);
    let config = run_config(spec, stop, memory)?;
    crate::run_workers(&flow, spec.workers, config)
}

/// The records a resumed run replays: those the first run emitted in epochs at or after
/// the resume epoch.
fn replayed(first: &[Seen], resume_epoch: u64) -> BTreeSet<u64> {
    first
        .iter()
        .filter(|s| s.epoch >= resume_epoch)
        .filter_map(|s| s.record)
        .collect()
}

/// Abort points: after batch 1, 2, ... of partition 0, at most 6 of them.
fn sample_points(batches: u64) -> Vec<u64> {
    let all: Vec<u64> = (1..=batches).collect();
    if all.len() <= 6 {
        return all;
    }
    let last = all.len() - 1;
    let picked: BTreeMap<u64, ()> = (0..6).map(|i| (all[i * last / 5], ())).collect();
    picked.into_keys().collect()
}
