//! A window step with a clock per key (Bytewax's semantics) on a [`Grid`] (tumbling or
//! sliding windows): each key's clock and open windows in one slot of one map per worker,
//! so that an item costs one lookup.
//!
//! The semantics are [`KeyWindows`](super::logic::KeyWindows)' (which runs session
//! windows): a key's watermark comes from its own clock, an item before it is late, the
//! key's windows close when it passes their end, and a key with no open window and no
//! queued item keeps only its clock, or nothing if that is a new key's. Only the layout differs: the windows' ids come
//! from the grid (the same for every key) instead of a windower per key, and what most
//! items do not need (the queue of ordered mode, which keys changed since the last
//! snapshot) is kept beside the slots, which stay small: per-key memory decides how many
//! keys stay in cache.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::Key;
use crate::engine::stateful::{KeyedStore, Touched};
use crate::engine::{EOF_CHUNK, Timers};
use crate::inputs::State;
use crate::operators::KeyedItem;
use crate::recovery::codec;
use crate::route_hash;

use super::clock::{Clock, ClockLogic};
use super::logic::{Emit, Lowered, WinEvent, WindowLogic};
use super::windower::{CloseCache, Grid, SpanCache};
use super::{WindowId, WindowMetadata};

/// A key's windowing state as recovery stores it. The fields are those of the per-key
/// state of other windowers less the windower's own (the grid is the same for all keys),
/// so a state stored by either reads back here.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct KeyGridState<CS, LS, V> {
    clock: CS,
    windows: Vec<(WindowId, LS)>,
    /// Items waiting for the watermark (ordered mode), by timestamp.
    queue: Vec<(i64, V)>,
}

/// One key's clock and open windows (by id).
struct Slot<CL, L> {
    clock: CL,
    windows: Vec<(WindowId, L)>,
}

/// What every slot's methods need from the step.
struct Cx<'a, B, V, R> {
    grid: Grid,
    builder: &'a B,
    emit_meta: bool,
    out: &'a mut Vec<WinEvent<V, R>>,
}

impl<CL, L> Slot<CL, L> {
    /// The id of the key's oldest open window (`WindowId::MAX` if none is open).
    #[inline(always)]
    fn first_id(&self) -> WindowId {
        self.windows.first().map_or(WindowId::MAX, |(id, _)| *id)
    }

