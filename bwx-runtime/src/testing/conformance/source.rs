//! The source battery: [`SourceKit`] runs a [`SourceSystem`]'s source through every
//! [`SourceCheck`].

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::battery::{Battery, NewCase, connector_of, describe_end, panic_text, report, run_config};
use super::case::Case;
use super::child::Kit;
use super::flows::{Discard, KitFileSink, Rng, read_durable, read_records};
use super::records::{Tally, order_violation, range};
use super::report::{Report, SourceCheck, Verdict};
use super::run::{End, POLL, RunFn, RunSpec, Running, Seen, Store, Variant};
use crate::errors::FlowError;
use crate::flow::Dataflow;
use crate::inputs::{ConnectorError, DynamicSource, FixedPartitionedSource};
use crate::operators::{DynamicKind, FixedKind, IntoSource};
use crate::outputs::Delivery;
use crate::recovery::{RecoveryStore, codec, init_dir};
use crate::testing::MemoryStore;

/// How a source ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// It reads what is there when it starts and ends by itself (a file); a resumed run
    /// reads what was appended since.
    AtEof,
    /// It reads what is appended while it runs and runs until stopped (a topic).
    Tails,
}

/// What the kit needs to know about a source beyond [`IntoSource`]: its partitions, for a
/// fixed-partitioned source. Implemented for every [`FixedPartitionedSource`]
/// ([`FixedKind`]) and every [`DynamicSource`] ([`DynamicKind`]).
pub trait SourceUnderTest<M>: IntoSource<M> {
    /// The partitions this instance lists; `None` for a dynamic source.
    fn listed_parts(&self) -> Option<Result<Vec<String>, ConnectorError>>;
}

impl<S: FixedPartitionedSource> SourceUnderTest<FixedKind> for S {
    fn listed_parts(&self) -> Option<Result<Vec<String>, ConnectorError>> {
        Some(self.list_parts())
    }
}

impl<S: DynamicSource> SourceUnderTest<DynamicKind> for S {
    fn listed_parts(&self) -> Option<Result<Vec<String>, ConnectorError>> {
        None
    }
}

/// The items a system's source emits.
type ItemOf<S> = <<S as SourceSystem>::Source as IntoSource<<S as SourceSystem>::Kind>>::Item;

/// The system a source reads, as the kit drives it.
///
/// Records are numbers (see the [module docs](super)); `append` puts records into a
/// partition of the case's resources and `record` finds the record in an item the source
/// emitted. Keep the source's batches small (2 to 4 items), so that runs have several
/// epochs and snapshots to resume from.
pub trait SourceSystem: Send + Sync + 'static {
    /// [`FixedKind`] or [`DynamicKind`].
    type Kind: 'static;
    /// The source under test.
    type Source: SourceUnderTest<Self::Kind>;

    /// The connector's name, for the report.
    fn describe(&self) -> String;

    /// How many partitions [`prepare`](Self::prepare) makes, and so how many the source
    /// must list.
    fn partitions(&self) -> usize {
        1
    }

    /// How the source ends.
    fn ending(&self) -> Ending;

    /// What the source promises across resumes: exactly-once (its position is in its
    /// snapshot) or at-least-once (acknowledged to a broker that redelivers).
    fn guarantee(&self) -> Delivery {
        Delivery::ExactlyOnce
    }

    /// Creates the case's resources, empty: files, a table, a topic with
    /// [`partitions`](Self::partitions) partitions.
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError>;

    /// Appends `records` to partition `part` of the case's resources, in order.
    fn append(&self, case: &Case, part: usize, records: &[u64]) -> Result<(), ConnectorError>;

    /// The source that reads the case's resources.
    fn source(&self, case: &Case) -> Result<Self::Source, ConnectorError>;

    /// The record an item carries; `None` when it carries none (the kit reports it).
    fn record(&self, item: &ItemOf<Self>) -> Option<u64>;

    /// A source for a resource that does not exist (a missing file, table or topic);
    /// `None` when the system has no such thing. An `Err` means the connector refused it
    /// when built, which passes.
    fn missing(&self, case: &Case) -> Option<Result<Self::Source, ConnectorError>> {
        let _ = case;
        None
    }

    /// A source for a wrong address (a port nothing listens on); `None` when the system
    /// has no address.
    fn unreachable(&self, case: &Case) -> Option<Result<Self::Source, ConnectorError>> {
        let _ = case;
        None
    }

    /// Whether every run must be in a child process of its own (a source of standard
    /// input: the child's stdin is the file `stdin` in the case directory).
    fn in_subprocess(&self) -> bool {
        false
    }
}

