//! `stateful_map` and `stateful_flat_map`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::engine::stateful::{KeyedStore, Touched, keyed_operator};
use crate::flow::Stream;
use crate::inputs::State;
use crate::operators::KeyedItem;
use crate::{Data, ExchangeData, Key, route_hash};

/// The keys' states of one `stateful_map` or `stateful_flat_map` step on one worker: each
/// key's state and nothing else, so that a key costs its map entry (key and state) and no
/// more. The mapper is kept once per worker, not per key, and the keys changed in an epoch
/// (recovery on only) beside the states.
struct MapStates<K, S, F, V, I> {
    states: FxHashMap<K, S>,
    mapper: Arc<F>,
    /// The keys recorded as changed in `changed_epoch`.
    changed: FxHashSet<K>,
    changed_epoch: u64,
    _io: PhantomData<fn(V) -> I>,
}

impl<K: Key, S, F, V, I> MapStates<K, S, F, V, I> {
    fn new(mapper: Arc<F>) -> Self {
        MapStates {
            states: FxHashMap::default(),
            mapper,
            changed: FxHashSet::default(),
            changed_epoch: u64::MAX,
            _io: PhantomData,
        }
    }
}

impl<T, K, V, S, W, F, I> KeyedStore<T, W> for MapStates<K, S, F, V, I>
where
    T: KeyedItem<K = K, V = V>,
    K: Key,
    V: 'static,
    S: State,
    W: 'static,
    I: IntoIterator<Item = W> + 'static,
    F: Fn(Option<S>, V) -> (Option<S>, I) + 'static,
{
    type Key = K;
    type State = S;

    #[inline]
    fn route(item: &T) -> u64 {
        route_hash(item.key())
    }

    fn held_keys(&self) -> Option<usize> {
        Some(self.states.len())
    }

    fn resume(&mut self, key: K, state: S) {
        self.states.insert(key, state);
    }

    // Not inlined into the engine's operator: as its own function, `self` is known not to
    // alias anything else, and its fields stay in registers across the items.
    #[inline(never)]
    fn apply(
        &mut self,
        items: impl Iterator<Item = T>,
        emit: &mut impl FnMut(K, W),
        mut touched: Touched<'_, K>,
    ) {
        for item in items {
            let (key, value) = item.into_parts();
            // Taken out and put back: the mapper owns the state while it runs.
            let (state, outputs) = (self.mapper)(self.states.remove(&key), value);
            for w in outputs {
                emit(key.clone(), w);
            }
            if let Some((epoch, keys)) = touched.as_mut() {
                if self.changed_epoch != *epoch {
                    self.changed_epoch = *epoch;
                    self.changed.clear();
                }
                if !self.changed.contains(&key) {
                    self.changed.insert(key.clone());
                    keys.push(key.clone());
                }
            }
            if let Some(state) = state {
                self.states.insert(key, state);
            }
        }
    }

    fn wake(&mut self, _now: SystemTime, _emit: &mut impl FnMut(K, W), _touched: Touched<'_, K>) {}

    fn next_wake(&self) -> Option<SystemTime> {
        None
    }

    /// The states stay as they are at the end of the input (nothing to emit).
    fn close_at_eof(&mut self, _emit: &mut impl FnMut(K, W), _touched: Touched<'_, K>) -> bool {
        false
    }

    fn snapshot_keys(&self, keys: Vec<K>, each: &mut impl FnMut(K, Option<S>)) {
        for key in keys {
            let state = self.states.get(&key).cloned();
            each(key, state);
        }
    }
}

impl<T: Data> Stream<T> {
    /// Maps every value with per-key state: `mapper(state, value) -> (state, output)`.
    /// The state starts as `None`; returning `None` discards it.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![("a".to_string(), 1), ("a".to_string(), 2)]))
    ///     .stateful_map("running_sum", |sum: Option<i32>, v: i32| {
    ///         let sum = sum.unwrap_or(0) + v;
    ///         (Some(sum), sum)
    ///     })
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![("a".to_string(), 1), ("a".to_string(), 3)]);
    /// ```
    pub fn stateful_map<K, V, S, W, F>(&self, step: &str, mapper: F) -> Stream<(K, W)>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        S: State,
        W: Data,
        F: Fn(Option<S>, V) -> (Option<S>, W) + Send + Sync + 'static,
    {
        let mapper = Arc::new(move |s: Option<S>, v: T::V| {
            let (s, w) = mapper(s, v);
            (s, std::iter::once(w))
        });
        self.map_states(step, "stateful_map", mapper)
    }

    /// Like [`stateful_map`](Self::stateful_map) with any number of outputs per value.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// // Emits each value once per value seen so far for the key.
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![('k', 'x'), ('k', 'y')]))
    ///     .stateful_flat_map("echo", |n: Option<usize>, v: char| {
    ///         let n = n.unwrap_or(0) + 1;
    ///         (Some(n), vec![v; n])
    ///     })
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![('k', 'x'), ('k', 'y'), ('k', 'y')]);
    /// ```
    pub fn stateful_flat_map<K, V, S, W, I, F>(&self, step: &str, mapper: F) -> Stream<(K, W)>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        S: State,
        W: Data,
        I: IntoIterator<Item = W> + 'static,
        F: Fn(Option<S>, V) -> (Option<S>, I) + Send + Sync + 'static,
    {
        self.map_states(step, "stateful_flat_map", Arc::new(mapper))
    }

    /// The keyed step of `stateful_map` and `stateful_flat_map` over `mapper`.
    fn map_states<K, V, S, W, I, F>(
        &self,
        step: &str,
        operator: &'static str,
        mapper: Arc<F>,
    ) -> Stream<(K, W)>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        S: State,
        W: Data,
        I: IntoIterator<Item = W> + 'static,
        F: Fn(Option<S>, V) -> (Option<S>, I) + Send + Sync + 'static,
    {
        self.unary_step(step, operator, move |ctx, info, s| {
            let store = MapStates::<K, S, F, V, I>::new(mapper.clone());
            keyed_operator::<T, W, _>(ctx, info, s, store)
        })
    }
}
