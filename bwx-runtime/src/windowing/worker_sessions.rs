//! Windows that differ per key (sessions) under a [`PerWorker`](super::PerWorker) clock:
//! each key's windower and windows, closed when the watermark of all workers passes them,
//! as Flink's session windows close at an operator's watermark.
//!
//! With a clock per key, a key's sessions close only when that key's own later items pass
//! them, so a key that stops getting items holds its last session until the end of the
//! input; here every key's sessions close as the workers' watermark moves on. The keys
//! are found by the time their next window closes, in a heap that is checked lazily.
//!
//! A key whose sessions have all closed keeps its windower and nothing else, so that its
//! next session gets the next id: as in Bytewax, a key's session ids are unique for the
//! run (a resumed run included), where a new windower would count from 0 again.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::Key;
use crate::engine::EOF_CHUNK;
use crate::engine::stateful::Touched;
use crate::inputs::State;
use crate::recovery::codec;

use super::WindowId;
use super::logic::{Emit, Lowered, WinEvent, WindowLogic};
use super::per_worker::WorkerWindows;
use super::windower::{Windower, WindowerLogic};

/// A key's sessions, as recovery stores them.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SessionPart<WS, LS, V> {
    /// The watermark when the key was stored.
    watermark: i64,
    windower: WS,
    windows: Vec<(WindowId, LS)>,
    /// Items waiting for the watermark (ordered mode), by timestamp.
    queue: Vec<(i64, V)>,
}

/// One key's windower and open windows (by id).
struct Slot<WL, L> {
    windower: WL,
    windows: Vec<(WindowId, L)>,
    /// When the key's entry in the close heap is due (`i64::MAX`: it has none).
    scheduled: i64,
}

/// All keys' sessions of one windowing step on one worker.
pub(crate) struct WorkerSessions<K, V, R, C, D: Windower, L, B> {
    step: Arc<Lowered<C, D, B>>,
    keys: FxHashMap<K, Slot<D::Logic, L>>,
    /// `(when, key)`: the key's next window closes at `when` or later (entries go stale as
    /// sessions grow; each is checked when it comes due).
    closing: BinaryHeap<Reverse<(i64, K)>>,
    /// A windower logic with no windows, for the ids of late items.
    probe: D::Logic,
    /// The encoded state of a new key's windower: a key whose windower is back to it holds
    /// nothing a new key would not, and is dropped.
    fresh: Option<Vec<u8>>,
    /// The latest watermark stored with any key when the flow resumed.
    floor: i64,
    /// What the windows are closed up to.
    watermark: i64,
    /// Ordered mode: on-time items waiting for the watermark, by timestamp.
    queue: BTreeMap<i64, Vec<(K, V)>>,
    /// What a window's logic emitted, before it is paired with the key.
    emitted: Vec<WinEvent<V, R>>,
    /// The keys recorded as changed in `touched_epoch` (recovery on only).
    touched: FxHashSet<K>,
    touched_epoch: u64,
    /// At the end of the input: the keys still to close.
    at_eof: Option<Vec<K>>,
}