    /// Puts an on-time item into its windows `first..=last`.
    #[inline(always)]
    fn put<V: Clone, R, B>(&mut self, (first, last): (WindowId, WindowId), value: V, cx: &mut Cx<'_, B, V, R>)
    where
        L: WindowLogic<V, R>,
        B: Fn(Option<L::State>) -> L,
    {
        // An item's windows are mostly the newest ones, in order: open those after the
        // newest open one at the end (sliding windows open one per slide), then guess
        // where the first is (an out-of-order item's, the one before) and that each next
        // one follows it.
        let span = usize::try_from(last.wrapping_sub(first)).unwrap_or(0);
        let newest = self.windows.last().map_or(WindowId::MIN, |(id, _)| *id);
        if newest < last {
            self.open_after(newest, (first, last), span, cx);
        }
        let mut at = self.windows.len().saturating_sub(span + 1);
        if self.windows.get(at).is_some_and(|(w, _)| *w > first) {
            at = at.saturating_sub(1);
        }
        let mut id = first;
        loop {
            if self.windows.get(at).is_none_or(|(w, _)| *w != id) {
                at = self.find_or_open(id, cx);
            }
            let out = &mut Emit::new(cx.out, id);
            if id == last {
                self.windows[at].1.on_value(value, out);
                return;
            }
            self.windows[at].1.on_value(value.clone(), out);
            id += 1;
            at += 1;
        }
    }

    /// Opens the windows of `first..=last` after `newest` (the newest open one), at the end.
    #[inline(never)]
    fn open_after<V, R, B>(
        &mut self,
        newest: WindowId,
        (first, last): (WindowId, WindowId),
        span: usize,
        cx: &mut Cx<'_, B, V, R>,
    ) where
        L: WindowLogic<V, R>,
        B: Fn(Option<L::State>) -> L,
    {
        let from = first.max(newest.saturating_add(1));
        if self.windows.is_empty() {
            // A key mostly has its latest item's windows open (`span` + 1 of them), and
            // one more while the oldest waits for the watermark: keep the allocation that
            // small, since per-key memory decides how many keys stay in cache.
            self.windows.reserve_exact(span.saturating_add(2).min(64));
        }
        for id in from..=last {
            if self.windows.len() == self.windows.capacity() {
                self.windows.reserve_exact(1);
            }
            self.windows.push((id, (cx.builder)(None)));
        }
    }

    /// The position of window `id` in the open windows, built if new.
    #[inline(never)]
    fn find_or_open<V, R, B>(&mut self, id: WindowId, cx: &mut Cx<'_, B, V, R>) -> usize
    where
        L: WindowLogic<V, R>,
        B: Fn(Option<L::State>) -> L,
    {
        match self.windows.binary_search_by_key(&id, |(w, _)| *w) {
            Ok(at) => at,
            Err(at) => {
                // Only into a gap or before the oldest (out-of-order items): the newest
                // windows were opened by `open_after`.
                if self.windows.len() == self.windows.capacity() {
                    self.windows.reserve_exact(1);
                }
                self.windows.insert(at, (id, (cx.builder)(None)));
                at
            }
        }
    }

    /// Closes the windows up to id `closed` (those the watermark has passed), in order.
    /// Out of line: it runs once per window, the check before it once per item.
    #[inline(never)]
    fn close<V, R, B>(&mut self, closed: WindowId, cx: &mut Cx<'_, B, V, R>)
    where
        L: WindowLogic<V, R>,
    {
        let n = self.windows.partition_point(|(id, _)| *id <= closed);
        for (id, logic) in self.windows.drain(..n) {
            logic.on_close(&mut Emit::new(cx.out, id));
            if cx.emit_meta {
                let meta = WindowMetadata {
                    open_time: cx.grid.open_time(id),
                    close_time: cx.grid.close_time(id),
                    merged_ids: Default::default(),
                };
                cx.out.push(WinEvent::Meta(id, Box::new(meta)));
            }
        }
    }
}

/// How many items' keys [`PerKeyWindows::apply`] looks up before applying them.
const LOOKAHEAD: usize = 16;

/// Asks the CPU to start loading the cache line at `p` (a hint: no effect on results).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing the program sees, whatever the
    // address; SSE is part of every x86_64 target.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Queues an on-time item (ordered mode), after items with the same timestamp.
fn enqueue<V>(queue: &mut VecDeque<(i64, V)>, ts: i64, value: V) {
    if queue.back().is_none_or(|(last, _)| *last <= ts) {
        queue.push_back((ts, value));
    } else {
        let at = queue.partition_point(|(t, _)| *t <= ts);
        queue.insert(at, (ts, value));
    }
}

/// The first queued item if the watermark has reached it.
#[inline]
fn pop_due<V>(queue: &mut VecDeque<(i64, V)>, watermark: i64) -> Option<(i64, V)> {
    if queue.front().is_some_and(|(ts, _)| *ts <= watermark) {
        queue.pop_front()
    } else {
        None
    }
}

/// All keys' windows of one windowing step on one worker, each key with its own clock.
pub(crate) struct PerKeyWindows<K, V, R, C: Clock<V>, D, L, B> {
    step: Arc<Lowered<C, D, B>>,
    grid: Grid,
    /// The windows of the last items' times, whatever their key.
    spans: SpanCache,
    /// The windows the last items' watermarks closed, whatever their key.
    closes: CloseCache,
    keys: FxHashMap<K, Slot<C::Logic, L>>,
    /// Ordered mode: each key's on-time items waiting for its watermark, by timestamp.
    queues: FxHashMap<K, VecDeque<(i64, V)>>,
    /// Wake-ups of keys whose clock moves with system time.
    timers: Timers<K>,
    /// The keys recorded as changed in `touched_epoch` (recovery on only).
    touched: FxHashSet<K>,
    touched_epoch: u64,
    /// What a window's logic emitted, before it is paired with the key.
    emitted: Vec<WinEvent<V, R>>,
    /// At the end of the input: the keys still to close, last first.
    at_eof: Option<Vec<K>>,
    /// The next items of the batch being applied, whose keys' windows are being loaded.
    ahead: Vec<(K, V)>,
}

impl<K, V, R, C, D, L, B> PerKeyWindows<K, V, R, C, D, L, B>
where
    K: Key,
    V: State,
    R: 'static,
    C: Clock<V>,
    D: 'static,
    L: WindowLogic<V, R>,
    B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
{
    /// The windows of a step on `grid`.
    pub(crate) fn new(step: Arc<Lowered<C, D, B>>, grid: Grid) -> Self {
        PerKeyWindows {
            step,
            grid,
            spans: SpanCache::new(),
            closes: CloseCache::new(),
            keys: FxHashMap::default(),
            queues: FxHashMap::default(),
            timers: Timers::new(),
            touched: FxHashSet::default(),
            touched_epoch: u64::MAX,
            emitted: Vec::new(),
            at_eof: None,
            ahead: Vec::new(),
        }
    }

    /// Drops `key`'s state: it holds nothing any more.
    #[inline(never)]
    fn drop_key(
        keys: &mut FxHashMap<K, Slot<C::Logic, L>>,
        queues: &mut FxHashMap<K, VecDeque<(i64, V)>>,
        key: &K,
    ) {
        keys.remove(key);
        queues.remove(key);
    }

    /// Frees what `key` held once its windows have all closed and its queue is empty. The
    /// key is dropped if its clock is a new key's (a system clock); otherwise the clock
    /// alone is kept: an event clock's watermark, so that an item older than it stays late
    /// and cannot open a window that already closed and was emitted.
    #[inline(never)]
    fn release(
        step: &Lowered<C, D, B>,
        keys: &mut FxHashMap<K, Slot<C::Logic, L>>,
        queues: &mut FxHashMap<K, VecDeque<(i64, V)>>,
        key: &K,
    ) {
        queues.remove(key);
        let Some(slot) = keys.get_mut(key) else {
            return;
        };
        let current = codec::encode(&slot.clock.snapshot()).ok();
        let fresh = step
            .fresh_clock
            .get_or_init(|| codec::encode(&step.shared.clock.build(None).snapshot()).ok());
        if current.is_some() && current == *fresh {
            keys.remove(key);
        } else {
            slot.windows = Vec::new();
        }
    }
}

/// The parts of a [`PerKeyWindows`] that a key's item or wake-up changes besides the key's
/// slot.
struct Rest<'a, K, V> {
    closes: &'a mut CloseCache,
    queues: &'a mut FxHashMap<K, VecDeque<(i64, V)>>,
    timers: &'a mut Timers<K>,
    changed: &'a mut FxHashSet<K>,
    changed_epoch: &'a mut u64,
}

impl<K: Key, V: Clone> Rest<'_, K, V> {
    /// After a key's clock moved to `watermark`: applies the key's queued items it has
    /// reached (ordered mode; `value`, an item of the key, is queued first if it is on
    /// time, else emitted as late), closes the windows it has passed, records the key as
    /// changed, and sets its wake-up. True if the key holds nothing any more.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn settle<CL: ClockLogic<V>, L, R, B>(
        &mut self,
        key: &K,
        slot: &mut Slot<CL, L>,
        watermark: i64,
        ordered: Option<(i64, Option<V>)>,
        cx: &mut Cx<'_, B, V, R>,
        touched: &mut Touched<'_, K>,
    ) -> bool
    where
        L: WindowLogic<V, R>,
        B: Fn(Option<L::State>) -> L,
    {
        let mut queued = None;
        if let Some((ts, value)) = ordered {
            let queue = match self.queues.get_mut(key) {
                Some(queue) => queue,
                None => self.queues.entry(key.clone()).or_default(),
            };
            if let Some(value) = value {
                if ts < watermark {
                    late(cx.grid.ids(ts), value, cx.out);
                } else {
                    enqueue(queue, ts, value);
                }
            }
            while let Some((ts, value)) = pop_due(queue, watermark) {
                let ids = cx.grid.ids(ts);
                slot.put((*ids.start(), *ids.end()), value, cx);
            }
            queued = queue.front().map(|(ts, _)| *ts);
        }
        let closed = self.closes.closed_through(&cx.grid, watermark);
        if slot.first_id() <= closed {
            slot.close(closed, cx);
        }
        if let Some((epoch, keys)) = touched.as_mut() {
            if *self.changed_epoch != *epoch {
                *self.changed_epoch = *epoch;
                self.changed.clear();
            }
            if !self.changed.contains(key) {
                self.changed.insert(key.clone());
                keys.push(key.clone());
            }
        }
        let empty = slot.windows.is_empty() && queued.is_none();
        if slot.clock.wakes() {
            let first = slot.first_id();
            let close = (first != WindowId::MAX).then(|| cx.grid.close_time(first));
            let due = match (close, queued) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let wake = due.filter(|_| !empty).and_then(|due| slot.clock.to_system(due));
            self.timers.set(key, wake);
        }
        empty
    }
}

