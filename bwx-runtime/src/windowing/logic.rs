//! Per-window logic and the per-key state that runs clock, windower and windows.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::inputs::State;
use crate::recovery::codec;
use crate::stateful::{StateAction, StatefulBatchLogic};

use super::clock::{Clock, ClockLogic};
use super::windower::{Windower, WindowerLogic};
use super::{WindowId, WindowMetadata};

/// What a key's windowing step emits; split into the three streams of
/// [`WindowOut`](super::WindowOut) by one partition operator.
#[derive(Clone, Debug)]
pub(crate) enum WinEvent<V, R> {
    Down(WindowId, R),
    Late(WindowId, V),
    Meta(WindowId, Box<WindowMetadata>),
}

/// Where a [`WindowLogic`] emits results: each becomes `(key, (window_id, result))` on
/// [`WindowOut::down`](super::WindowOut::down).
pub struct Emit<'a, V, R> {
    out: &'a mut Vec<WinEvent<V, R>>,
    id: WindowId,
}

impl<'a, V, R> Emit<'a, V, R> {
    /// Where the logic of window `id` emits.
    #[inline(always)]
    pub(crate) fn new(out: &'a mut Vec<WinEvent<V, R>>, id: WindowId) -> Self {
        Emit { out, id }
    }

    /// Emits a result of this window.
    #[inline]
    pub fn emit(&mut self, result: R) {
        self.out.push(WinEvent::Down(self.id, result));
    }

    /// The window's id.
    pub fn window_id(&self) -> WindowId {
        self.id
    }
}

