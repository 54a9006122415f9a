//! What the kit found: a [`Verdict`] per check.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The checks of [`super::SourceKit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SourceCheck {
    /// Every instance lists the same partitions, every time, without duplicates, and one
    /// per partition the system made (fixed-partitioned sources).
    PartitionsListed,
    /// On 1 and on 3 workers, every record is read once, each partition's in order.
    ReadsOnce,
    /// Resumed from the positions stored at the end of each epoch (in a
    /// [`crate::testing::MemoryStore`]), the source reads exactly the records after them.
    ResumeFromEverySnapshot,
    /// A source that ends does so by itself once it read what was there, and a resumed run
    /// reads what was appended since; a tailing source reads records appended while it
    /// runs, runs until stopped, and resumes after the last one.
    EofAndTailing,
    /// Stopped part-way twice with recovery in SQLite, on 1, then 3, then 2 workers: each
    /// record is read once over the three runs.
    Rescale,
    /// A run in a child process killed with SIGKILL three times and resumed from SQLite
    /// ends with every record once in an exactly-once file (at least once for an
    /// at-least-once source).
    KillAndResume,
    /// A resource that does not exist (a file, a table, a topic) stops the run with an error
    /// naming the step, instead of an empty run.
    MissingResource,
    /// A wrong address (a port nothing listens on) stops the run with an error naming the
    /// step, in bounded time.
    WrongAddress,
}

/// The checks of [`super::SinkKit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SinkCheck {
    /// Every instance lists the same partitions, every time, without duplicates
    /// (fixed-partitioned sinks).
    PartitionsListed,
    /// On 1 and on 3 workers, every record is written once.
    WritesOnce,
    /// A run aborted after each of its epochs in turn and resumed from a
    /// [`crate::testing::MemoryStore`] keeps the declared guarantee: every record once
    /// (exactly-once), or at least once with repeats only of the epochs after the last
    /// durable one (at-least-once).
    DeliveryAcrossAborts,
    /// Three runs ending at EOF points, on 1, 3 and 2 workers with recovery in SQLite, write
    /// every record per the declared guarantee.
    Rescale,
    /// A run in a child process killed with SIGKILL three times and resumed from SQLite
    /// keeps the declared guarantee.
    KillAndResume,
    /// A resource that does not exist stops the run with an error naming the step.
    MissingResource,
    /// A wrong address stops the run with an error naming the step, in bounded time.
    WrongAddress,
}

/// How one check went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It passed; what it saw.
    Passed(String),
    /// It failed; why.
    Failed(String),
    /// It does not apply to this connector; why.
    NotApplicable(String),
}

impl Verdict {
    /// Whether it failed.
    pub fn is_failed(&self) -> bool {
        matches!(self, Verdict::Failed(_))
    }
}

/// The verdict of every check the kit ran, in order.
#[derive(Clone, Debug)]
pub struct Report<C> {
    connector: String,
    outcomes: Vec<(C, Verdict, Duration)>,
    /// Where the cases were kept (`BWX_CONFORMANCE_KEEP`).
    kept: Option<PathBuf>,
}

impl<C: Copy + PartialEq + fmt::Debug> Report<C> {
    pub(crate) fn new(connector: String) -> Self {
        Report {
            connector,
            outcomes: Vec::new(),
            kept: None,
        }
    }

    pub(crate) fn push(&mut self, check: C, verdict: Verdict, took: Duration) {
        self.outcomes.push((check, verdict, took));
    }

    pub(crate) fn keep(&mut self, dir: &Path) {
        self.kept = Some(dir.to_path_buf());
    }

    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        !self.outcomes.iter().any(|(_, v, _)| v.is_failed())
    }

    /// The verdict of `check`, if it ran.
    pub fn verdict(&self, check: C) -> Option<&Verdict> {
        self.outcomes
            .iter()
            .find(|(c, _, _)| *c == check)
            .map(|(_, v, _)| v)
    }

    /// Whether `check` ran and failed.
    pub fn failed(&self, check: C) -> bool {
        self.verdict(check).is_some_and(Verdict::is_failed)
    }

    /// The checks that failed.
    pub fn failures(&self) -> Vec<C> {
        self.outcomes
            .iter()
            .filter(|(_, v, _)| v.is_failed())
            .map(|(c, _, _)| *c)
            .collect()
    }

    /// Panics with the whole report unless every check passed or did not apply.
    #[track_caller]
    pub fn assert_passed(&self) {
        if !self.passed() {
            panic!("{self}");
        }
        println!("{self}");
    }
}

impl<C: fmt::Debug> fmt::Display for Report<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.outcomes.iter().filter(|(_, v, _)| v.is_failed()).count();
        writeln!(
            f,
            "conformance of {}: {} checks, {failed} failed",
            self.connector,
            self.outcomes.len()
        )?;
        for (check, verdict, took) in &self.outcomes {
            let (mark, text) = match verdict {
                Verdict::Passed(t) => ("ok  ", t),
                Verdict::Failed(t) => ("FAIL", t),
                Verdict::NotApplicable(t) => ("n/a ", t),
            };
            writeln!(f, "  {mark} {check:?} ({} ms): {text}", took.as_millis())?;
        }
        if let Some(dir) = &self.kept {
            writeln!(f, "  the cases are kept in {}", dir.display())?;
        }
        Ok(())
    }
}

/// Removes the cases' directory, unless `BWX_CONFORMANCE_KEEP` is set (to look at what a
/// failing check left: logs, files, the children's stderr).
pub(crate) fn finish<C: Copy + PartialEq + fmt::Debug>(base: &Path, report: &mut Report<C>) {
    if std::env::var_os("BWX_CONFORMANCE_KEEP").is_some() {
        report.keep(base);
    } else {
        let _ = std::fs::remove_dir_all(base);
    }
}
