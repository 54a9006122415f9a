//! `SimplePollingSource`: a single-partition source that asks for one item on a schedule.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::Data;
use crate::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, State, StatefulSourcePartition};
use crate::step_id::StepId;

/// What one poll of a [`SimplePoller`] gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Polled<T> {
    /// An item.
    Item(T),
    /// Nothing this time; poll again at the next scheduled time.
    Skip,
    /// Nothing yet; poll again after this long instead of waiting for the schedule.
    Retry(Duration),
    /// The source is finished.
    Eof,
    /// Stop the whole execution now, without EOF (Bytewax's `AbortExecution`), e.g. to
    /// test recovery: a resumed flow continues from the last snapshot.
    Abort,
}

/// The user's side of a [`SimplePollingSource`].
pub trait SimplePoller: Send + 'static {
    /// The items.
    type Item: Data;
    /// A resume position; use `()` for none.
    type State: State;

    /// Fetches the next item.
    fn next_item(&mut self) -> Result<Polled<Self::Item>, ConnectorError>;

    /// The position to store with recovery.
    fn snapshot(&self) -> Self::State;

    /// Continues from a stored position.
    fn resume(&mut self, state: Self::State) {
        let _ = state;
    }
}

/// Polls a [`SimplePoller`] every `interval`, optionally aligned to a point in time, as a
/// source with one partition (`"singleton"`).
///
/// ```
/// use std::time::Duration;
/// use bwx::prelude::*;
/// use bwx::inputs::{Polled, SimplePoller, SimplePollingSource, ConnectorError};
/// use bwx::testing::TestingSink;
///
/// struct Counter(u32);
/// impl SimplePoller for Counter {
///     type Item = u32;
///     type State = u32;
///     fn next_item(&mut self) -> Result<Polled<u32>, ConnectorError> {
///         self.0 += 1;
///         Ok(if self.0 > 3 { Polled::Eof } else { Polled::Item(self.0) })
///     }
///     fn snapshot(&self) -> u32 { self.0 }
///     fn resume(&mut self, state: u32) { self.0 = state; }
/// }
///
/// let flow = Dataflow::new("f");
/// let out = TestingSink::new();
/// flow.input("tick", SimplePollingSource::new(|| Counter(0), Duration::from_millis(1)))
///     .output("out", out.clone());
/// bwx::run_main(&flow).unwrap();
/// assert_eq!(out.take(), vec![1, 2, 3]);
/// ```
pub struct SimplePollingSource<F> {
    make: Arc<F>,
    interval: Duration,
    align_to: Option<SystemTime>,
    now: fn() -> SystemTime,
}

impl<F> SimplePollingSource<F> {
    /// Polls the poller made by `make` every `interval`, starting at once.
    pub fn new(make: F, interval: Duration) -> Self {
        SimplePollingSource {
            make: Arc::new(make),
            interval: interval.max(Duration::from_micros(1)),
            align_to: None,
            now: SystemTime::now,
        }
    }

    /// Polls at `align_to + k * interval` instead of starting at once.
    pub fn align_to(mut self, at: SystemTime) -> Self {
        self.align_to = Some(at);
        self
    }

    /// Reads the time from `now` instead of the system clock, so that a test can step
    /// the partition through its schedule (Bytewax's tests pass the time to `next_batch`).
    /// The engine wakes the partition at the times of [`next_awake`](StatefulSourcePartition::next_awake),
    /// read on the system clock: in a running flow, `now` must follow it.
    pub fn with_now(mut self, now: fn() -> SystemTime) -> Self {
        self.now = now;
        self
    }
}

impl<P: SimplePoller, F: Fn() -> P + Send + Sync + 'static> FixedPartitionedSource
    for SimplePollingSource<F>
{
    type Item = P::Item;
    type State = P::State;
    type Partition = PollingPartition<P>;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok(vec!["singleton".to_string()])
    }

    fn build_part(
        &self,
        _step: &StepId,
        _part: &str,
        resume: Option<P::State>,
    ) -> Result<Self::Partition, ConnectorError> {
        let mut poller = (self.make)();
        if let Some(state) = resume {
            poller.resume(state);
        }
        let now = (self.now)();
        let first = match self.align_to {
            Some(align) => next_aligned(align, self.interval, now),
            None => now,
        };
        Ok(PollingPartition {
            poller,
            interval: self.interval,
            align_to: self.align_to,
            now: self.now,
            wake: first,
        })
    }
}