impl<K, V, R, C, D, L, B> WorkerSessions<K, V, R, C, D, L, B>
where
    K: Key,
    V: State,
    R: 'static,
    C: 'static,
    D: Windower,
    L: WindowLogic<V, R>,
    B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
{
    pub(crate) fn new(step: Arc<Lowered<C, D, B>>) -> Self {
        let probe = step.shared.windower.build(None);
        WorkerSessions {
            fresh: codec::encode(&probe.snapshot()).ok(),
            probe,
            step,
            keys: FxHashMap::default(),
            closing: BinaryHeap::new(),
            floor: i64::MIN,
            watermark: i64::MIN,
            queue: BTreeMap::new(),
            emitted: Vec::new(),
            touched: FxHashSet::default(),
            touched_epoch: u64::MAX,
            at_eof: None,
        }
    }

    /// Records `key` as changed in the current epoch (once per epoch).
    fn touch(&mut self, key: &K, touched: &mut Touched<'_, K>) {
        let Some((epoch, keys)) = touched.as_mut() else {
            return;
        };
        if self.touched_epoch != *epoch {
            self.touched_epoch = *epoch;
            self.touched.clear();
        }
        if self.touched.insert(key.clone()) {
            keys.push(key.clone());
        }
    }

    /// Pairs what a key's windows emitted with the key.
    fn flush(&mut self, key: &K, emit: &mut impl FnMut(K, WinEvent<V, R>)) {
        for e in self.emitted.drain(..) {
            emit(key.clone(), e);
        }
    }

    /// Puts an on-time item into its key's windows, merging sessions it joins.
    fn apply(&mut self, key: K, ts: i64, value: V, emit: &mut impl FnMut(K, WinEvent<V, R>)) {
        let windower = &self.step.shared.windower;
        let slot = match self.keys.get_mut(&key) {
            Some(slot) => slot,
            None => self.keys.entry(key.clone()).or_insert_with(|| Slot {
                windower: windower.build(None),
                windows: Vec::new(),
                scheduled: i64::MAX,
            }),
        };
        let (windows, out) = (&mut slot.windows, &mut self.emitted);
        let ids = slot.windower.open_for(ts, &mut |from, into| {
            let Some(pos) = windows.iter().position(|(id, _)| *id == from) else {
                return;
            };
            let (_, gone) = windows.remove(pos);
            match windows.binary_search_by_key(&into, |(id, _)| *id) {
                Ok(at) => windows[at].1.on_merge(gone, &mut Emit::new(out, into)),
                Err(at) => windows.insert(at, (into, gone)),
            }
        });
        let builder = &self.step.shared.builder;
        let mut ids = ids.peekable();
        while let Some(id) = ids.next() {
            let at = match slot.windows.binary_search_by_key(&id, |(w, _)| *w) {
                Ok(at) => at,
                Err(at) => {
                    slot.windows.insert(at, (id, builder(None)));
                    at
                }
            };
            let out = &mut Emit::new(&mut self.emitted, id);
            if ids.peek().is_none() {
                slot.windows[at].1.on_value(value, out);
                break;
            }
            slot.windows[at].1.on_value(value.clone(), out);
        }
        if let Some(close) = slot.windower.next_close()
            && close < slot.scheduled
        {
            slot.scheduled = close;
            self.closing.push(Reverse((close, key.clone())));
        }
        self.flush(&key, emit);
    }

    /// Closes the windows of `key` that `watermark` has passed and reschedules the key.
    /// A key with no open window is dropped if its windower is a new key's, and otherwise
    /// keeps only its windower (its session count).
    fn close_key(
        &mut self,
        key: K,
        watermark: i64,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        touched: &mut Touched<'_, K>,
    ) {
        let Some(slot) = self.keys.get_mut(&key) else {
            return;
        };
        let (windows, out, emit_meta) = (&mut slot.windows, &mut self.emitted, self.step.emit_meta);
        let mut closed = false;
        slot.windower.close_for(watermark, &mut |id, meta| {
            closed = true;
            if let Ok(pos) = windows.binary_search_by_key(&id, |(w, _)| *w) {
                let (_, logic) = windows.remove(pos);
                logic.on_close(&mut Emit::new(out, id));
            }
            if emit_meta {
                out.push(WinEvent::Meta(id, Box::new(meta)));
            }
        });
        slot.scheduled = i64::MAX;
        let empty = slot.windower.is_empty() && slot.windows.is_empty();
        if let Some(close) = slot.windower.next_close() {
            slot.scheduled = close;
            self.closing.push(Reverse((close, key.clone())));
        }
        let windower = empty.then(|| slot.windower.snapshot());
        let fresh = windower
            .as_ref()
            .is_some_and(|w| self.fresh.is_some() && codec::encode(w).ok() == self.fresh);
        if let Some(windower) = windower.filter(|_| !fresh) {
            // Give back what the closed sessions held.
            slot.windows = Vec::new();
            slot.windower = self.step.shared.windower.build(Some(windower));
        }
        let changed = closed || !self.emitted.is_empty() || fresh;
        self.flush(&key, emit);
        if changed {
            self.touch(&key, touched);
        }
        if fresh {
            self.keys.remove(&key);
        }
    }
}

