//! The second half of a window step under a [`PerWorker`](super::PerWorker) clock: each
//! window's keys kept together, as a hand-written timely operator would, and closed when
//! the watermarks of all workers ([`stamp`](super::stamp)) have passed it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::engine::stateful::{KeyedStore, Touched};
use crate::inputs::State;
use crate::operators::KeyedItem;
use crate::{Key, route_hash};

use super::clock::ClockLogic;
use super::logic::{Emit, Lowered, WinEvent, WindowLogic};
use super::stamp::Stamped;
use super::windower::{Grid, SpanCache};
use super::{WindowId, WindowMetadata};

/// A key's part of a worker's windows, as recovery stores it.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct KeyPart<LS, V> {
    /// The watermark when the key was stored.
    watermark: i64,
    windows: Vec<(WindowId, LS)>,
    /// Items waiting for the watermark (ordered mode), by timestamp.
    queue: Vec<(i64, V)>,
}

/// All windows of one windowing step on one worker.
pub(crate) struct PerWorkerWindows<K, V, R, C, D, L, B> {
    step: Arc<Lowered<C, D, B>>,
    grid: Grid,
    /// The windows of the last items' times.
    recent: SpanCache,
    /// The latest watermark stored with any key when the flow resumed: items before it
    /// are late whatever the (restarted) clocks say, so that no closed window reopens.
    floor: i64,
    /// What the windows are closed up to: the least of the workers' watermarks, or the
    /// floor.
    watermark: i64,
    /// The open windows, by id (ids and close times increase together), each with the
    /// logic of every key that has items in it.
    windows: Vec<(WindowId, FxHashMap<K, L>)>,
    /// The emptied map of the last closed window: the next window reuses its allocation
    /// instead of growing a new map key by key.
    spare: Option<FxHashMap<K, L>>,
    /// Ordered mode: on-time items waiting for the watermark, by timestamp.
    queue: BTreeMap<i64, Vec<(K, V)>>,
    /// What a window's logic emitted, before it is paired with the key.
    emitted: Vec<WinEvent<V, R>>,
    /// The keys recorded as touched in `touched_epoch` (recovery on only).
    touched: FxHashSet<K>,
    touched_epoch: u64,
}