/// Pairs what a key's windows emitted with the key.
#[inline(always)]
fn flush<K: Clone, V, R>(
    key: &K,
    emitted: &mut Vec<WinEvent<V, R>>,
    emit: &mut impl FnMut(K, WinEvent<V, R>),
) {
    if !emitted.is_empty() {
        for e in emitted.drain(..) {
            emit(key.clone(), e);
        }
    }
}

impl<T, K, V, R, C, D, L, B> KeyedStore<T, WinEvent<V, R>> for PerKeyWindows<K, V, R, C, D, L, B>
where
    T: KeyedItem<K = K, V = V>,
    K: Key,
    V: State,
    R: 'static,
    C: Clock<V>,
    D: 'static,
    L: WindowLogic<V, R>,
    B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
{
    type Key = K;
    type State = KeyGridState<<C::Logic as ClockLogic<V>>::State, L::State, V>;

    #[inline]
    fn route(item: &T) -> u64 {
        route_hash(item.key())
    }

    fn resume(&mut self, key: K, state: Self::State) {
        let builder = &self.step.shared.builder;
        let mut windows: Vec<_> = state
            .windows
            .into_iter()
            .map(|(id, logic)| (id, builder(Some(logic))))
            .collect();
        windows.sort_by_key(|(id, _)| *id);
        let slot = Slot {
            clock: self.step.shared.clock.build(Some(state.clock)),
            windows,
        };
        let queued = state.queue.first().map(|(ts, _)| *ts);
        if slot.clock.wakes() {
            let first = slot.first_id();
            let close = (first != WindowId::MAX).then(|| self.grid.close_time(first));
            let due = match (close, queued) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.timers
                .set(&key, due.and_then(|due| slot.clock.to_system(due)));
        }
        if !state.queue.is_empty() {
            self.queues.insert(key.clone(), state.queue.into());
        }
        self.keys.insert(key, slot);
    }

    // Not inlined into the engine's operator: as its own function, `self` is known not to
    // alias anything else, and its fields stay in registers across the items.
    #[inline(never)]
    fn apply(
        &mut self,
        items: impl Iterator<Item = T>,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        mut touched: Touched<'_, K>,
    ) {
        let PerKeyWindows {
            step,
            grid,
            spans,
            closes,
            keys,
            queues,
            timers,
            touched: changed,
            touched_epoch: changed_epoch,
            emitted,
            ahead,
            ..
        } = self;
        let shared = &step.shared;
        let ordered = shared.ordered;
        let cx = &mut Cx {
            grid: *grid,
            builder: &shared.builder,
            emit_meta: step.emit_meta,
            out: emitted,
        };
        let mut rest = Rest {
            closes,
            queues,
            timers,
            changed,
            changed_epoch,
        };
        // A key that holds nothing after an item is released once its run of consecutive
        // items ends: the run is one batch of the key, whose clock lives through it.
        let mut emptied: Option<K> = None;
        let mut items = items.map(KeyedItem::into_parts);
        loop {
            // Items of many keys come interleaved, so a key's slot and open windows are
            // mostly not in cache: two dependent misses per item (the slot, then its
            // windows) that the CPU cannot overlap within one item. Looking up the next
            // few keys first starts those loads for all of them at once.
            ahead.extend(items.by_ref().take(LOOKAHEAD));
            if ahead.is_empty() {
                break;
            }
            for (key, _) in ahead.iter() {
                if let Some(slot) = keys.get(key) {
                    prefetch(slot.windows.as_ptr());
                }
            }
            for (key, value) in ahead.drain(..) {
                if let Some(done) = emptied.take()
                    && done != key
                {
                    Self::release(step, keys, rest.queues, &done);
                }
                let slot = match keys.get_mut(&key) {
                    Some(slot) => slot,
                    None => keys.entry(key.clone()).or_insert_with(|| Slot {
                        clock: shared.clock.build(None),
                        windows: Vec::new(),
                    }),
                };
                slot.clock.before_batch();
                let (ts, watermark) = slot.clock.on_item(&value);
                let queued = if ordered {
                    Some((ts, Some(value)))
                } else {
                    if ts < watermark {
                        late(cx.grid.ids(ts), value, cx.out);
                    } else {
                        slot.put(spans.ids(&cx.grid, ts), value, cx);
                    }
                    None
                };
                let empty = rest.settle(&key, slot, watermark, queued, cx, &mut touched);
                flush(&key, cx.out, emit);
                if empty {
                    emptied = Some(key);
                }
            }
        }
        if let Some(done) = emptied {
            Self::release(step, keys, rest.queues, &done);
        }
    }

    fn wake(
        &mut self,
        now: SystemTime,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        mut touched: Touched<'_, K>,
    ) {
        let PerKeyWindows {
            step,
            grid,
            closes,
            keys,
            queues,
            timers,
            touched: changed,
            touched_epoch: changed_epoch,
            emitted,
            ..
        } = self;
        let ordered = step.shared.ordered.then_some((0, None));
        let cx = &mut Cx {
            grid: *grid,
            builder: &step.shared.builder,
            emit_meta: step.emit_meta,
            out: emitted,
        };
        let mut rest = Rest {
            closes,
            queues,
            timers,
            changed,
            changed_epoch,
        };
        while let Some(key) = rest.timers.pop_due(now) {
            let Some(slot) = keys.get_mut(&key) else {
                continue;
            };
            let watermark = slot.clock.on_notify();
            let empty = rest.settle(&key, slot, watermark, ordered.clone(), cx, &mut touched);
            flush(&key, cx.out, emit);
            if empty {
                Self::release(step, keys, rest.queues, &key);
            }
        }
    }

    fn next_wake(&self) -> Option<SystemTime> {
        self.timers.next()
    }

    fn close_at_eof(
        &mut self,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        mut touched: Touched<'_, K>,
    ) -> bool {
        let keys = &self.keys;
        let mut pending = self.at_eof.take().unwrap_or_else(|| {
            let mut pending: Vec<K> = keys.keys().cloned().collect();
            pending.reverse();
            pending
        });
        let PerKeyWindows {
            step,
            grid,
            closes,
            keys,
            queues,
            timers,
            touched: changed,
            touched_epoch: changed_epoch,
            emitted,
            ..
        } = self;
        let ordered = step.shared.ordered.then_some((0, None));
        let cx = &mut Cx {
            grid: *grid,
            builder: &step.shared.builder,
            emit_meta: step.emit_meta,
            out: emitted,
        };
        let mut rest = Rest {
            closes,
            queues,
            timers,
            changed,
            changed_epoch,
        };
        for _ in 0..EOF_CHUNK {
            let Some(key) = pending.pop() else { break };
            let Some(slot) = keys.get_mut(&key) else {
                continue;
            };
            // Every queued item is due and every window closes: the key holds nothing.
            rest.settle(&key, slot, i64::MAX, ordered.clone(), cx, &mut touched);
            flush(&key, cx.out, emit);
            Self::drop_key(keys, rest.queues, &key);
            rest.timers.set(&key, None);
        }
        let more = !pending.is_empty();
        self.at_eof = Some(pending);
        more
    }

    fn snapshot_keys(&self, keys: Vec<K>, each: &mut impl FnMut(K, Option<Self::State>)) {
        for key in keys {
            let state = self.keys.get(&key).map(|slot| KeyGridState {
                clock: slot.clock.snapshot(),
                windows: slot.windows.iter().map(|(id, l)| (*id, l.snapshot())).collect(),
                queue: self
                    .queues
                    .get(&key)
                    .map_or_else(Vec::new, |q| q.iter().cloned().collect()),
            });
            each(key, state);
        }
    }
}