/// Runs the source battery. See the [module docs](super).
pub type SourceKit<S> = Battery<S, SourceCheck>;

const ALL: [SourceCheck; 8] = [
    SourceCheck::PartitionsListed,
    SourceCheck::ReadsOnce,
    SourceCheck::ResumeFromEverySnapshot,
    SourceCheck::EofAndTailing,
    SourceCheck::Rescale,
    SourceCheck::KillAndResume,
    SourceCheck::MissingResource,
    SourceCheck::WrongAddress,
];

/// The step id of the source in every kit flow.
const STEP: &str = "kit.inp";

/// How long a tailing run keeps going after it saw every record, so that late duplicates
/// show.
const GRACE: Duration = Duration::from_millis(250);

impl<S: SourceSystem> SourceKit<S> {
    /// A kit for `system`'s source, in the test called `test` (its path in the test binary,
    /// which the kill check re-executes).
    pub fn new(system: S, test: &str) -> Self {
        Battery::with(system, test)
    }

    /// Runs the checks and reports. In a child process of the kill check, runs the child's
    /// flow and exits instead.
    pub fn run(self) -> Report<SourceCheck> {
        self.run_checks(
            Kit::Source,
            self.system.describe(),
            &ALL,
            |case| self.run_fn(case),
            |check, case, run| self.check(check, case, run),
        )
    }

    fn check(&self, check: SourceCheck, case: NewCase<'_>, run: &str) -> Result<Verdict, String> {
        match check {
            SourceCheck::PartitionsListed => case("parts").and_then(|c| self.partitions_listed(&c)),
            SourceCheck::ReadsOnce => self.reads_once(case),
            SourceCheck::ResumeFromEverySnapshot => {
                case("snap").and_then(|c| self.resume_from_every_snapshot(&c))
            }
            SourceCheck::EofAndTailing => case("eof").and_then(|c| self.eof_and_tailing(&c)),
            SourceCheck::Rescale => case("rescale").and_then(|c| self.rescale(&c)),
            SourceCheck::KillAndResume => case("kill").and_then(|c| self.kill_and_resume(&c, run)),
            SourceCheck::MissingResource => case("missing").and_then(|c| self.refused(&c, Variant::Missing)),
            SourceCheck::WrongAddress => case("address").and_then(|c| self.refused(&c, Variant::Unreachable)),
        }
    }

    fn fixed(&self, case: &Case) -> Result<bool, String> {
        let source = self
            .system
            .source(case)
            .map_err(|e| format!("cannot build the source: {}", report(&*e)))?;
        Ok(source.listed_parts().is_some())
    }

    /// Every record of the kit's plan: `records` per partition.
    fn all(&self) -> Vec<Vec<u64>> {
        range(self.system.partitions(), 0, self.records)
    }

    fn append_all(&self, case: &Case, records: &[Vec<u64>]) -> Result<(), String> {
        for (part, recs) in records.iter().enumerate() {
            if !recs.is_empty() {
                self.system
                    .append(case, part, recs)
                    .map_err(|e| format!("cannot append to partition {part}: {}", report(&*e)))?;
            }
        }
        Ok(())
    }

    fn prepared(&self, case: &Case) -> Result<(), String> {
        self.system
            .prepare(case)
            .map_err(|e| format!("cannot prepare the case {}: {}", case.name(), report(&*e)))
    }

    fn exactly_once(&self) -> bool {
        self.system.guarantee() == Delivery::ExactlyOnce
    }

    // ---- the checks ----