impl<K, V, R, C, D, L, B> WorkerWindows<K, V, R> for WorkerSessions<K, V, R, C, D, L, B>
where
    K: Key,
    V: State,
    R: 'static,
    C: 'static,
    D: Windower,
    L: WindowLogic<V, R>,
    B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
{
    type State = SessionPart<<D::Logic as WindowerLogic>::State, L::State, V>;

    fn ordered(&self) -> bool {
        self.step.shared.ordered
    }

    fn watermark(&self) -> i64 {
        self.watermark
    }

    fn floor(&self) -> i64 {
        self.floor
    }

    #[inline]
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

    fn late(&mut self, key: K, ts: i64, value: V, emit: &mut impl FnMut(K, WinEvent<V, R>)) {
        let mut ids = self.probe.late_for(ts).peekable();
        while let Some(id) = ids.next() {
            if ids.peek().is_none() {
                emit(key, WinEvent::Late(id, value));
                return;
            }
            emit(key.clone(), WinEvent::Late(id, value.clone()));
        }
    }

    fn close_up_to(
        &mut self,
        watermark: i64,
        emit: &mut impl FnMut(K, WinEvent<V, R>),
        touched: &mut Touched<'_, K>,
    ) {
        self.watermark = self.watermark.max(watermark);
        let watermark = self.watermark;
        while let Some(entry) = self.queue.first_entry() {
            if *entry.key() > watermark {
                break;
            }
            let ts = *entry.key();
            for (key, value) in entry.remove() {
                self.apply(key, ts, value, emit);
            }
        }
        while let Some(Reverse((when, _))) = self.closing.peek() {
            if *when > watermark {
                break;
            }
            let Some(Reverse((when, key))) = self.closing.pop() else {
                break;
            };
            // An entry whose key was rescheduled since (or dropped) is stale.
            if self.keys.get(&key).is_some_and(|slot| slot.scheduled == when) {
                self.close_key(key, watermark, emit, touched);
            }
        }
    }

    fn next_due(&self) -> Option<i64> {
        let close = self.closing.peek().map(|Reverse((when, _))| *when);
        let queued = self.queue.first_key_value().map(|(ts, _)| *ts);
        match (close, queued) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

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
        let keys = &self.keys;
        let mut pending = self
            .at_eof
            .take()
            .unwrap_or_else(|| keys.keys().cloned().collect());
        for _ in 0..EOF_CHUNK {
            let Some(key) = pending.pop() else { break };
            self.close_key(key, i64::MAX, emit, &mut touched);
        }
        let more = !pending.is_empty();
        self.at_eof = Some(pending);
        if !more {
            self.closing.clear();
        }
        more
    }

    fn resume_key(&mut self, key: K, state: Self::State) {
        self.raise_floor(state.watermark);
        let builder = &self.step.shared.builder;
        let mut windows: Vec<_> = state
            .windows
            .into_iter()
            .map(|(id, logic)| (id, builder(Some(logic))))
            .collect();
        windows.sort_by_key(|(id, _)| *id);
        let windower = self.step.shared.windower.build(Some(state.windower));
        let scheduled = windower.next_close().unwrap_or(i64::MAX);
        if scheduled < i64::MAX {
            self.closing.push(Reverse((scheduled, key.clone())));
        }
        for (ts, value) in state.queue {
            self.queue.entry(ts).or_default().push((key.clone(), value));
        }
        self.keys.insert(
            key,
            Slot {
                windower,
                windows,
                scheduled,
            },
        );
    }

    fn stored_watermark(state: &Self::State) -> i64 {
        state.watermark
    }

    fn raise_floor(&mut self, stored: i64) {
        self.floor = self.floor.max(stored);
        self.watermark = self.watermark.max(self.floor);
    }

    fn key_parts(&self, keys: Vec<K>, each: &mut impl FnMut(K, Option<Self::State>)) {
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
            let queue = queued.remove(&key).unwrap_or_default();
            let state = match self.keys.get(&key) {
                Some(slot) => Some(SessionPart {
                    watermark: self.watermark,
                    windower: slot.windower.snapshot(),
                    windows: slot.windows.iter().map(|(id, l)| (*id, l.snapshot())).collect(),
                    queue,
                }),
                None if !queue.is_empty() => Some(SessionPart {
                    watermark: self.watermark,
                    windower: self.probe.snapshot(),
                    windows: Vec::new(),
                    queue,
                }),
                None => None,
            };
            each(key, state);
        }
    }
}
