//! Clocks: where an item's timestamp and the watermark come from.
//!
//! A clock is instantiated per key (as in Bytewax), so the watermark is per key, unless it
//! is wrapped in [`PerWorker`]: then one clock serves every key of a worker. Times are
//! `i64` milliseconds since the Unix epoch (UTC): see the [module docs](super) for why.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::inputs::State;

use super::{MIN_TIME, duration_ms, system_time_of};

/// Makes a key's [`ClockLogic`] from its resume state (`None` for a new key).
pub trait Clock<V>: Send + Sync + 'static {
    /// The per-key logic.
    type Logic: ClockLogic<V>;

    /// Whether one logic serves all keys of a worker ([`PerWorker`]) instead of one per key.
    const PER_WORKER: bool = false;

    /// For a per-worker clock: how long a worker may read no items before it stops holding
    /// windows back ([`PerWorker::idle_after`]); `None` (the default) for never.
    fn idle_after(&self) -> Option<Duration> {
        None
    }

    /// Builds the logic of one key (of one worker if [`PER_WORKER`](Self::PER_WORKER)).
    fn build(&self, resume: Option<<Self::Logic as ClockLogic<V>>::State>) -> Self::Logic;
}

/// One clock per worker instead of one per key (as in Bytewax): the watermark of a
/// windowing step is then the least of its workers' watermarks, as in Flink, where an
/// operator takes the least watermark of its input channels.
///
/// With a per-key watermark a key's windows close only when that key's own later items
/// (or EOF) pass them: a quiet key holds its windows open. With `PerWorker`, each worker's
/// clock sees the items that worker reads (for [`EventClock`], its watermark is the largest
/// timestamp it has read minus `wait`) and decides which of them are late. Each worker
/// sends its watermark to all workers along with its items, and every key's windows
/// close once the least of the workers' watermarks passes them. Windows that are the same
/// for every key (a [`Grid`](super::Grid): tumbling and sliding) keep their keys together,
/// which is faster and smaller than per-key windows; sessions stay per key but close as
/// the workers' watermark moves on, so a key that stops getting items does not hold its
/// last session until the end of the input.
///
/// Trade-offs to know:
/// - `wait` must cover the disorder of what one worker reads: its source partitions,
///   interleaved a batch at a time, not only one key's items.
/// - Which items are late depends on the order in which their worker reads them, so results
///   are deterministic when that order is (one worker, or one partition per worker).
/// - A worker that reads nothing holds all windows back (as a Flink source without
///   idleness does): with a replay clock they then close at the end of the input. With
///   [`idle_after`](Self::idle_after), a worker that has read nothing for that long stops
///   holding them back until it reads again; its items older than the watermark by then
///   are late. Once every worker is idle, the windows close up to the greatest of their
///   watermarks (as Flink does), so they do not depend on which worker went idle last.
/// - Recovery stores the watermark with each key that has open windows or queued items;
///   after a resume or a rescale, items before the latest one stored are late, whatever
///   the restarted clocks say, so no window that closed opens again.
///
/// ```
/// use std::time::Duration;
/// use bwx::prelude::*;
/// use bwx::testing::{TestingSink, TestingSource};
/// use bwx::windowing::{EventClock, PerWorker, TumblingWindower};
///
/// let flow = Dataflow::new("f");
/// let (out, late) = (TestingSink::new(), TestingSink::new());
/// // Key 'b' is quiet after its item at 1, but 'a' moves the worker's watermark to 25:
/// // window 0 of both keys closes, and b's item at 4 is late. (With a per-key clock,
/// // b's watermark would still be -4 and its item at 4 on time.)
/// let items = vec![('a', 1i64), ('b', 1), ('a', 30), ('b', 4), ('a', 31)];
/// let clock = PerWorker::new(EventClock::replay(|ts: &i64| *ts, Duration::from_millis(5)));
/// let win = TumblingWindower::new(Duration::from_millis(10), 0).unwrap();
/// let w = flow
///     .input("inp", TestingSource::new(items))
///     .fold_window("count", clock, win, || 0u64, |n, _| n + 1, |a, b| a + b, false);
/// w.down.output("out", out.clone());
/// w.late.output("late", late.clone());
/// bwx::run_main(&flow).unwrap();
/// let mut counts = out.take();
/// counts.sort();
/// assert_eq!(counts, vec![('a', (0, 1)), ('a', (3, 2)), ('b', (0, 1))]);
/// assert_eq!(late.take(), vec![('b', (0, 4))]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct PerWorker<C> {
    clock: C,
    idle: Option<Duration>,
}