impl<K, V, R, C, D, L, B> PerWorkerWindows<K, V, R, C, D, L, B>
where
    K: Key,
    V: State,
    R: 'static,
    C: 'static,
    D: 'static,
    L: WindowLogic<V, R>,
    B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
{
    /// The windows of a step on `grid`.
    pub(crate) fn new(step: Arc<Lowered<C, D, B>>, grid: Grid) -> Self {
        PerWorkerWindows {
            floor: i64::MIN,
            watermark: i64::MIN,
            grid,
            recent: SpanCache::new(),
            step,
            windows: Vec::new(),
            spare: None,
            queue: BTreeMap::new(),
            emitted: Vec::new(),
            touched: FxHashSet::default(),
            touched_epoch: u64::MAX,
        }
    }

    /// Records `key` as changed in the current epoch (once per epoch).
    #[inline]
    fn touch(&mut self, key: &K, touched: &mut Touched<'_, K>) {
        let Some((epoch, keys)) = touched.as_mut() else {
            return;
        };
        if self.touched_epoch != *epoch {
            self.touched_epoch = *epoch;
            self.touched.clear();
        }
        if !self.touched.contains(key) {
            self.touched.insert(key.clone());
            keys.push(key.clone());
        }
    }

    /// Pairs what a logic emitted with its key.
    #[inline(always)]
    fn flush(&mut self, key: &K, emit: &mut impl FnMut(K, WinEvent<V, R>)) {
        for e in self.emitted.drain(..) {
            emit(key.clone(), e);
        }
    }

    /// The position of window `id` in the open windows, opened if new. Items mostly go to
    /// the newest windows, so the search starts at the back.
    #[inline(always)]
    fn window(&mut self, id: WindowId) -> usize {
        match self.windows.iter().rposition(|(w, _)| *w <= id) {
            Some(at) if self.windows[at].0 == id => at,
            at => self.open(at.map_or(0, |at| at + 1), id),
        }
    }

    #[inline(never)]
    fn open(&mut self, at: usize, id: WindowId) -> usize {
        self.windows
            .insert(at, (id, self.spare.take().unwrap_or_default()));
        at
    }

    /// Puts an on-time item into its windows.
    #[inline(always)]
    fn apply(&mut self, key: K, ts: i64, value: V, emit: &mut impl FnMut(K, WinEvent<V, R>)) {
        let (first, last) = self.recent.ids(&self.grid, ts);
        let mut at = self.window(first);
        let mut id = first;
        loop {
            if self.windows.get(at).is_none_or(|(w, _)| *w != id) {
                at = self.window(id);
            }
            let builder = &self.step.shared.builder;
            let keys = &mut self.windows[at].1;
            let logic = match keys.get_mut(&key) {
                Some(logic) => logic,
                None => keys.entry(key.clone()).or_insert_with(|| builder(None)),
            };
            let out = &mut Emit::new(&mut self.emitted, id);
            if id == last {
                logic.on_value(value, out);
                break;
            }
            logic.on_value(value.clone(), out);
            id += 1;
            at += 1;
        }
        if !self.emitted.is_empty() {
            self.flush(&key, emit);
        }
    }

    /// Emits a late item once per window it would have fallen into.
    fn late(&mut self, key: K, ts: i64, value: V, emit: &mut impl FnMut(K, WinEvent<V, R>)) {
        let ids = self.grid.ids(ts);
        let last = *ids.end();
        for id in ids {
            if id == last {
                emit(key, WinEvent::Late(id, value));
                return;
            }
            emit(key.clone(), WinEvent::Late(id, value.clone()));
        }
    }

    /// Applies the queued items the watermark has reached, then closes the windows it
    /// has passed.
    fn advance(
        &mut self,
        watermark: i64,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        touched: &mut Touched<'_, K>,
    ) {
        while let Some(entry) = self.queue.first_entry() {
            if *entry.key() > watermark {
                break;
            }
            let ts = *entry.key();
            for (key, value) in entry.remove() {
                self.apply(key, ts, value, emit);
            }
        }
        while self
            .windows
            .first()
            .is_some_and(|(id, _)| self.grid.close_time(*id) <= watermark)
        {
            self.close_first(emit, touched);
        }
    }

    /// Closes the oldest open window for all its keys.
    fn close_first(&mut self, emit: &mut impl FnMut(K, WinEvent<V, R>), touched: &mut Touched<'_, K>) {
        let (id, mut keys) = self.windows.remove(0);
        let meta = self.step.emit_meta.then(|| WindowMetadata {
            open_time: self.grid.open_time(id),
            close_time: self.grid.close_time(id),
            merged_ids: Default::default(),
        });
        for (key, logic) in keys.drain() {
            logic.on_close(&mut Emit::new(&mut self.emitted, id));
            self.flush(&key, emit);
            if let Some(meta) = &meta {
                emit(key.clone(), WinEvent::Meta(id, Box::new(meta.clone())));
            }
            self.touch(&key, touched);
        }
        self.spare = Some(keys);
    }

    /// When the next window closes or the next queued item is due, in event time.
    fn next_due(&self) -> Option<i64> {
        let close = self.windows.first().map(|(id, _)| self.grid.close_time(*id));
        let queued = self.queue.first_key_value().map(|(ts, _)| *ts);
        match (close, queued) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes an item its worker's clock found on time (`ordered`: the step's mode, read
    /// once per batch by the caller).
    #[inline(always)]
    fn on_time(
        &mut self,
        (key, ts, value): (K, i64, V),
        ordered: bool,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        touched: &mut Touched<'_, K>,
    ) {
        if touched.is_some() {
            self.touch(&key, touched);
        }
        if ordered {
            self.queue.entry(ts).or_default().push((key, value));
        } else {
            self.apply(key, ts, value, emit);
        }
    }

    /// Moves the watermark to `watermark` (if later) and closes what it passed.
    #[inline]
    fn close_up_to(
        &mut self,
        watermark: i64,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        touched: &mut Touched<'_, K>,
    ) {
        self.watermark = self.watermark.max(watermark);
        if self.next_due().is_some_and(|due| due <= self.watermark) {
            self.advance(self.watermark, emit, touched);
        }
    }

    /// Raises the floor to a watermark stored at a snapshot.
    fn raise_floor(&mut self, stored: i64) {
        self.floor = self.floor.max(stored);
        self.watermark = self.watermark.max(self.floor);
    }

    fn resume_key(&mut self, key: K, state: KeyPart<L::State, V>) {
        self.raise_floor(state.watermark);
        for (id, logic) in state.windows {
            let at = self.window(id);
            self.windows[at]
                .1
                .insert(key.clone(), (self.step.shared.builder)(Some(logic)));
        }
        for (ts, value) in state.queue {
            self.queue.entry(ts).or_default().push((key.clone(), value));
        }
    }

    /// At the end of the input: the queued items into their windows, then one window
    /// closed per call, so that the steps downstream take each window's results before
    /// the next; true while windows are left.
    fn close_at_end(
        &mut self,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        mut touched: Touched<'_, K>,
    ) -> bool {
        while let Some((ts, items)) = self.queue.pop_first() {
            for (key, value) in items {
                self.apply(key, ts, value, emit);
            }
        }
        if !self.windows.is_empty() {
            self.close_first(emit, &mut touched);
        }
        !self.windows.is_empty()
    }

    fn key_parts(&self, keys: Vec<K>, each: &mut impl FnMut(K, Option<KeyPart<L::State, V>>)) {
        // One pass over the queue for all keys, copying only the items of these keys.
        let mut queued: FxHashMap<&K, Vec<(i64, V)>> = FxHashMap::default();
        if !self.queue.is_empty() {
            let wanted: FxHashSet<&K> = keys.iter().collect();
            for (ts, items) in &self.queue {
                for (key, value) in items.iter().filter(|(key, _)| wanted.contains(key)) {
                    queued.entry(key).or_default().push((*ts, value.clone()));
                }
            }
        }
        for key in keys {
            let windows: Vec<_> = self
                .windows
                .iter()
                .filter_map(|(id, keys)| Some((*id, keys.get(&key)?.snapshot())))
                .collect();
            let queue = queued.remove(&key).unwrap_or_default();
            let state = (!windows.is_empty() || !queue.is_empty()).then(|| KeyPart {
                watermark: self.watermark,
                windows,
                queue,
            });
            each(key, state);
        }
    }
}

/// The windows of one step on one worker under one watermark for all keys: how items enter
/// them and how the watermark closes them. [`PerWorkerWindows`] keeps each window's keys
/// together (tumbling and sliding windows); [`WorkerSessions`](super::worker_sessions::WorkerSessions)
/// keeps each key's sessions. [`FromWorkers`] and [`SelfStamped`] feed them.
pub(crate) trait WorkerWindows<K, V, R>: 'static {
    /// A key's part of the windows, as recovery stores it.
    type State: State;

    /// Whether on-time items wait for the watermark to be applied in timestamp order.
    fn ordered(&self) -> bool;

    /// What the windows are closed up to.
    fn watermark(&self) -> i64;

    /// The latest watermark stored with any key at a resume: items before it are late.
    fn floor(&self) -> i64;

    /// Takes an item its worker's clock found on time.
    fn on_time(
        &mut self,
        item: (K, i64, V),
        ordered: bool,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        touched: &mut Touched<'_, K>,
    );

    /// Emits a late item once per window it would have fallen into.
    fn late(&mut self, key: K, ts: i64, value: V, emit: &mut impl FnMut(K, WinEvent<V, R>));

    /// Moves the watermark to `watermark` (if later) and closes what it passed.
    fn close_up_to(
        &mut self,
        watermark: i64,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        touched: &mut Touched<'_, K>,
    );

    /// When the next window closes or the next queued item is due, in event time.
    fn next_due(&self) -> Option<i64>;

    /// At the end of the input: the queued items into their windows, then a share of the
    /// windows closed per call; true while some are left.
    fn close_at_end(&mut self, emit: &mut impl FnMut(K, WinEvent<V, R>), touched: Touched<'_, K>) -> bool;

    /// Puts back a key's stored part.
    fn resume_key(&mut self, key: K, state: Self::State);

    /// The watermark stored with a key's part.
    fn stored_watermark(state: &Self::State) -> i64;

    /// Raises the floor to a watermark stored at a snapshot.
    fn raise_floor(&mut self, stored: i64);

    /// The stored part of each of `keys` (`None` for a key with nothing left).
    fn key_parts(&self, keys: Vec<K>, each: &mut impl FnMut(K, Option<Self::State>));
}

impl<K, V, R, C, D, L, B> WorkerWindows<K, V, R> for PerWorkerWindows<K, V, R, C, D, L, B>
where
    K: Key,
    V: State,
    R: 'static,
    C: 'static,
    D: 'static,
    L: WindowLogic<V, R>,
    B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
{
    type State = KeyPart<L::State, V>;

    fn ordered(&self) -> bool {
        self.step.shared.ordered
    }

    fn watermark(&self) -> i64 {
        self.watermark
    }

    fn floor(&self) -> i64 {
        self.floor
    }

    #[inline(always)]
    fn on_time(
        &mut self,
        item: (K, i64, V),
        ordered: bool,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        touched: &mut Touched<'_, K>,
    ) {
        PerWorkerWindows::on_time(self, item, ordered, emit, touched);
    }

    fn late(&mut self, key: K, ts: i64, value: V, emit: &mut impl FnMut(K, WinEvent<V, R>)) {
        PerWorkerWindows::late(self, key, ts, value, emit);
    }

    #[inline]
    fn close_up_to(
        &mut self,
        watermark: i64,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        touched: &mut Touched<'_, K>,
    ) {
        PerWorkerWindows::close_up_to(self, watermark, emit, touched);
    }

    fn next_due(&self) -> Option<i64> {
        PerWorkerWindows::next_due(self)
    }

    fn close_at_end(&mut self, emit: &mut impl FnMut(K, WinEvent<V, R>), touched: Touched<'_, K>) -> bool {
        PerWorkerWindows::close_at_end(self, emit, touched)
    }

    fn resume_key(&mut self, key: K, state: Self::State) {
        PerWorkerWindows::resume_key(self, key, state);
    }

    fn stored_watermark(state: &Self::State) -> i64 {
        state.watermark
    }

    fn raise_floor(&mut self, stored: i64) {
        PerWorkerWindows::raise_floor(self, stored);
    }

    fn key_parts(&self, keys: Vec<K>, each: &mut impl FnMut(K, Option<Self::State>)) {
        PerWorkerWindows::key_parts(self, keys, each);
    }
}

/// Many workers: items come stamped by the clock of the worker that read them, with each
/// worker's watermark in the same channels; the windows close at the least of them.
pub(crate) struct FromWorkers<W> {
    windows: W,
    /// The last watermark each worker sent, and whether it has since said it is idle.
    upstream: Vec<(i64, bool)>,
}

impl<W> FromWorkers<W> {
    /// `windows`, fed by `workers` stamping workers.
    pub(crate) fn new(windows: W, workers: usize) -> Self {
        FromWorkers {
            windows,
            upstream: vec![(i64::MIN, false); workers],
        }
    }
}

impl<K, V, R, W> KeyedStore<Stamped<K, V>, WinEvent<V, R>> for FromWorkers<W>
where
    K: Key,
    V: State,
    R: 'static,
    W: WorkerWindows<K, V, R>,
{
    type Key = K;
    type State = W::State;

    /// Every worker resumes from the latest watermark stored with any key, its own or
    /// not: an older one would let items that were late reopen windows already closed.
    const SEES_OTHER_KEYS: bool = true;

    #[inline]
    fn route(item: &Stamped<K, V>) -> u64 {
        item.route()
    }

    fn resume(&mut self, key: K, state: Self::State) {
        self.windows.resume_key(key, state);
    }

    fn resume_other(&mut self, state: Self::State) {
        self.windows.raise_floor(W::stored_watermark(&state));
    }

    // Not inlined into the engine's operator: as its own function, `self` is known not to
    // alias anything else, and its fields stay in registers across the items.
    #[inline(never)]
    fn apply(
        &mut self,
        items: impl Iterator<Item = Stamped<K, V>>,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        mut touched: Touched<'_, K>,
    ) {
        let windows = &mut self.windows;
        let ordered = windows.ordered();
        let mut moved = false;
        for item in items {
            match item {
                // On time for its worker's clock is on time here: the watermark is the
                // least of all workers' and never passes what the item's worker sent
                // after it. (Only a restarted or processing-time clock can fall behind.)
                Stamped::OnTime(key, ts, value) if ts >= windows.watermark() => {
                    windows.on_time((key, ts, value), ordered, emit, &mut touched);
                }
                Stamped::OnTime(key, ts, value) | Stamped::Late(key, ts, value) => {
                    windows.late(key, ts, value, emit);
                }
                // A worker's watermarks arrive in order; one back from idle may be lower
                // than the others'. The windows' watermark never goes back.
                Stamped::Watermark { from, at, .. } => {
                    if let Some(last) = self.upstream.get_mut(from) {
                        *last = (at, false);
                        moved = true;
                    }
                }
                Stamped::Idle { from, .. } => {
                    if let Some(last) = self.upstream.get_mut(from) {
                        last.1 = true;
                        moved = true;
                    }
                }
            }
        }
        if moved {
            let least = least_watermark(&self.upstream);
            windows.close_up_to(least, emit, &mut touched);
        }
    }

    fn wake(
        &mut self,
        _now: SystemTime,
        _emit: &mut impl FnMut(K, WinEvent<V, R>),
        _touched: Touched<'_, K>,
    ) {
        // The workers' watermarks arrive as items; the stamping step wakes for live clocks.
    }

    fn next_wake(&self) -> Option<SystemTime> {
        None
    }

    fn close_at_eof(&mut self, emit: &mut impl FnMut(K, WinEvent<V, R>), touched: Touched<'_, K>) -> bool {
        self.windows.close_at_end(emit, touched)
    }

    fn snapshot_keys(&self, keys: Vec<K>, each: &mut impl FnMut(K, Option<Self::State>)) {
        self.windows.key_parts(keys, each);
    }
}

/// The windows' watermark from the workers' `(last watermark, idle)`: the least of the
/// workers that are not idle. Once all are idle, none will move its watermark, so, as in
/// Flink, the greatest of them: otherwise the windows would wait on whichever worker
/// happened to be the last to go idle.
fn least_watermark(upstream: &[(i64, bool)]) -> i64 {
    let active = upstream.iter().filter(|(_, idle)| !idle).map(|(at, _)| *at).min();
    active.unwrap_or_else(|| upstream.iter().map(|(at, _)| *at).max().unwrap_or(i64::MIN))
}

/// On one worker, the windows with that worker's clock: items are stamped as they arrive,
/// with no stamping step before the exchange (one worker's watermark is the least of all).
pub(crate) struct SelfStamped<W, CL> {
    windows: W,
    clock: CL,
}

impl<W, CL> SelfStamped<W, CL> {
    pub(crate) fn new(windows: W, clock: CL) -> Self {
        SelfStamped { windows, clock }
    }
}

impl<T, K, V, R, W, CL> KeyedStore<T, WinEvent<V, R>> for SelfStamped<W, CL>
where
    T: KeyedItem<K = K, V = V>,
    K: Key,
    V: State,
    R: 'static,
    W: WorkerWindows<K, V, R>,
    CL: ClockLogic<V>,
{
    type Key = K;
    type State = W::State;
    // Stored as every worker's windows are, so that a resume on several workers gives
    // each of them the watermark stored with any key.
    const SEES_OTHER_KEYS: bool = true;

    #[inline]
    fn route(item: &T) -> u64 {
        route_hash(item.key())
    }

    fn resume(&mut self, key: K, state: Self::State) {
        self.windows.resume_key(key, state);
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
        let windows = &mut self.windows;
        let ordered = windows.ordered();
        self.clock.before_batch();
        let mut watermark = i64::MIN;
        for item in items {
            let (key, value) = item.into_parts();
            let (ts, wm) = self.clock.on_item(&value);
            watermark = wm;
            if ts < wm.max(windows.floor()) {
                windows.late(key, ts, value, emit);
            } else {
                windows.on_time((key, ts, value), ordered, emit, &mut touched);
            }
        }
        // Closing after the batch is as exact as after each item: an on-time item is never
        // older than the watermark, so it never belongs to a window the watermark passed.
        windows.close_up_to(watermark, emit, &mut touched);
    }

    fn wake(
        &mut self,
        now: SystemTime,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        mut touched: Touched<'_, K>,
    ) {
        let due = self.windows.next_due().and_then(|at| self.clock.to_system(at));
        if due.is_some_and(|at| at <= now) {
            let watermark = self.clock.on_notify();
            self.windows.close_up_to(watermark, emit, &mut touched);
        }
    }

    fn next_wake(&self) -> Option<SystemTime> {
        self.clock.to_system(self.windows.next_due()?)
    }

    fn close_at_eof(&mut self, emit: &mut impl FnMut(K, WinEvent<V, R>), touched: Touched<'_, K>) -> bool {
        self.windows.close_at_end(emit, touched)
    }

    fn snapshot_keys(&self, keys: Vec<K>, each: &mut impl FnMut(K, Option<Self::State>)) {
        self.windows.key_parts(keys, each);
    }
}

#[cfg(test)]
mod tests {
    use super::least_watermark;

    #[test]
    fn idle_workers_are_left_out_until_all_are_idle() {
        const NONE: i64 = i64::MIN;
        assert_eq!(least_watermark(&[(25, false), (NONE, false)]), NONE);
        assert_eq!(least_watermark(&[(25, false), (NONE, true)]), 25);
        assert_eq!(least_watermark(&[(25, true), (NONE, false)]), NONE);
        // All idle: the greatest, whichever went idle last.
        assert_eq!(least_watermark(&[(25, true), (NONE, true)]), 25);
        assert_eq!(least_watermark(&[(7, true), (25, true), (3, true)]), 25);
        assert_eq!(least_watermark(&[(7, false), (25, true), (3, false)]), 3);
    }
}