    fn partitions_listed(&self, case: &Case) -> Result<Verdict, String> {
        self.prepared(case)?;
        self.append_all(case, &range(self.system.partitions(), 0, 1))?;
        if !self.fixed(case)? {
            return Ok(Verdict::NotApplicable(
                "a dynamic source has no partitions".into(),
            ));
        }
        // Three instances, as three processes would build, each listing three times, at
        // the same time.
        let listings: Vec<Result<Vec<String>, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| -> Result<Vec<Vec<String>>, String> {
                        let source = self
                            .system
                            .source(case)
                            .map_err(|e| format!("cannot build the source: {}", report(&*e)))?;
                        (0..3)
                            .map(|_| match source.listed_parts() {
                                Some(Ok(parts)) => Ok(parts),
                                Some(Err(e)) => Err(format!("list_parts failed: {}", report(&*e))),
                                None => Err("the source stopped listing partitions".into()),
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| match h.join() {
                    Ok(Ok(lists)) => lists.into_iter().map(Ok).collect(),
                    Ok(Err(e)) => vec![Err(e)],
                    Err(p) => vec![Err(format!("list_parts panicked: {}", panic_text(&p)))],
                })
                .collect()
        });
        let mut first: Option<Vec<String>> = None;
        for listing in listings {
            let mut parts = listing?;
            let before = parts.len();
            parts.sort();
            parts.dedup();
            if parts.len() != before {
                return Ok(Verdict::Failed(format!(
                    "a listing names a partition twice: {parts:?}"
                )));
            }
            match &first {
                None => first = Some(parts),
                Some(f) if *f != parts => {
                    return Ok(Verdict::Failed(format!(
                        "listings differ: {f:?} and then {parts:?}; every worker must list the same partitions for the same data"
                    )));
                }
                Some(_) => {}
            }
        }
        let parts = first.unwrap_or_default();
        if parts.len() != self.system.partitions() {
            return Ok(Verdict::Failed(format!(
                "{} partitions listed ({parts:?}) for the {} the system made",
                parts.len(),
                self.system.partitions()
            )));
        }
        Ok(Verdict::Passed(format!(
            "3 instances x 3 listings agree on {} partitions {parts:?}",
            parts.len()
        )))
    }

    fn reads_once(&self, case: NewCase<'_>) -> Result<Verdict, String> {
        let mut seen_by = Vec::new();
        for workers in [1, 3] {
            let case = case(&format!("once{workers}"))?;
            self.prepared(&case)?;
            let all = self.all();
            self.append_all(&case, &all)?;
            let mut spec = RunSpec::new(0, workers);
            spec.epoch = Duration::from_millis(10);
            let (end, seen) = self.run_to(&case, spec, None, &all.concat())?;
            if let Some(bad) = self.wrong_end(&end, false) {
                return Ok(Verdict::Failed(format!("on {workers} workers: {bad}")));
            }
            if let Some(bad) = unexpected_items(&seen) {
                return Ok(Verdict::Failed(bad));
            }
            let got: Vec<u64> = seen.iter().filter_map(|s| s.record).collect();
            let tally = Tally::of(all.concat(), got.iter().copied());
            if !tally.exact() {
                return Ok(Verdict::Failed(format!(
                    "on {workers} workers: {}",
                    tally.describe(false)
                )));
            }
            if let Some(bad) = order_violation(got.iter().copied()) {
                return Ok(Verdict::Failed(format!("on {workers} workers: {bad}")));
            }
            let workers_used: BTreeSet<usize> = seen.iter().map(|s| s.worker).collect();
            seen_by.push(format!(
                "{workers} worker(s): {} records, read on workers {workers_used:?}",
                got.len()
            ));
        }
        Ok(Verdict::Passed(seen_by.join("; ")))
    }