/// Emits a late item once per window it would have fallen into.
fn late<V: Clone, R>(ids: std::ops::RangeInclusive<WindowId>, value: V, out: &mut Vec<WinEvent<V, R>>) {
    let last = *ids.end();
    for id in ids {
        if id == last {
            out.push(WinEvent::Late(id, value));
            return;
        }
        out.push(WinEvent::Late(id, value.clone()));
    }
}

#[cfg(test)]
mod tests {
    //! The store against [`KeyWindows`] under the per-key store every other windower runs
    //! on (the layout this one replaced for tumbling and sliding windows): the same items,
    //! wake-ups, snapshots and resumes must give every key the same events, in order.

    use std::cell::Cell;
    use std::collections::BTreeMap;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::engine::PerKey;
    use crate::windowing::logic::{KeyWindows, Shared};
    use crate::windowing::{EventClock, SlidingWindower, TumblingWindower, Windower, system_time_of};

    type Item = (u32, i64);
    type Clk = EventClock<Item, fn(&Item) -> i64>;
    type Build = fn(Option<Vec<Item>>) -> Collect;

    /// Collects a window's values.
    struct Collect(Vec<Item>);

    impl WindowLogic<Item, Vec<Item>> for Collect {
        type State = Vec<Item>;
        fn on_value(&mut self, v: Item, _out: &mut Emit<'_, Item, Vec<Item>>) {
            self.0.push(v);
        }
        fn on_merge(&mut self, other: Self, _out: &mut Emit<'_, Item, Vec<Item>>) {
            self.0.extend(other.0);
        }
        fn on_close(self, out: &mut Emit<'_, Item, Vec<Item>>) {
            out.emit(self.0);
        }
        fn snapshot(&self) -> Vec<Item> {
            self.0.clone()
        }
    }

