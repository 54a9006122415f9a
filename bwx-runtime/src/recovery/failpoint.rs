//! Crash points for crash testing: `BWX_FAILPOINT=NAME[:N]` kills the process with
//! SIGKILL the `N`-th time (default: the first) it reaches the point `NAME`, so that a
//! test can crash a process exactly between two writes instead of at a random time.
//!
//! | name | where |
//! |---|---|
//! | `first-epoch` | an execution's first write to a partition committed (it registered the execution there), before any other partition's |
//! | `after-snapshot-write` | every write: after one partition's rows and progress committed, before the next partition's |
//! | `during-gc` | garbage collection: after each committed chunk of a pass, before the pass is complete |
//! | `during-resume` | loading the stored state (opening the store, or `inspect`): after each partition |
//!
//! Only builds with the `failpoints` feature read the variable (the crash harness turns
//! it on); in every other build a point compiles to nothing.

/// A named crash point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Point {
    FirstEpoch,
    AfterSnapshotWrite,
    DuringGc,
    DuringResume,
}

/// Kills the process if `point` is armed and this is its `N`-th pass.
#[inline]
pub(crate) fn hit(point: Point) {
    #[cfg(feature = "failpoints")]
    armed::hit(point);
    #[cfg(not(feature = "failpoints"))]
    let _ = point;
}

#[cfg(feature = "failpoints")]
mod armed {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::Point;

    impl Point {
        const ALL: [Point; 4] = [
            Point::FirstEpoch,
            Point::AfterSnapshotWrite,
            Point::DuringGc,
            Point::DuringResume,
        ];

        fn name(self) -> &'static str {
            match self {
                Point::FirstEpoch => "first-epoch",
                Point::AfterSnapshotWrite => "after-snapshot-write",
                Point::DuringGc => "during-gc",
                Point::DuringResume => "during-resume",
            }
        }
    }

    /// The armed point and how many more times it may be passed before the kill.
    struct Armed {
        point: Point,
        passes_left: AtomicU64,
    }

    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();

    /// Parses `NAME[:N]`; `None` (with a warning) for anything else, so a typo never crashes.
    fn parse(spec: &str) -> Option<Armed> {
        let (name, nth) = match spec.split_once(':') {
            Some((name, n)) => (name, n.parse::<u64>().ok().filter(|n| *n >= 1)),
            None => (spec, Some(1)),
        };
        let point = Point::ALL.into_iter().find(|p| p.name() == name);
        match (point, nth) {
            (Some(point), Some(nth)) => Some(Armed {
                point,
                passes_left: AtomicU64::new(nth - 1),
            }),
            _ => {
                tracing::warn!(
                    spec,
                    "BWX_FAILPOINT ignored: expected NAME[:N] with N >= 1 and NAME one of first-epoch, after-snapshot-write, during-gc, during-resume"
                );
                None
            }
        }
    }

    /// Kills the process if `point` is armed and this is its `N`-th pass.
    pub(super) fn hit(point: Point) {
        let armed = ARMED.get_or_init(|| std::env::var("BWX_FAILPOINT").ok().and_then(|s| parse(&s)));
        let Some(armed) = armed else { return };
        if armed.point != point {
            return;
        }
        // Passes after the kill was requested cannot happen; `fetch_update` stops at zero.
        let before = armed
            .passes_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if before.is_err() {
            // SAFETY: kill(2) on our own pid has no memory-safety preconditions. SIGKILL, not
            // abort(): nothing may run after the point, as with `kill -9` from outside.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_names_and_counts() {
            let a = parse("during-gc:3").unwrap();
            assert_eq!(a.point, Point::DuringGc);
            assert_eq!(a.passes_left.load(Ordering::Relaxed), 2);
            let a = parse("first-epoch").unwrap();
            assert_eq!(a.point, Point::FirstEpoch);
            assert_eq!(a.passes_left.load(Ordering::Relaxed), 0);
            assert!(parse("during-gc:0").is_none());
            assert!(parse("during-gc:x").is_none());
            assert!(parse("nowhere").is_none());
        }
    }
}