    fn resume_from_every_snapshot(&self, case: &Case) -> Result<Verdict, String> {
        self.prepared(case)?;
        if !self.fixed(case)? {
            return Ok(Verdict::NotApplicable(
                "a dynamic source keeps no position".into(),
            ));
        }
        if self.system.in_subprocess() {
            return Ok(Verdict::NotApplicable(
                "its runs are in child processes, which cannot share an in-memory store".into(),
            ));
        }
        if !self.exactly_once() {
            return Ok(Verdict::NotApplicable(
                "an at-least-once source keeps its position in the broker, not in its snapshots".into(),
            ));
        }
        let all = self.all();
        self.append_all(case, &all)?;
        let store = MemoryStore::new(3);
        let mut spec = RunSpec::new(0, 2);
        spec.store = Store::Memory;
        spec.epoch = Duration::ZERO;
        let (end, first) = self.run_to(case, spec, Some(store.clone()), &all.concat())?;
        if let Some(bad) = self.wrong_end(&end, false) {
            return Ok(Verdict::Failed(format!("the first run: {bad}")));
        }
        let tally = Tally::of(all.concat(), first.iter().filter_map(|s| s.record));
        if !tally.exact() {
            return Ok(Verdict::Failed(format!(
                "the first run: {}",
                tally.describe(false)
            )));
        }
        // Every position the source stored, by partition and epoch.
        let mut positions: BTreeMap<Vec<u8>, BTreeMap<u64, Vec<u8>>> = BTreeMap::new();
        for snap in store.written() {
            if snap.step_id.as_str() == STEP
                && let Some(state) = snap.state
            {
                positions.entry(snap.key).or_default().insert(snap.epoch, state);
            }
        }
        let epochs: BTreeSet<u64> = positions.values().flat_map(|p| p.keys().copied()).collect();
        if epochs.len() < 2 {
            return Ok(Verdict::Failed(format!(
                "the source stored {} position(s) over {} records; it must snapshot its position at every epoch (is its batch too large?)",
                epochs.len(),
                tally_len(&all)
            )));
        }
        let epochs: Vec<u64> = sample(epochs.into_iter().collect(), 12);
        for (i, &epoch) in epochs.iter().enumerate() {
            let seeded = MemoryStore::new(3);
            for (key, by_epoch) in &positions {
                if let Some((_, state)) = by_epoch.range(..=epoch).next_back() {
                    let part: String = codec::decode_key(key).map_err(|e| {
                        format!("the source stored a position under a key that is not a partition name: {e}")
                    })?;
                    seeded.put_position(STEP, &part, state.clone());
                }
            }
            let expected: Vec<u64> = first
                .iter()
                .filter(|s| s.epoch > epoch)
                .filter_map(|s| s.record)
                .collect();
            let mut spec = RunSpec::new(1 + i, if i % 2 == 0 { 1 } else { 3 });
            spec.store = Store::Memory;
            let (end, got) = self.run_to(case, spec, Some(seeded.resume()), &expected)?;
            if let Some(bad) = self.wrong_end(&end, false) {
                return Ok(Verdict::Failed(format!("resumed after epoch {epoch}: {bad}")));
            }
            let tally = Tally::of(expected.iter().copied(), got.iter().filter_map(|s| s.record));
            if !tally.exact() {
                return Ok(Verdict::Failed(format!(
                    "resumed from the positions stored at the end of epoch {epoch} ({}): {}",
                    show_positions(&positions, epoch),
                    tally.describe(false)
                )));
            }
        }
        Ok(Verdict::Passed(format!(
            "{} records over {} epochs; resumed from the positions of epochs {epochs:?}",
            tally_len(&all),
            first.iter().map(|s| s.epoch).collect::<BTreeSet<_>>().len()
        )))
    }