    thread_local! {
        /// The system time of the live clocks (ms), set by the test.
        static NOW: Cell<i64> = const { Cell::new(0) };
    }

    fn test_now() -> i64 {
        NOW.get()
    }

    /// One step of a run: a batch of `(key, (index, ts))` after the system time moved by
    /// `advance` ms; then, if `resume`, every key's state is stored and read back into a
    /// fresh store (a stop and a restart).
    #[derive(Clone, Debug)]
    struct Step {
        batch: Vec<(u8, Item)>,
        advance: i64,
        resume: bool,
    }

    /// Every key's events, in order.
    type PerKeyEvents = BTreeMap<u8, Vec<String>>;

    /// Runs `steps` through a store made by `make` (from the states stored at a resume).
    fn drive<S, M>(steps: &[Step], make: M) -> PerKeyEvents
    where
        S: KeyedStore<(u8, Item), WinEvent<Item, Vec<Item>>, Key = u8>,
        M: Fn() -> S,
    {
        NOW.set(1_000_000);
        let mut store = make();
        let mut got = PerKeyEvents::new();
        let mut record =
            |k: u8, e: WinEvent<Item, Vec<Item>>| got.entry(k).or_default().push(format!("{e:?}"));
        let mut seen: Vec<u8> = Vec::new();
        for (epoch, step) in steps.iter().enumerate() {
            NOW.set(NOW.get() + step.advance);
            let mut touched = Vec::new();
            store.apply(
                step.batch.clone().into_iter(),
                &mut record,
                Some((epoch as u64, &mut touched)),
            );
            store.wake(
                system_time_of(NOW.get()),
                &mut record,
                Some((epoch as u64, &mut touched)),
            );
            seen.extend(touched);
            if step.resume {
                seen.sort();
                seen.dedup();
                let mut stored = Vec::new();
                store.snapshot_keys(seen.clone(), &mut |k, state| {
                    if let Some(state) = state {
                        stored.push((k, codec::encode(&state).unwrap()));
                    }
                });
                store = make();
                for (k, bytes) in stored {
                    store.resume(k, codec::decode(&bytes).unwrap());
                }
            }
        }
        while store.close_at_eof(&mut record, None) {}
        got
    }

