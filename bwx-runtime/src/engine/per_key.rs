//! The store of most keyed steps: one logic value per key, with per-key wake-ups.

use std::collections::BTreeSet;
use std::time::SystemTime;

use rustc_hash::FxHashMap;

use crate::operators::KeyedItem;
use crate::stateful::logic::{StateAction, StatefulBatchLogic};
use crate::{Key, route_hash};

use super::keyed_store::{KeyedStore, Touched};

/// Keys closed per activation at the end of the input.
pub(crate) const EOF_CHUNK: usize = 4096;

/// Per-key timers: the next wake-up of each key, ordered by time.
pub(crate) struct Timers<K> {
    by_time: BTreeSet<(SystemTime, K)>,
    by_key: FxHashMap<K, SystemTime>,
}

impl<K: Key> Timers<K> {
    pub(crate) fn new() -> Self {
        Timers {
            by_time: BTreeSet::new(),
            by_key: FxHashMap::default(),
        }
    }

    /// Sets (`Some`) or clears (`None`) the key's wake-up. Called per item: the common
    /// case, no wake-up asked and none set, is inlined; the rest is not.
    #[inline(always)]
    pub(crate) fn set(&mut self, key: &K, at: Option<SystemTime>) {
        if at.is_some() || !self.by_key.is_empty() {
            self.change(key, at);
        }
    }

    #[inline(never)]
    fn change(&mut self, key: &K, at: Option<SystemTime>) {
        let old = self.by_key.get(key).copied();
        if old == at {
            return;
        }
        if let Some(old) = old {
            self.by_time.remove(&(old, key.clone()));
            self.by_key.remove(key);
        }
        if let Some(at) = at {
            self.by_time.insert((at, key.clone()));
            self.by_key.insert(key.clone(), at);
        }
    }

    pub(crate) fn pop_due(&mut self, now: SystemTime) -> Option<K> {
        let first = self.by_time.first()?;
        if first.0 > now {
            return None;
        }
        let (_, key) = self.by_time.pop_first()?;
        self.by_key.remove(&key);
        Some(key)
    }

    pub(crate) fn next(&self) -> Option<SystemTime> {
        self.by_time.first().map(|(t, _)| *t)
    }
}

/// "Never touched", for [`Live::touched`].
const NEVER: u64 = u64::MAX;

/// A key's logic and the last epoch it was touched in, so that the keys to snapshot are
/// collected without a second hash lookup per item.
struct Live<L> {
    logic: L,
    touched: u64,
}

impl<L> Live<L> {
    /// Marks the key touched in `epoch`; true the first time in that epoch.
    #[inline]
    fn touch(&mut self, epoch: u64) -> bool {
        let first = self.touched != epoch;
        self.touched = epoch;
        first
    }
}

/// One [`StatefulBatchLogic`] per key, built by `builder` (from the key's resume state, or
/// `None` for a new key), with its wake-ups and scratch buffers.
pub(crate) struct PerKey<K, V, W, L, B> {
    logics: FxHashMap<K, Live<L>>,
    timers: Timers<K>,
    builder: B,
    values: Vec<V>,
    emitted: Vec<W>,
    /// At the end of the input: the keys still to close, last first. A chunk is closed
    /// per activation so that the steps downstream take each chunk's results before the
    /// next; closing every key at once queued all of them (a peak of memory).
    at_eof: Option<Vec<K>>,
}

impl<K: Key, V, W, L, B> PerKey<K, V, W, L, B>
where
    L: StatefulBatchLogic<V, W>,
    B: Fn(Option<L::State>) -> L,
{
    pub(crate) fn new(builder: B) -> Self {
        PerKey {
            logics: FxHashMap::default(),
            timers: Timers::new(),
            builder,
            values: Vec::new(),
            emitted: Vec::new(),
            at_eof: None,
        }
    }

    /// Emits what the last callback of `key` emitted and applies its action.
    #[inline(always)]
    fn settle(
        &mut self,
        key: K,
        (action, wake): (StateAction, Option<SystemTime>),
        first: bool,
        emit: &mut impl FnMut(K, W),
        touched: &mut Touched<'_, K>,
    ) {
        for w in self.emitted.drain(..) {
            emit(key.clone(), w);
        }
        match action {
            StateAction::Retain => self.timers.set(&key, wake),
            StateAction::Discard => {
                self.logics.remove(&key);
                self.timers.set(&key, None);
            }
        }
        if first && let Some((_, keys)) = touched.as_mut() {
            keys.push(key);
        }
    }
}