/// The logic of one window of one key (Bytewax's `WindowLogic`), built by the operator's
/// builder from its resume state (`None` for a new window).
pub trait WindowLogic<V, R>: Sized + 'static {
    /// What [`snapshot`](Self::snapshot) returns and the builder resumes from.
    type State: State;

    /// Called with each on-time item of the window. May emit early results.
    fn on_value(&mut self, value: V, out: &mut Emit<'_, V, R>);

    /// Called when the window `other` (a session) is merged into this one.
    fn on_merge(&mut self, other: Self, out: &mut Emit<'_, V, R>);

    /// Called when the window closes; the logic is dropped afterwards.
    fn on_close(self, out: &mut Emit<'_, V, R>);

    /// The window's state for recovery.
    fn snapshot(&self) -> Self::State;
}

/// What the three builders of a windowing step share.
pub(crate) struct Shared<C, D, B> {
    pub(crate) clock: C,
    pub(crate) windower: D,
    pub(crate) builder: B,
    pub(crate) ordered: bool,
}

/// A windowing step as one worker runs it.
pub(crate) struct Lowered<C, D, B> {
    pub(crate) shared: Arc<Shared<C, D, B>>,
    /// Whether any step reads the metadata stream; if none does, no metadata is made.
    pub(crate) emit_meta: bool,
    /// The encoded clock and windower state of a new key (made once, when first needed),
    /// to tell whether a key whose windows have all closed still differs from a new one.
    pub(crate) fresh: OnceLock<Option<Vec<u8>>>,
    /// The encoded clock state of a new key (made once, when first needed), for windowers
    /// whose per-key state is only the open windows (see `PerKeyWindows`).
    pub(crate) fresh_clock: OnceLock<Option<Vec<u8>>>,
}

impl<C, D, B> Lowered<C, D, B> {
    pub(crate) fn new(shared: Arc<Shared<C, D, B>>, emit_meta: bool) -> Self {
        Lowered {
            shared,
            emit_meta,
            fresh: OnceLock::new(),
            fresh_clock: OnceLock::new(),
        }
    }
}

/// A key's windowing state as recovery stores it.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct KeyWindowsState<CS, WS, LS, V> {
    clock: CS,
    windower: WS,
    windows: Vec<(WindowId, LS)>,
    /// Items waiting for the watermark (ordered mode), by timestamp.
    queue: Vec<(i64, V)>,
}

/// One key's clock, windower, open windows and (ordered mode) queued items.
pub(crate) struct KeyWindows<V, R, C, D, L, B>
where
    C: Clock<V>,
    D: Windower,
{
    step: Arc<Lowered<C, D, B>>,
    clock: C::Logic,
    windower: D::Logic,
    /// The open windows' logic, sorted by id.
    windows: Vec<(WindowId, L)>,
    /// Ordered mode only; boxed so that unordered keys carry one pointer, not a deque.
    #[allow(clippy::box_collection)]
    queue: Option<Box<VecDeque<(i64, V)>>>,
    _out: PhantomData<fn() -> R>,
}

type StateOf<V, C, D, L> = KeyWindowsState<
    <<C as Clock<V>>::Logic as ClockLogic<V>>::State,
    <<D as Windower>::Logic as WindowerLogic>::State,
    L,
    V,
>;

impl<V, R, C, D, L, B> KeyWindows<V, R, C, D, L, B>
where
    V: State,
    C: Clock<V>,
    D: Windower,
    L: WindowLogic<V, R>,
    B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
{
    /// A key's state, fresh or resumed.
    pub(crate) fn build(step: Arc<Lowered<C, D, B>>, resume: Option<StateOf<V, C, D, L::State>>) -> Self {
        let shared = &step.shared;
        match resume {
            None => KeyWindows {
                clock: shared.clock.build(None),
                windower: shared.windower.build(None),
                windows: Vec::new(),
                queue: None,
                _out: PhantomData,
                step,
            },
            Some(s) => KeyWindows {
                clock: shared.clock.build(Some(s.clock)),
                windower: shared.windower.build(Some(s.windower)),
                windows: {
                    let mut windows: Vec<_> = s
                        .windows
                        .into_iter()
                        .map(|(id, l)| (id, (shared.builder)(Some(l))))
                        .collect();
                    windows.sort_by_key(|(id, _)| *id);
                    windows
                },
                queue: (!s.queue.is_empty()).then(|| Box::new(s.queue.into())),
                _out: PhantomData,
                step,
            },
        }
    }

    /// Puts an on-time item into its windows.
    #[inline(always)]
    fn apply(&mut self, ts: i64, value: V, out: &mut Vec<WinEvent<V, R>>) {
        let windows = &mut self.windows;
        let mut ids = self.windower.open_for(ts, &mut |from, into| {
            let Some(pos) = windows.iter().position(|(id, _)| *id == from) else {
                return;
            };
            let (_, gone) = windows.remove(pos);
            match windows.binary_search_by_key(&into, |(id, _)| *id) {
                Ok(at) => windows[at].1.on_merge(gone, &mut Emit { out, id: into }),
                Err(at) => windows.insert(at, (into, gone)),
            }
        });
        let Some(mut id) = ids.next() else {
            return;
        };
        // An item's windows are mostly the newest ones, in order (the windower's ids
        // ascend): guess where the first is and that each next one follows it.
        let mut pos = self.windows.len().saturating_sub(1 + ids.size_hint().0);
        // Clone the value for all windows but the last, which gets it.
        for next in ids {
            pos = self.window(id, pos);
            self.windows[pos].1.on_value(value.clone(), &mut Emit { out, id });
            pos += 1;
            id = next;
        }
        pos = self.window(id, pos);
        self.windows[pos].1.on_value(value, &mut Emit { out, id });
    }

    /// The position of window `id`, checked first at `guess`; the window is built if new.
    #[inline(always)]
    fn window(&mut self, id: WindowId, guess: usize) -> usize {
        match self.windows.get(guess) {
            Some((w, _)) if *w == id => guess,
            _ => self.find_or_open(id),
        }
    }

    /// The position of window `id` in the open windows (sorted by id), built if new.
    #[inline(never)]
    fn find_or_open(&mut self, id: WindowId) -> usize {
        match self.windows.binary_search_by_key(&id, |(w, _)| *w) {
            Ok(pos) => pos,
            Err(pos) => {
                // Most keys have one or two windows open: keep the allocation small, since
                // per-key memory decides how many keys stay in cache.
                self.windows
                    .reserve_exact(if self.windows.is_empty() { 2 } else { 1 });
                self.windows.insert(pos, (id, (self.step.shared.builder)(None)));
                pos
            }
        }
    }

    /// Emits a late item once per window it would have fallen into.
    fn late(&mut self, ts: i64, value: V, out: &mut Vec<WinEvent<V, R>>) {
        let mut ids = self.windower.late_for(ts);
        let Some(mut id) = ids.next() else {
            return;
        };
        for next in ids {
            out.push(WinEvent::Late(id, value.clone()));
            id = next;
        }
        out.push(WinEvent::Late(id, value));
    }

    /// Queues an on-time item (ordered mode), after items with the same timestamp.
    fn enqueue(&mut self, ts: i64, value: V) {
        let queue = self.queue.get_or_insert_default();
        if queue.back().is_none_or(|(last, _)| *last <= ts) {
            queue.push_back((ts, value));
        } else {
            let at = queue.partition_point(|(t, _)| *t <= ts);
            queue.insert(at, (ts, value));
        }
    }

    /// The first queued item if the watermark has reached it.
    #[inline]
    fn pop_due(&mut self, watermark: i64) -> Option<(i64, V)> {
        let queue = self.queue.as_mut()?;
        if queue.front().is_some_and(|(ts, _)| *ts <= watermark) {
            queue.pop_front()
        } else {
            None
        }
    }

    fn queue_is_empty(&self) -> bool {
        self.queue.as_ref().is_none_or(|q| q.is_empty())
    }

    /// Applies the queued items the watermark has reached, then closes windows.
    #[inline(always)]
    fn advance(&mut self, watermark: i64, out: &mut Vec<WinEvent<V, R>>) {
        while let Some((ts, value)) = self.pop_due(watermark) {
            self.apply(ts, value, out);
        }
        if self.windower.next_close().is_some_and(|at| at <= watermark) {
            self.close(watermark, out);
        }
    }

    /// Closes the windows the watermark has passed. Out of line: it runs once per window,
    /// [`advance`](Self::advance) once per item.
    #[inline(never)]
    fn close(&mut self, watermark: i64, out: &mut Vec<WinEvent<V, R>>) {
        let windows = &mut self.windows;
        let emit_meta = self.step.emit_meta;
        self.windower.close_for(watermark, &mut |id, meta| {
            if let Ok(pos) = windows.binary_search_by_key(&id, |(w, _)| *w) {
                let (_, logic) = windows.remove(pos);
                logic.on_close(&mut Emit { out, id });
            }
            if emit_meta {
                out.push(WinEvent::Meta(id, Box::new(meta)));
            }
        });
    }

    /// Whether to keep the key after a batch or a wake-up. A key with open windows or
    /// queued items is kept. Once all its windows have closed, it is dropped if a new key
    /// would behave the same (a system clock, tumbling windows); otherwise it keeps its
    /// clock and windower and nothing else: an event clock's watermark (so that an item
    /// older than it is still late and cannot open a window that closed and was emitted),
    /// a session count (so that session ids are not reused).
    fn action(&mut self) -> StateAction {
        if !(self.windower.is_empty() && self.windows.is_empty() && self.queue_is_empty()) {
            return StateAction::Retain;
        }
        let clock = self.clock.snapshot();
        let windower = self.windower.snapshot();
        let current = codec::encode(&(&clock, &windower)).ok();
        let shared = &self.step.shared;
        let fresh = self.step.fresh.get_or_init(|| {
            let clock = shared.clock.build(None).snapshot();
            let windower = shared.windower.build(None).snapshot();
            codec::encode(&(&clock, &windower)).ok()
        });
        if current.is_some() && current == *fresh {
            return StateAction::Discard;
        }
        // Give back what the closed windows held.
        self.windows = Vec::new();
        self.queue = None;
        self.windower = shared.windower.build(Some(windower));
        StateAction::Retain
    }
}

impl<V, R, C, D, L, B> StatefulBatchLogic<V, WinEvent<V, R>> for KeyWindows<V, R, C, D, L, B>
where
    V: State,
    R: 'static,
    C: Clock<V>,
    D: Windower,
    L: WindowLogic<V, R>,
    B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
{
    type State = StateOf<V, C, D, L::State>;

    #[inline]
    fn on_batch(&mut self, values: std::vec::Drain<'_, V>, out: &mut Vec<WinEvent<V, R>>) -> StateAction {
        self.clock.before_batch();
        let ordered = self.step.shared.ordered;
        for value in values {
            let (ts, watermark) = self.clock.on_item(&value);
            if ts < watermark {
                self.late(ts, value, out);
            } else if ordered {
                self.enqueue(ts, value);
            } else {
                self.apply(ts, value, out);
            }
            self.advance(watermark, out);
        }
        self.action()
    }

    fn on_notify(&mut self, out: &mut Vec<WinEvent<V, R>>) -> StateAction {
        let watermark = self.clock.on_notify();
        self.advance(watermark, out);
        self.action()
    }

    fn on_eof(&mut self, out: &mut Vec<WinEvent<V, R>>) -> StateAction {
        self.advance(i64::MAX, out);
        StateAction::Discard
    }

    fn notify_at(&self) -> Option<SystemTime> {
        let close = self.windower.next_close();
        let queued = self.queue.as_ref().and_then(|q| q.front()).map(|(ts, _)| *ts);
        let at = match (close, queued) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        self.clock.to_system(at)
    }

    fn snapshot(&self) -> Self::State {
        KeyWindowsState {
            clock: self.clock.snapshot(),
            windower: self.windower.snapshot(),
            windows: self.windows.iter().map(|(id, l)| (*id, l.snapshot())).collect(),
            queue: self.queue.iter().flat_map(|q| q.iter()).cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::recovery::codec;
    use crate::windowing::{EventClock, SessionWindower};

    /// Collects the values of a window.
    struct Collect(Vec<i64>);

    impl WindowLogic<i64, Vec<i64>> for Collect {
        type State = Vec<i64>;
        fn on_value(&mut self, v: i64, _out: &mut Emit<'_, i64, Vec<i64>>) {
            self.0.push(v);
        }
        fn on_merge(&mut self, other: Self, _out: &mut Emit<'_, i64, Vec<i64>>) {
            self.0.extend(other.0);
        }
        fn on_close(self, out: &mut Emit<'_, i64, Vec<i64>>) {
            out.emit(self.0);
        }
        fn snapshot(&self) -> Vec<i64> {
            self.0.clone()
        }
    }

    type Clk = EventClock<i64, fn(&i64) -> i64>;
    type Build = fn(Option<Vec<i64>>) -> Collect;
    type Keyed = KeyWindows<i64, Vec<i64>, Clk, SessionWindower, Collect, Build>;

    fn shared() -> Arc<Lowered<Clk, SessionWindower, Build>> {
        let shared = Arc::new(Shared {
            clock: EventClock::replay((|ts: &i64| *ts) as fn(&i64) -> i64, Duration::from_millis(10)),
            windower: SessionWindower::new(Duration::from_millis(2)),
            builder: (|r: Option<Vec<i64>>| Collect(r.unwrap_or_default())) as Build,
            ordered: true,
        });
        Arc::new(Lowered::new(shared, true))
    }

    fn feed(logic: &mut Keyed, values: &[i64], out: &mut Vec<WinEvent<i64, Vec<i64>>>) {
        let mut v = values.to_vec();
        logic.on_batch(v.drain(..), out);
    }

    fn results(out: Vec<WinEvent<i64, Vec<i64>>>) -> Vec<String> {
        out.into_iter()
            .map(|e| match e {
                WinEvent::Down(id, r) => format!("down {id} {r:?}"),
                WinEvent::Late(id, v) => format!("late {id} {v}"),
                WinEvent::Meta(id, m) => {
                    format!("meta {id} {}..{} {:?}", m.open_time, m.close_time, m.merged_ids)
                }
            })
            .collect()
    }

    #[test]
    fn a_resumed_key_continues_exactly_where_its_snapshot_was_taken() {
        let (first, second) = ([1, 9, 4, 2, 20, 12], [7, 30, 0, 31]);
        let mut whole = Vec::new();
        let mut logic: Keyed = KeyWindows::build(shared(), None);
        feed(&mut logic, &first, &mut whole);
        feed(&mut logic, &second, &mut whole);
        logic.on_eof(&mut whole);

        let mut split = Vec::new();
        let mut logic: Keyed = KeyWindows::build(shared(), None);
        feed(&mut logic, &first, &mut split);
        let bytes = codec::encode(&logic.snapshot()).unwrap();
        drop(logic);
        let mut resumed: Keyed = KeyWindows::build(shared(), Some(codec::decode(&bytes).unwrap()));
        feed(&mut resumed, &second, &mut split);
        resumed.on_eof(&mut split);

        let whole = results(whole);
        assert_eq!(results(split), whole);
        // Queued (12 and 20 at the snapshot) and late items took part.
        assert!(whole.iter().any(|r| r.starts_with("late -1")), "{whole:?}");
        assert!(whole.contains(&"down 0 [1, 2, 4]".to_string()), "{whole:?}");
    }

    mod closed_keys {
        use super::*;
        use crate::Dataflow;
        use crate::testing::{TestingEvent, TestingSink, TestingSource};
        use crate::windowing::{SystemClock, TumblingWindower, now_ms};

        #[test]
        fn a_late_item_cannot_reopen_a_window_that_closed_with_its_keys_last() {
            let flow = Dataflow::new("f");
            let (out, late) = (TestingSink::new(), TestingSink::new());
            let t = now_ms();
            let events = vec![
                // Window `t / 50` opens; the live watermark then moves with system time, so
                // the window closes at a wake-up within 50 ms, and the key has no window
                // open any more.
                TestingEvent::Item(('a', t)),
                TestingEvent::Pause(Duration::from_millis(500)),
                // An item of that window is late now: it must not open it again.
                TestingEvent::Item(('a', t)),
            ];
            let w = flow
                .input("inp", TestingSource::from_events(events))
                .collect_window(
                    "win",
                    EventClock::new(|ts: &i64| *ts, Duration::ZERO),
                    TumblingWindower::new(Duration::from_millis(50), 0).unwrap(),
                    false,
                );
            w.down.output("out", out.clone());
            w.late.output("late", late.clone());
            crate::run_main(&flow).unwrap();
            let id = t.div_euclid(50);
            assert_eq!(out.take(), vec![('a', (id, vec![t]))]);
            assert_eq!(late.take(), vec![('a', (id, t))]);
        }

        #[test]
        fn a_key_that_differs_from_a_new_one_in_nothing_is_dropped() {
            type Sys = KeyWindows<i64, Vec<i64>, SystemClock, TumblingWindower, Collect, Build>;
            let shared = Arc::new(Shared {
                clock: SystemClock,
                windower: TumblingWindower::new(Duration::from_millis(5), 0).unwrap(),
                builder: (|r: Option<Vec<i64>>| Collect(r.unwrap_or_default())) as Build,
                ordered: false,
            });
            let mut logic: Sys = KeyWindows::build(Arc::new(Lowered::new(shared, true)), None);
            let mut out = Vec::new();
            assert_eq!(logic.on_batch(vec![1].drain(..), &mut out), StateAction::Retain);
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(logic.on_notify(&mut out), StateAction::Discard);
            assert!(results(out).iter().any(|r| r.contains("[1]")));
        }
    }
}