impl<C> PerWorker<C> {
    /// One `clock` per worker.
    pub fn new(clock: C) -> Self {
        PerWorker { clock, idle: None }
    }

    /// A worker that has read no item for `idle` (system time) stops holding windows back,
    /// as Flink's `withIdleness`: for sources with fewer partitions than workers, or
    /// partitions that go quiet, with a live clock. Which items are late then depends on
    /// timing.
    pub fn idle_after(self, idle: Duration) -> Self {
        PerWorker {
            idle: Some(idle),
            ..self
        }
    }
}

impl<V, C: Clock<V>> Clock<V> for PerWorker<C> {
    type Logic = C::Logic;
    const PER_WORKER: bool = true;

    fn build(&self, resume: Option<<Self::Logic as ClockLogic<V>>::State>) -> Self::Logic {
        self.clock.build(resume)
    }

    fn idle_after(&self) -> Option<Duration> {
        self.idle
    }
}

/// A key's clock: assigns timestamps to items and tracks the watermark, the time before
/// which no more items are expected (items older than it are late).
pub trait ClockLogic<V>: 'static {
    /// What recovery stores for the clock.
    type State: State;

    /// Called before each run of [`on_item`](Self::on_item) calls (once per batch of a
    /// key), e.g. to read the system time once instead of per item.
    fn before_batch(&mut self) {}

    /// The item's timestamp and the watermark after seeing it, both in ms since the epoch.
    fn on_item(&mut self, value: &V) -> (i64, i64);

    /// The watermark when the operator wakes up at a time from
    /// [`to_system`](Self::to_system).
    fn on_notify(&mut self) -> i64;

    /// The system time at which the watermark will have reached `watermark`, for a wake-up
    /// then; `None` means "no wake-up" (windows close as later items or EOF advance the
    /// watermark).
    fn to_system(&self, watermark: i64) -> Option<SystemTime>;

    /// Whether [`to_system`](Self::to_system) can ever return a time: `false` lets the
    /// operator skip working out a key's next wake-up after each of its items. The
    /// default, `true`, is always correct.
    fn wakes(&self) -> bool {
        true
    }

    /// The clock's state for recovery.
    fn snapshot(&self) -> Self::State;
}

/// The current system time in ms since the epoch.
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ms(d),
        Err(e) => -duration_ms(e.duration()),
    }
}

/// Processing-time clock: an item's timestamp and the watermark are both the system time
/// when its batch is processed, so nothing is ever late. Windows close at a system-time
/// wake-up or at EOF.
///
/// ```
/// use bwx::windowing::{SystemClock, TumblingWindower};
/// use bwx::prelude::*;
/// use bwx::testing::{TestingSink, TestingSource};
/// use std::time::Duration;
///
/// let flow = Dataflow::new("f");
/// let out = TestingSink::new();
/// let win = TumblingWindower::new(Duration::from_secs(3600), 0).unwrap();
/// flow.input("inp", TestingSource::new(vec![1u64, 2]))
///     .count_window("count", SystemClock, win, |_: &u64| "all".to_string())
///     .down
///     .output("out", out.clone());
/// bwx::run_main(&flow).unwrap();
/// // Both items arrived within the same hour (barring an hour boundary in between).
/// assert_eq!(out.take().iter().map(|(_, (_, n))| n).sum::<u64>(), 2);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// The per-key logic of [`SystemClock`].
#[derive(Debug)]
pub struct SystemClockLogic {
    now: i64,
}