    fn compare<D: Windower>(
        steps: &[Step],
        clock: Clk,
        windower: D,
        ordered: bool,
    ) -> Result<(), TestCaseError> {
        let grid = windower.grid().expect("a grid windower");
        let step = Arc::new(Lowered::new(
            Arc::new(Shared {
                clock,
                windower,
                builder: (|r: Option<Vec<Item>>| Collect(r.unwrap_or_default())) as Build,
                ordered,
            }),
            true,
        ));
        let reference = drive(steps, || {
            let step = step.clone();
            PerKey::<
                u8,
                Item,
                WinEvent<Item, Vec<Item>>,
                KeyWindows<Item, Vec<Item>, Clk, D, Collect, Build>,
                _,
            >::new(move |resume| KeyWindows::build(step.clone(), resume))
        });
        let got = drive(steps, || {
            PerKeyWindows::<u8, Item, Vec<Item>, Clk, D, Collect, Build>::new(step.clone(), grid)
        });
        prop_assert_eq!(got, reference);
        Ok(())
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        // Per item: key, time step, jitter, rarely a big jump back.
        let item = (0u8..4, 0i64..6, -8i64..=8, prop::bool::weighted(0.05));
        let step = (
            prop::collection::vec(item, 0..12),
            0i64..40,
            prop::bool::weighted(0.2),
        );
        prop::collection::vec(step, 1..16).prop_map(|raw| {
            let (mut t, mut n) = (0i64, 0u32);
            raw.into_iter()
                .map(|(items, advance, resume)| {
                    let batch = items
                        .into_iter()
                        .map(|(k, step, jitter, very_late)| {
                            t += step;
                            n += 1;
                            (k, (n, if very_late { t - 60 } else { t + jitter }))
                        })
                        .collect();
                    Step {
                        batch,
                        advance,
                        resume,
                    }
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn the_store_gives_every_key_what_key_windows_give_it(
            steps in steps(),
            wait in 0i64..12,
            live in any::<bool>(),
            ordered in any::<bool>(),
            sliding in any::<bool>(),
            (length, offset, align) in (1i64..40, 1i64..40, -50i64..50),
        ) {
            let getter: fn(&Item) -> i64 = |(_, ts)| *ts;
            let wait = Duration::from_millis(wait as u64);
            let clock = if live {
                EventClock::with_now(getter, wait, test_now)
            } else {
                EventClock::replay(getter, wait)
            };
            if sliding {
                let (length, offset) = (length.max(offset), length.min(offset));
                let w = SlidingWindower::new(Duration::from_millis(length as u64), Duration::from_millis(offset as u64), align).unwrap();
                compare(&steps, clock, w, ordered)?;
            } else {
                let w = TumblingWindower::new(Duration::from_millis(length as u64), align).unwrap();
                compare(&steps, clock, w, ordered)?;
            }
        }
    }
}