impl<T, K: Key, V: 'static, W: 'static, L, B> KeyedStore<T, W> for PerKey<K, V, W, L, B>
where
    T: KeyedItem<K = K, V = V>,
    L: StatefulBatchLogic<V, W>,
    B: Fn(Option<L::State>) -> L + 'static,
{
    type Key = K;
    type State = L::State;

    #[inline]
    fn route(item: &T) -> u64 {
        route_hash(item.key())
    }

    fn resume(&mut self, key: K, state: L::State) {
        let logic = (self.builder)(Some(state));
        self.timers.set(&key, logic.notify_at());
        self.logics.insert(
            key,
            Live {
                logic,
                touched: NEVER,
            },
        );
    }

    /// Runs consecutive items of one key as one batch.
    // Not inlined into the engine's operator: as its own function, `self` is known not to
    // alias anything else, and its fields stay in registers across the items.
    #[inline(never)]
    fn apply(
        &mut self,
        data: impl Iterator<Item = T>,
        emit: &mut impl FnMut(K, W),
        mut touched: Touched<'_, K>,
    ) {
        let mut items = data.map(KeyedItem::into_parts).peekable();
        while let Some((key, first)) = items.next() {
            self.values.push(first);
            while let Some((_, v)) = items.next_if(|(k, _)| *k == key) {
                self.values.push(v);
            }
            let live = match self.logics.get_mut(&key) {
                Some(live) => live,
                None => self.logics.entry(key.clone()).or_insert_with(|| Live {
                    logic: (self.builder)(None),
                    touched: NEVER,
                }),
            };
            let action = live.logic.on_batch(self.values.drain(..), &mut self.emitted);
            let wake = live.logic.notify_at();
            let first = touched.as_ref().is_some_and(|(epoch, _)| live.touch(*epoch));
            self.settle(key, (action, wake), first, emit, &mut touched);
        }
    }

    fn wake(&mut self, now: SystemTime, emit: &mut impl FnMut(K, W), mut touched: Touched<'_, K>) {
        while let Some(key) = self.timers.pop_due(now) {
            let Some(live) = self.logics.get_mut(&key) else {
                continue;
            };
            let action = live.logic.on_notify(&mut self.emitted);
            let wake = live.logic.notify_at();
            let first = touched.as_ref().is_some_and(|(epoch, _)| live.touch(*epoch));
            self.settle(key, (action, wake), first, emit, &mut touched);
        }
    }

    fn next_wake(&self) -> Option<SystemTime> {
        self.timers.next()
    }

    fn close_at_eof(&mut self, emit: &mut impl FnMut(K, W), mut touched: Touched<'_, K>) -> bool {
        let logics = &self.logics;
        let mut pending = self.at_eof.take().unwrap_or_else(|| {
            let mut pending: Vec<K> = logics.keys().cloned().collect();
            pending.reverse();
            pending
        });
        for _ in 0..EOF_CHUNK {
            let Some(key) = pending.pop() else { break };
            let Some(live) = self.logics.get_mut(&key) else {
                continue;
            };
            let action = live.logic.on_eof(&mut self.emitted);
            // A key whose EOF neither emits nor discards is taken as unchanged, so that a
            // resumed flow reaching EOF does not rewrite every key's state.
            let changed = !self.emitted.is_empty() || action == StateAction::Discard;
            let first = changed && touched.as_ref().is_some_and(|(epoch, _)| live.touch(*epoch));
            for w in self.emitted.drain(..) {
                emit(key.clone(), w);
            }
            if action == StateAction::Discard {
                self.logics.remove(&key);
            }
            if first && let Some((_, keys)) = touched.as_mut() {
                keys.push(key);
            }
        }
        let more = !pending.is_empty();
        self.at_eof = Some(pending);
        more
    }

    fn snapshot_keys(&self, keys: Vec<K>, each: &mut impl FnMut(K, Option<L::State>)) {
        for key in keys {
            let state = self.logics.get(&key).map(|live| live.logic.snapshot());
            each(key, state);
        }
    }
}