impl<V> Clock<V> for SystemClock {
    type Logic = SystemClockLogic;

    fn build(&self, _resume: Option<()>) -> SystemClockLogic {
        SystemClockLogic { now: now_ms() }
    }
}

impl<V> ClockLogic<V> for SystemClockLogic {
    type State = ();

    fn before_batch(&mut self) {
        self.now = now_ms();
    }

    #[inline]
    fn on_item(&mut self, _value: &V) -> (i64, i64) {
        (self.now, self.now)
    }

    fn on_notify(&mut self) -> i64 {
        self.now = now_ms();
        self.now
    }

    fn to_system(&self, watermark: i64) -> Option<SystemTime> {
        Some(system_time_of(watermark))
    }

    fn snapshot(&self) {}
}

/// How an [`EventClock`]'s watermark moves between items.
#[derive(Clone, Copy)]
enum Mode {
    /// Advances with system time (read by the function) since the last new maximum.
    Live(fn() -> i64),
    /// Moves only with item timestamps: deterministic, no timer wake-ups.
    Replay,
}

/// Event-time clock: timestamps come from the items.
///
/// The watermark of a key is the largest timestamp seen minus `wait` (how far out of
/// order items may be). Two modes:
/// - [`EventClock::new`] (Bytewax's default): the watermark also advances with the system
///   time elapsed since that maximum was seen, so windows close on time when a key goes
///   quiet. Results then depend on processing speed.
/// - [`EventClock::replay`]: the watermark moves only with timestamps, so historical
///   replays give the same windows however fast or slow they run, and no key is woken by a
///   timer; windows close when later items of the key pass them, or at EOF.
///
/// The watermark never goes backwards (a new maximum that would lower a live watermark is
/// ignored; Bytewax had this regression on slow in-order data).
///
/// ```
/// use std::time::Duration;
/// use bwx::windowing::{EventClock, TumblingWindower};
/// use bwx::prelude::*;
/// use bwx::testing::{TestingSink, TestingSource};
///
/// let flow = Dataflow::new("f");
/// let out = TestingSink::new();
/// let clock = EventClock::replay(|(_, ts): &(char, i64)| *ts, Duration::from_millis(5));
/// let win = TumblingWindower::new(Duration::from_millis(10), 0).unwrap();
/// // (key, (name, ts)). After 'b' the watermark is 7 - 5 = 2, so 'c' at 2 is on time;
/// // after 'd' it is 25, so 'e' at 3 is late.
/// let items = vec![(1u32, ('a', 1i64)), (1, ('b', 7)), (1, ('c', 2)), (1, ('d', 30)), (1, ('e', 3))];
/// let w = flow.input("inp", TestingSource::new(items))
///     .collect_window("names", clock, win, true);
/// let late = TestingSink::new();
/// w.down.output("out", out.clone());
/// w.late.output("late", late.clone());
/// bwx::run_main(&flow).unwrap();
/// // Ordered mode: each window's items are applied in timestamp order.
/// assert_eq!(out.take(), vec![(1, (0, vec![('a', 1), ('c', 2), ('b', 7)])), (1, (3, vec![('d', 30)]))]);
/// assert_eq!(late.take(), vec![(1, (0, ('e', 3)))]);
/// ```
pub struct EventClock<V, F> {
    config: Arc<EventClockConfig<F>>,
    _value: PhantomData<fn(&V)>,
}

/// What all keys of an [`EventClock`] share: one pointer per key instead of three fields
/// keeps the per-key state small (it decides how many keys stay in cache).
struct EventClockConfig<F> {
    getter: F,
    wait: i64,
    mode: Mode,
}