    fn eof_and_tailing(&self, case: &Case) -> Result<Verdict, String> {
        self.prepared(case)?;
        let fixed = self.fixed(case)?;
        let half = self.records / 2;
        let first = range(self.system.partitions(), 0, half);
        let second = range(self.system.partitions(), half, self.records);
        self.append_all(case, &first)?;
        let resumable = fixed && !self.system.in_subprocess();
        let store = MemoryStore::new(2);
        let mut spec = RunSpec::new(0, 2);
        if resumable {
            spec.store = Store::Memory;
        }
        match self.system.ending() {
            Ending::AtEof => {
                let (end, seen) = self.run_to(case, spec, Some(store.clone()), &[])?;
                if end != End::Ok {
                    return Ok(Verdict::Failed(format!(
                        "a source that ends at EOF did not end by itself with what was there: {}",
                        describe_end(&end)
                    )));
                }
                let tally = Tally::of(first.concat(), seen.iter().filter_map(|s| s.record));
                if !tally.exact() {
                    return Ok(Verdict::Failed(format!("up to EOF: {}", tally.describe(false))));
                }
                self.append_all(case, &second)?;
                if !resumable {
                    return Ok(Verdict::Passed(format!(
                        "ended by itself after {} records (a dynamic source keeps no position to resume)",
                        seen.len()
                    )));
                }
                let mut spec = RunSpec::new(1, 3);
                spec.store = Store::Memory;
                let (end, seen) = self.run_to(case, spec, Some(store.resume()), &[])?;
                let tally = Tally::of(second.concat(), seen.iter().filter_map(|s| s.record));
                if end != End::Ok || !tally.exact() {
                    return Ok(Verdict::Failed(format!(
                        "resumed after EOF with {} records appended: {}; {}",
                        second.concat().len(),
                        describe_end(&end),
                        tally.describe(false)
                    )));
                }
                let mut spec = RunSpec::new(2, 1);
                spec.store = Store::Memory;
                let (end, seen) = self.run_to(case, spec, Some(store.resume().resume()), &[])?;
                if end != End::Ok || !seen.is_empty() {
                    return Ok(Verdict::Failed(format!(
                        "resumed at EOF with nothing appended: {}, {} items",
                        describe_end(&end),
                        seen.len()
                    )));
                }
                Ok(Verdict::Passed(format!(
                    "ended by itself after {} records; the resumed run read the {} appended since and ended; one more read nothing",
                    first.concat().len(),
                    second.concat().len()
                )))
            }
            Ending::Tails => {
                let running = self.start(case, spec, Some(store.clone()))?;
                let want_first = first.concat();
                if let Err(bad) = wait_for(&running, &want_first, self.timeout) {
                    running.stop();
                    let end = running.wait(self.timeout);
                    return Ok(Verdict::Failed(format!(
                        "before anything was appended while running: {bad}; {}",
                        describe_end(&end)
                    )));
                }
                self.append_all(case, &second)?;
                let both: Vec<u64> = want_first.iter().chain(second.concat().iter()).copied().collect();
                let waited = wait_for(&running, &both, self.timeout);
                std::thread::sleep(GRACE);
                let mut running = running;
                let ended_early = running.finished();
                running.stop();
                let end = running.wait(self.timeout);
                if let Err(bad) = waited {
                    return Ok(Verdict::Failed(format!("records appended while it ran: {bad}")));
                }
                if ended_early {
                    return Ok(Verdict::Failed(format!(
                        "a tailing source ended by itself ({}); it must run until stopped",
                        describe_end(&end)
                    )));
                }
                if end != End::Ok {
                    return Ok(Verdict::Failed(format!("stopped: {}", describe_end(&end))));
                }
                let seen = super::run::seen(case, 0);
                let tally = Tally::of(both.iter().copied(), seen.iter().filter_map(|s| s.record));
                if !tally.exact()
                    && (self.exactly_once() || !tally.lost.is_empty() || !tally.unexpected.is_empty())
                {
                    return Ok(Verdict::Failed(format!(
                        "while tailing: {}",
                        tally.describe(!self.exactly_once())
                    )));
                }
                if !resumable && self.exactly_once() {
                    return Ok(Verdict::Passed(format!(
                        "read {} records appended while it ran and stopped when asked",
                        both.len()
                    )));
                }
                let third = range(self.system.partitions(), self.records, self.records + 3);
                self.append_all(case, &third)?;
                let mut spec = RunSpec::new(1, 3);
                if resumable {
                    spec.store = Store::Memory;
                }
                let (end, seen) = self.run_to(case, spec, Some(store.resume()), &third.concat())?;
                if let Some(bad) = self.wrong_end(&end, false) {
                    return Ok(Verdict::Failed(format!("resumed after a stop: {bad}")));
                }
                // An at-least-once source may deliver again what the stopped run read.
                let again = |r: &u64| !self.exactly_once() && both.contains(r);
                let tally = Tally::of(
                    third.concat(),
                    seen.iter().filter_map(|s| s.record).filter(|r| !again(r)),
                );
                if !tally.exact()
                    && (self.exactly_once() || !tally.lost.is_empty() || !tally.unexpected.is_empty())
                {
                    return Ok(Verdict::Failed(format!(
                        "resumed after a stop, with {} records appended: {}",
                        third.concat().len(),
                        tally.describe(!self.exactly_once())
                    )));
                }
                Ok(Verdict::Passed(format!(
                    "read {} records appended while it ran, ran until stopped, and the resumed run read the {} appended after",
                    both.len(),
                    third.concat().len()
                )))
            }
        }
    }