/// The first time `align + k * interval` (k ≥ 0 when `align` is in the future) at or after `now`.
fn next_aligned(align: SystemTime, interval: Duration, now: SystemTime) -> SystemTime {
    match now.duration_since(align) {
        Err(_) => align,
        Ok(since) => {
            let step = interval.as_nanos().max(1);
            let k = since.as_nanos().div_ceil(step);
            // k * step ≤ since + step, which fits: `since` came from a SystemTime difference.
            align + Duration::from_nanos(u64::try_from(k * step).unwrap_or(u64::MAX))
        }
    }
}

/// The partition of a [`SimplePollingSource`].
pub struct PollingPartition<P> {
    poller: P,
    interval: Duration,
    align_to: Option<SystemTime>,
    now: fn() -> SystemTime,
    wake: SystemTime,
}

impl<P: SimplePoller> StatefulSourcePartition for PollingPartition<P> {
    type Item = P::Item;
    type State = P::State;

    fn next_batch(&mut self, batch: &mut Vec<P::Item>) -> Result<BatchStatus, ConnectorError> {
        let now = (self.now)();
        if now < self.wake {
            return Ok(BatchStatus::Active);
        }
        let scheduled = match self.align_to {
            Some(align) => next_aligned(align, self.interval, now + Duration::from_nanos(1)),
            None => now + self.interval,
        };
        match self.poller.next_item()? {
            Polled::Item(item) => {
                batch.push(item);
                self.wake = scheduled;
            }
            Polled::Skip => self.wake = scheduled,
            Polled::Retry(after) => self.wake = now + after,
            Polled::Eof => return Ok(BatchStatus::Eof),
            Polled::Abort => return Ok(BatchStatus::Abort),
        }
        Ok(BatchStatus::Active)
    }

    fn next_awake(&self) -> Option<SystemTime> {
        Some(self.wake)
    }

    fn snapshot(&self) -> P::State {
        self.poller.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// Seconds since the epoch that [`test_now`] reports.
    static SECONDS: AtomicU64 = AtomicU64::new(100);

    fn test_now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(SECONDS.load(Ordering::SeqCst))
    }

    /// Gives 1, 2, ... and aborts at the third poll.
    struct AbortAtThree(u32);

    impl SimplePoller for AbortAtThree {
        type Item = u32;
        type State = u32;
        fn next_item(&mut self) -> Result<Polled<u32>, ConnectorError> {
            self.0 += 1;
            Ok(if self.0 == 3 {
                Polled::Abort
            } else {
                Polled::Item(self.0)
            })
        }
        fn snapshot(&self) -> u32 {
            self.0
        }
    }

    #[test]
    fn polls_on_the_injected_clocks_schedule_and_can_abort() {
        let source = SimplePollingSource::new(|| AbortAtThree(0), Duration::from_secs(10))
            .align_to(SystemTime::UNIX_EPOCH)
            .with_now(test_now);
        let mut part = source
            .build_part(&StepId::from("f.poll"), "singleton", None)
            .unwrap();
        let at = |s: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        // Aligned to the epoch: the first poll is due at 100 s, now.
        assert_eq!(part.next_awake(), at(100));
        let mut batch = Vec::new();
        assert_eq!(part.next_batch(&mut batch).unwrap(), BatchStatus::Active);
        assert_eq!((batch.clone(), part.next_awake()), (vec![1], at(110)));
        // Not due yet at 105 s: nothing.
        SECONDS.store(105, Ordering::SeqCst);
        batch.clear();
        assert_eq!(part.next_batch(&mut batch).unwrap(), BatchStatus::Active);
        assert!(batch.is_empty());
        SECONDS.store(110, Ordering::SeqCst);
        assert_eq!(part.next_batch(&mut batch).unwrap(), BatchStatus::Active);
        assert_eq!((batch.clone(), part.next_awake()), (vec![2], at(120)));
        SECONDS.store(120, Ordering::SeqCst);
        batch.clear();
        assert_eq!(part.next_batch(&mut batch).unwrap(), BatchStatus::Abort);
        assert!(batch.is_empty());
    }

    #[test]
    fn aligned_times_step_from_the_anchor() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let i = Duration::from_secs(10);
        assert_eq!(next_aligned(t0, i, t0), t0);
        assert_eq!(next_aligned(t0, i, t0 + Duration::from_secs(1)), t0 + i);
        assert_eq!(next_aligned(t0, i, t0 - Duration::from_secs(5)), t0);
        // An anchor far in the past does not overflow.
        assert!(
            next_aligned(SystemTime::UNIX_EPOCH, Duration::from_nanos(1), SystemTime::now())
                > SystemTime::UNIX_EPOCH
        );
    }
}