impl<V, F> EventClock<V, F>
where
    F: Fn(&V) -> i64 + Send + Sync + 'static,
{
    /// A live event clock: `ts_getter` returns an item's timestamp in ms since the epoch;
    /// `wait` is how long (in event time) to wait for out-of-order items. A `wait` longer
    /// than the time since [`MIN_TIME`](super::MIN_TIME) (such as `Duration::MAX`) keeps
    /// the watermark at `MIN_TIME` plus the system time elapsed.
    pub fn new(ts_getter: F, wait: Duration) -> Self {
        Self::with_now(ts_getter, wait, now_ms)
    }

    /// A live event clock reading the system time (ms since the epoch) from `now`, e.g. a
    /// test's controllable clock.
    pub fn with_now(ts_getter: F, wait: Duration, now: fn() -> i64) -> Self {
        EventClock {
            config: Arc::new(EventClockConfig {
                getter: ts_getter,
                wait: duration_ms(wait),
                mode: Mode::Live(now),
            }),
            _value: PhantomData,
        }
    }

    /// A replay event clock: the watermark is the largest timestamp seen minus `wait` and
    /// does not move with system time (deterministic; no timer wake-ups).
    pub fn replay(ts_getter: F, wait: Duration) -> Self {
        EventClock {
            config: Arc::new(EventClockConfig {
                getter: ts_getter,
                wait: duration_ms(wait),
                mode: Mode::Replay,
            }),
            _value: PhantomData,
        }
    }
}

/// What an [`EventClock`] stores for recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventClockState {
    /// The watermark when the last new maximum was seen (`i64::MIN` before any item).
    pub watermark: i64,
    /// The system time (ms) when it was seen.
    pub seen_at: i64,
}

/// The per-key logic of [`EventClock`].
pub struct EventClockLogic<V, F> {
    config: Arc<EventClockConfig<F>>,
    state: EventClockState,
    _value: PhantomData<fn(&V)>,
}

thread_local! {
    /// The system time (ms) that the last `before_batch` of a live [`EventClock`] on this
    /// thread read, for the `on_item` calls after it. Kept per thread, not per key, so a
    /// key's clock is three words: per-key memory decides how many keys stay in cache.
    static BATCH_NOW: Cell<i64> = const { Cell::new(0) };
}

impl<V: 'static, F> Clock<V> for EventClock<V, F>
where
    F: Fn(&V) -> i64 + Send + Sync + 'static,
{
    type Logic = EventClockLogic<V, F>;

    fn build(&self, resume: Option<EventClockState>) -> Self::Logic {
        EventClockLogic {
            config: self.config.clone(),
            state: resume.unwrap_or(EventClockState {
                watermark: i64::MIN,
                seen_at: 0,
            }),
            _value: PhantomData,
        }
    }
}

impl<V, F> EventClockLogic<V, F> {
    #[inline]
    fn current(&self) -> i64 {
        match self.config.mode {
            Mode::Replay => self.state.watermark,
            Mode::Live(_) if self.state.watermark == i64::MIN => i64::MIN,
            Mode::Live(_) => {
                let now = BATCH_NOW.get();
                self.state
                    .watermark
                    .saturating_add(now.saturating_sub(self.state.seen_at).max(0))
            }
        }
    }
}