    fn rescale(&self, case: &Case) -> Result<Verdict, String> {
        self.prepared(case)?;
        if !self.fixed(case)? {
            return Ok(Verdict::NotApplicable(
                "a dynamic source keeps no position".into(),
            ));
        }
        let all = self.all();
        self.append_all(case, &all)?;
        let dir = case.dir().join("db");
        init_dir(&dir, 3).map_err(|e| format!("cannot make the recovery directory: {e}"))?;
        let total = all.concat().len();
        let mut got = Vec::new();
        let mut counts = Vec::new();
        for (run, workers) in [1usize, 3, 2].into_iter().enumerate() {
            let mut spec = RunSpec::new(run, workers);
            spec.store = Store::Sqlite(dir.clone());
            spec.epoch = Duration::ZERO;
            let last = run == 2;
            if !last {
                spec.stop_after = Some(total / 3);
            }
            let read: BTreeSet<u64> = got.iter().copied().collect();
            let want: Vec<u64> = if last {
                all.concat().into_iter().filter(|r| !read.contains(r)).collect()
            } else {
                Vec::new()
            };
            let (end, seen) = self.run_to(case, spec, None, &want)?;
            if let Some(bad) = self.wrong_end(&end, !last) {
                return Ok(Verdict::Failed(format!(
                    "run {} on {workers} workers: {bad}",
                    run + 1
                )));
            }
            counts.push(format!("{} on {workers} worker(s)", seen.len()));
            got.extend(seen.iter().filter_map(|s| s.record));
        }
        let tally = Tally::of(all.concat(), got);
        let ok = if self.exactly_once() {
            tally.exact()
        } else {
            tally.lost.is_empty() && tally.unexpected.is_empty()
        };
        if !ok {
            return Ok(Verdict::Failed(format!(
                "over 3 runs ({}): {}",
                counts.join(", "),
                tally.describe(!self.exactly_once())
            )));
        }
        Ok(Verdict::Passed(format!(
            "records read per run: {}",
            counts.join(", ")
        )))
    }

    fn kill_and_resume(&self, case: &Case, run: &str) -> Result<Verdict, String> {
        self.prepared(case)?;
        if !self.fixed(case)? {
            return Ok(Verdict::NotApplicable(
                "a dynamic source keeps no position".into(),
            ));
        }
        // More records than the other checks, read slowly, so that kills land mid-run.
        let all = range(self.system.partitions(), 0, 3 * self.records);
        self.append_all(case, &all)?;
        let dir = case.dir().join("db");
        init_dir(&dir, 3).map_err(|e| format!("cannot make the recovery directory: {e}"))?;
        let total = all.concat().len();
        let mut rng = Rng::new(run.bytes().map(u64::from).sum());
        let durable_file = case.dir().join("durable");
        let (mut kills, mut runs) = (0, 0);
        loop {
            let mut spec = RunSpec::new(runs, [2, 1, 3][runs % 3]);
            spec.store = Store::Sqlite(dir.clone());
            spec.epoch = Duration::from_millis(10);
            spec.pace = Duration::from_millis(3);
            spec.exactly_once_out = true;
            let durable_before = read_durable(&durable_file);
            let left = total.saturating_sub(durable_before);
            let mut running = self.start_child(Kit::Source, case, spec)?;
            runs += 1;
            if kills < 3 && left >= 3 {
                // Mid-run: once the run made durable progress that a resume must keep, and
                // read a random share of what was left.
                let threshold = 1 + rng.below(left as u64 / 3) as usize;
                let started = Instant::now();
                while (running.seen().len() < threshold || read_durable(&durable_file) <= durable_before)
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
            if self.system.ending() == Ending::Tails {
                // A tailing source is stopped once the file holds every record.
                let started = Instant::now();
                let out = case.dir().join("out.txt");
                while !running.finished() && started.elapsed() < self.timeout {
                    let got: BTreeSet<u64> = read_records(&out).into_iter().collect();
                    if all.iter().flatten().all(|r| got.contains(r)) {
                        break;
                    }
                    std::thread::sleep(POLL);
                }
                std::thread::sleep(GRACE);
                running.stop();
            }
            let end = running.wait(self.timeout);
            if end != End::Ok {
                return Ok(Verdict::Failed(format!(
                    "run {runs} after {kills} kills: {}",
                    describe_end(&end)
                )));
            }
            break;
        }
        if kills == 0 {
            return Ok(Verdict::Failed(
                "the first run ended before it could be killed with durable progress: are the source's batches small?".into(),
            ));
        }
        let got = read_records(&case.dir().join("out.txt"));
        let tally = Tally::of(all.concat(), got.iter().copied());
        let ok = if self.exactly_once() {
            tally.exact()
        } else {
            tally.lost.is_empty() && tally.unexpected.is_empty()
        };
        if !ok {
            return Ok(Verdict::Failed(format!(
                "after {kills} kills with SIGKILL in {runs} runs: {}",
                tally.describe(!self.exactly_once())
            )));
        }
        Ok(Verdict::Passed(format!(
            "{total} records, each once, after {kills} kills with SIGKILL in {runs} runs on 1-3 workers"
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
                let running = self.start(case, spec, None)?;
                let end = running.wait(self.timeout.min(Duration::from_secs(30)));
                match end {
                    End::Failed(report) if report.contains(STEP) => Ok(Verdict::Passed(report)),
                    End::Failed(report) => Ok(Verdict::Failed(format!(
                        "the error does not name the step '{STEP}': {report}"
                    ))),
                    End::Ok => Ok(Verdict::Failed(format!(
                        "a {what} gave a run that ended without an error after {} items: it must be an error, not an empty run",
                        super::run::seen(case, 0).len()
                    ))),
                    other => Ok(Verdict::Failed(format!("a {what}: {}", describe_end(&other)))),
                }
            }
        }
    }

    // ---- running ----

    /// Runs until the end (a source that ends), or until every record of `want` was seen
    /// and a grace period passed (a tailing one), then stops it.
    fn run_to(
        &self,
        case: &Case,
        spec: RunSpec,
        memory: Option<Arc<MemoryStore>>,
        want: &[u64],
    ) -> Result<(End, Vec<Seen>), String> {
        let run = spec.run;
        let stops_itself = spec.stop_after.is_some();
        let mut running = self.start(case, spec, memory)?;
        if self.system.ending() == Ending::Tails && !stops_itself {
            let started = Instant::now();
            while !running.finished() && started.elapsed() < self.timeout {
                let seen: BTreeSet<u64> = running.seen().iter().filter_map(|s| s.record).collect();
                if want.iter().all(|r| seen.contains(r)) {
                    break;
                }
                std::thread::sleep(POLL);
            }
            std::thread::sleep(GRACE);
            running.stop();
        }
        let end = running.wait(self.timeout);
        Ok((end, super::run::seen(case, run)))
    }

    /// What is wrong with how a run ended, if anything. `stopped` runs were stopped by the
    /// kit (a source that ends may then end either way).
    fn wrong_end(&self, end: &End, stopped: bool) -> Option<String> {
        match end {
            End::Ok => None,
            End::Hung if self.system.ending() == Ending::AtEof && !stopped => {
                Some("a source that ends at EOF did not end".into())
            }
            other => Some(describe_end(other)),
        }
    }

    fn start(&self, case: &Case, spec: RunSpec, memory: Option<Arc<MemoryStore>>) -> Result<Running, String> {
        let subprocess = self.system.in_subprocess();
        self.start_run(Kit::Source, subprocess, case, spec, memory, |case| {
            self.run_fn(case)
        })
    }

    /// Builds and runs a kit flow in this process.
    fn run_fn(&self, case: &Case) -> RunFn {
        let system = self.system.clone();
        let case = case.clone();
        Arc::new(
            move |spec: &RunSpec, stop: Arc<AtomicBool>, memory: Option<Arc<dyn RecoveryStore>>| {
                run_source_flow(&system, &case, spec, stop, memory)
            },
        )
    }
}

/// Builds the kit's flow for `spec` and runs it here.
fn run_source_flow<S: SourceSystem>(
    system: &Arc<S>,
    case: &Case,
    spec: &RunSpec,
    stop: Arc<AtomicBool>,
    memory: Option<Arc<dyn RecoveryStore>>,
) -> Result<(), FlowError> {
    let built = match spec.variant {
        Variant::Normal => Some(system.source(case)),
        Variant::Missing => system.missing(case),
        Variant::Unreachable => system.unreachable(case),
    };
    let source = connector_of(built, STEP, "source")?;
    let log = Arc::new(super::run::Log::create(case, spec.run).map_err(|e| FlowError::Setup(e.to_string()))?);
    let flow = Dataflow::new("kit");
    let seen = {
        let (system, log, stop) = (system.clone(), log.clone(), stop.clone());
        let (pace, stop_after) = (spec.pace, spec.stop_after);
        flow.input("inp", source)
            .inspect_debug("seen", move |_, item, epoch, worker| {
                let n = log.push(system.record(item), epoch, worker);
                if !pace.is_zero() {
                    std::thread::sleep(pace);
                }
                if stop_after.is_some_and(|s| n >= s) {
                    stop.store(true, Ordering::SeqCst);
                }
            })
    };
    if spec.exactly_once_out {
        let system = system.clone();
        seen.map("record", move |item| {
            ((), system.record(&item).unwrap_or(u64::MAX))
        })
        .output(
            "out",
            KitFileSink {
                path: case.dir().join("out.txt"),
                durable: case.dir().join("durable"),
            },
        );
    } else {
        seen.output("out", Discard(PhantomData));
    }
    let config = run_config(spec, stop, memory)?;
    crate::run_workers(&flow, spec.workers, config)
}

/// Waits until the run saw every one of `want` (or ended, or `timeout` passed).
fn wait_for(running: &Running, want: &[u64], timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let seen: BTreeSet<u64> = running.seen().iter().filter_map(|s| s.record).collect();
        let missing = want.iter().filter(|r| !seen.contains(r)).count();
        if missing == 0 {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(format!(
                "{missing} of {} records not read after {timeout:?}",
                want.len()
            ));
        }
        std::thread::sleep(POLL);
    }
}

fn unexpected_items(seen: &[Seen]) -> Option<String> {
    let n = seen.iter().filter(|s| s.record.is_none()).count();
    (n > 0).then(|| format!("{n} items carried no record the kit wrote"))
}

fn tally_len(all: &[Vec<u64>]) -> usize {
    all.iter().map(Vec::len).sum()
}

/// At most `n` of `items`, evenly spread, the first and last included.
fn sample(items: Vec<u64>, n: usize) -> Vec<u64> {
    if items.len() <= n {
        return items;
    }
    let last = items.len() - 1;
    (0..n).map(|i| items[i * last / (n - 1)]).collect()
}

fn show_positions(positions: &BTreeMap<Vec<u8>, BTreeMap<u64, Vec<u8>>>, epoch: u64) -> String {
    positions
        .iter()
        .filter_map(|(key, by_epoch)| {
            let name: String = codec::decode_key(key).unwrap_or_else(|_| format!("{key:?}"));
            let (at, _) = by_epoch.range(..=epoch).next_back()?;
            Some(format!("{name} as of epoch {at}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