impl<V: 'static, F> ClockLogic<V> for EventClockLogic<V, F>
where
    F: Fn(&V) -> i64 + Send + Sync + 'static,
{
    type State = EventClockState;

    #[inline]
    fn before_batch(&mut self) {
        if let Mode::Live(now) = self.config.mode {
            BATCH_NOW.set(now());
        }
    }

    #[inline]
    fn on_item(&mut self, value: &V) -> (i64, i64) {
        let ts = (self.config.getter)(value);
        // A wait reaching before the earliest time (`Duration::MAX`: wait forever) gives the
        // earliest time, as Bytewax's `UTC_MIN`, not a watermark that moves with `ts`.
        let candidate = ts.saturating_sub(self.config.wait).max(MIN_TIME);
        if let Mode::Replay = self.config.mode {
            // Without a branch on whether the item is a new maximum: which items are is
            // data, unpredictable, and a mispredicted branch per item cost more than the
            // rest of the clock (a replay clock per key ran at 0.6x with it).
            let watermark = self.state.watermark.max(candidate);
            self.state.watermark = watermark;
            return (ts, watermark);
        }
        let current = self.current();
        if candidate > current {
            self.state.watermark = candidate;
            self.state.seen_at = BATCH_NOW.get();
            (ts, candidate)
        } else {
            (ts, current)
        }
    }

    fn on_notify(&mut self) -> i64 {
        self.before_batch();
        self.current()
    }

    #[inline]
    fn wakes(&self) -> bool {
        matches!(self.config.mode, Mode::Live(_))
    }

    fn to_system(&self, watermark: i64) -> Option<SystemTime> {
        match self.config.mode {
            Mode::Replay => None,
            Mode::Live(_) if self.state.watermark == i64::MIN => None,
            Mode::Live(_) => {
                let ahead = watermark.saturating_sub(self.state.watermark).max(0);
                Some(system_time_of(self.state.seen_at.saturating_add(ahead)))
            }
        }
    }

    fn snapshot(&self) -> EventClockState {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    static NOW: AtomicI64 = AtomicI64::new(1_000);

    fn test_now() -> i64 {
        NOW.load(Ordering::SeqCst)
    }

    #[test]
    fn live_watermark_advances_with_system_time_and_never_regresses() {
        let clock = EventClock::with_now(|ts: &i64| *ts, Duration::from_millis(10), test_now);
        let mut logic = <EventClock<i64, _> as Clock<i64>>::build(&clock, None);
        NOW.store(1_000, Ordering::SeqCst);
        logic.before_batch();
        assert_eq!(logic.on_item(&100), (100, 90));
        NOW.store(1_050, Ordering::SeqCst);
        assert_eq!(logic.on_notify(), 140);
        // A new maximum that would lower the watermark is ignored.
        logic.before_batch();
        assert_eq!(logic.on_item(&110), (110, 140));
        assert_eq!(logic.to_system(150), Some(system_time_of(1_060)));
        assert!(ClockLogic::<i64>::wakes(&logic));
    }

    #[test]
    fn waiting_forever_gives_the_earliest_time_and_moves_only_with_system_time() {
        static NOW_MAX: AtomicI64 = AtomicI64::new(1_000);
        fn now_max() -> i64 {
            NOW_MAX.load(Ordering::SeqCst)
        }
        let replay = EventClock::replay(|ts: &i64| *ts, Duration::MAX);
        let mut logic = <EventClock<i64, _> as Clock<i64>>::build(&replay, None);
        assert_eq!(logic.on_item(&1_000), (1_000, MIN_TIME));
        assert_eq!(logic.on_item(&5_000), (5_000, MIN_TIME));

        let live = EventClock::with_now(|ts: &i64| *ts, Duration::MAX, now_max);
        let mut logic = <EventClock<i64, _> as Clock<i64>>::build(&live, None);
        logic.before_batch();
        assert_eq!(logic.on_item(&1_000), (1_000, MIN_TIME));
        NOW_MAX.store(1_050, Ordering::SeqCst);
        logic.before_batch();
        // A later timestamp does not move it; the 50 ms of system time do.
        assert_eq!(logic.on_item(&900_000), (900_000, MIN_TIME + 50));
        assert_eq!(logic.on_notify(), MIN_TIME + 50);
    }

    #[test]
    fn replay_watermark_moves_only_with_timestamps() {
        let clock = EventClock::replay(|ts: &i64| *ts, Duration::from_millis(10));
        let mut logic = <EventClock<i64, _> as Clock<i64>>::build(&clock, None);
        assert_eq!(logic.on_item(&100), (100, 90));
        assert_eq!(logic.on_item(&50), (50, 90));
        assert_eq!(logic.on_notify(), 90);
        assert_eq!(logic.to_system(95), None);
        assert!(!ClockLogic::<i64>::wakes(&logic));
        let resumed = <EventClock<i64, _> as Clock<i64>>::build(&clock, Some(logic.snapshot()));
        assert_eq!(ClockLogic::<i64>::snapshot(&resumed).watermark, 90);
    }
}
