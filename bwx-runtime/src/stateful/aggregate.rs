//! Final aggregations: emitted per key when the input ends.
//!
//! The associative ones (`reduce_final`, `count_final`, `max_final`, `min_final`,
//! `fold_final_with_merge`) combine values per key within each batch before the exchange,
//! so the exchange carries at most one item per key and batch.

use std::sync::Arc;

use crate::engine::stateful::{pre_aggregate, stateful_batch};
use crate::engine::stateless::with_local_state;
use crate::flow::Stream;
use crate::inputs::State;
use crate::operators::KeyedItem;
use crate::{Data, ExchangeData, Key};

use super::{StateAction, StatefulBatchLogic};

/// Reduces a key's values and emits the result at EOF.
struct ReduceLogic<V, F> {
    acc: Option<V>,
    reducer: Arc<F>,
}

impl<V: State, F: Fn(V, V) -> V + 'static> StatefulBatchLogic<V, V> for ReduceLogic<V, F> {
    type State = Option<V>;

    #[inline]
    fn on_batch(&mut self, values: std::vec::Drain<'_, V>, _out: &mut Vec<V>) -> StateAction {
        for v in values {
            self.acc = Some(match self.acc.take() {
                Some(acc) => (self.reducer)(acc, v),
                None => v,
            });
        }
        StateAction::Retain
    }

    fn on_eof(&mut self, out: &mut Vec<V>) -> StateAction {
        out.extend(self.acc.take());
        StateAction::Discard
    }

    fn snapshot(&self) -> Option<V> {
        self.acc.clone()
    }
}

/// Folds a key's values and emits the result at EOF.
struct FoldLogic<S, V, F> {
    acc: Option<S>,
    folder: Arc<F>,
    _value: std::marker::PhantomData<fn(V)>,
}

impl<S: State, V: 'static, F: Fn(S, V) -> S + 'static> StatefulBatchLogic<V, S> for FoldLogic<S, V, F> {
    type State = Option<S>;

    #[inline]
    fn on_batch(&mut self, values: std::vec::Drain<'_, V>, _out: &mut Vec<S>) -> StateAction {
        if let Some(mut acc) = self.acc.take() {
            for v in values {
                acc = (self.folder)(acc, v);
            }
            self.acc = Some(acc);
        }
        StateAction::Retain
    }

    fn on_eof(&mut self, out: &mut Vec<S>) -> StateAction {
        out.extend(self.acc.take());
        StateAction::Discard
    }

    fn snapshot(&self) -> Option<S> {
        self.acc.clone()
    }
}

impl<T: Data> Stream<T> {
    /// Reduces each key's values with `reducer` and emits one result per key at EOF.
    /// Values are combined within each batch before they cross workers.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![("a".to_string(), 1), ("a".to_string(), 5)]))
    ///     .reduce_final("sum", |a, b| a + b)
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![("a".to_string(), 6)]);
    /// ```
    pub fn reduce_final<K, V, F>(&self, step: &str, reducer: F) -> Stream<(K, V)>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        V: ExchangeData,
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        self.reduce_final_named(step, "reduce_final", reducer)
    }

    pub(crate) fn reduce_final_named<F>(
        &self,
        step: &str,
        operator: &'static str,
        reducer: F,
    ) -> Stream<(T::K, T::V)>
    where
        T: KeyedItem + ExchangeData,
        T::V: ExchangeData,
        F: Fn(T::V, T::V) -> T::V + Send + Sync + 'static,
    {
        let reducer = Arc::new(reducer);
        self.unary_step(step, operator, move |ctx, info, s| {
            let plan = ctx.meter_plan(info);
            let pairs = crate::engine::stateless::flat_map_batch(
                s,
                info.id.as_str(),
                ctx.step_index,
                plan.meter().counting_in(&plan),
                Arc::new(|inp: &mut Vec<T>, out: &mut Vec<(T::K, T::V)>| {
                    out.extend(inp.drain(..).map(KeyedItem::into_parts))
                }),
            );
            let combined = pre_aggregate(pairs, info.id.as_str(), ctx.step_index, reducer.clone());
            let r = reducer.clone();
            stateful_batch(
                ctx,
                info,
                combined,
                Arc::new(move |acc: Option<Option<T::V>>| ReduceLogic {
                    acc: acc.flatten(),
                    reducer: r.clone(),
                }),
            )
        })
    }

    /// Counts items per key (`key` picks the key) and emits `(key, count)` at EOF.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec!["a", "b", "a"]))
    ///     .count_final("count", |w: &&str| w.to_string())
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
    /// ```
    pub fn count_final<K, F>(&self, step: &str, key: F) -> Stream<(K, u64)>
    where
        K: Key,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let key = Arc::new(key);
        self.unary_step(step, "count_final", move |ctx, info, s| {
            let key = key.clone();
            let plan = ctx.meter_plan(info);
            let counted = with_local_state(
                s,
                info.id.as_str(),
                ctx.step_index,
                plan.meter().counting_in(&plan),
                &rustc_hash::FxHashMap::<K, u64>::default,
                Arc::new(
                    move |counts: &mut rustc_hash::FxHashMap<K, u64>,
                          inp: &mut Vec<T>,
                          out: &mut Vec<(K, u64)>| {
                        for item in inp.drain(..) {
                            *counts.entry(key(&item)).or_insert(0) += 1;
                        }
                        out.extend(counts.drain());
                    },
                ),
            );
            let add = Arc::new(|a: u64, b: u64| a + b);
            stateful_batch(
                ctx,
                info,
                counted,
                Arc::new(move |acc: Option<Option<u64>>| ReduceLogic {
                    acc: acc.flatten(),
                    reducer: add.clone(),
                }),
            )
        })
    }

    /// Emits each key's largest value by `by` at EOF (the first one on ties).
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![(1u32, 2.5), (1, 9.0), (1, -1.0)]))
    ///     .max_final("max", |v: &f64| *v)
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![(1, 9.0)]);
    /// ```
    pub fn max_final<K, V, O, F>(&self, step: &str, by: F) -> Stream<(K, V)>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        V: ExchangeData,
        O: PartialOrd,
        F: Fn(&V) -> O + Send + Sync + 'static,
    {
        self.reduce_final_named(step, "max_final", move |a, b| if by(&b) > by(&a) { b } else { a })
    }

    /// Emits each key's smallest value by `by` at EOF (the first one on ties).
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![(1u32, 2), (1, -4), (1, 7)]))
    ///     .min_final("min", |v: &i32| *v)
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![(1, -4)]);
    /// ```
    pub fn min_final<K, V, O, F>(&self, step: &str, by: F) -> Stream<(K, V)>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        V: ExchangeData,
        O: PartialOrd,
        F: Fn(&V) -> O + Send + Sync + 'static,
    {
        self.reduce_final_named(step, "min_final", move |a, b| if by(&b) < by(&a) { b } else { a })
    }

    /// Folds each key's values into an accumulator that starts as `builder()`, and emits it
    /// at EOF.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![('k', "a".to_string()), ('k', "b".to_string())]))
    ///     .fold_final("concat", String::new, |mut acc: String, v: String| { acc.push_str(&v); acc })
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![('k', "ab".to_string())]);
    /// ```
    pub fn fold_final<K, V, S, B, F>(&self, step: &str, builder: B, folder: F) -> Stream<(K, S)>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        S: State,
        B: Fn() -> S + Send + Sync + 'static,
        F: Fn(S, V) -> S + Send + Sync + 'static,
    {
        let folder = Arc::new(folder);
        let builder = Arc::new(builder);
        self.unary_step(step, "fold_final", move |ctx, info, s| {
            let (folder, builder) = (folder.clone(), builder.clone());
            stateful_batch(
                ctx,
                info,
                s,
                Arc::new(move |acc: Option<Option<S>>| FoldLogic {
                    acc: Some(acc.flatten().unwrap_or_else(|| builder())),
                    folder: folder.clone(),
                    _value: std::marker::PhantomData,
                }),
            )
        })
    }

    /// [`fold_final`](Self::fold_final) for folds that can be merged: each worker folds
    /// the values of a batch locally, and `merger` combines the partial results after the
    /// exchange.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// // Mean per key: fold to (count, sum), merge partial folds by adding them.
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![('k', 1.0), ('k', 2.0), ('k', 6.0)]))
    ///     .fold_final_with_merge(
    ///         "sum_count",
    ///         || (0u64, 0.0f64),
    ///         |(n, s), v: f64| (n + 1, s + v),
    ///         |(n1, s1), (n2, s2)| (n1 + n2, s1 + s2),
    ///     )
    ///     .map_value("mean", |(n, s)| s / n as f64)
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![('k', 3.0)]);
    /// ```
    pub fn fold_final_with_merge<K, V, S, B, F, M>(
        &self,
        step: &str,
        builder: B,
        folder: F,
        merger: M,
    ) -> Stream<(K, S)>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        S: State + ExchangeData,
        B: Fn() -> S + Send + Sync + 'static,
        F: Fn(S, V) -> S + Send + Sync + 'static,
        M: Fn(S, S) -> S + Send + Sync + 'static,
    {
        let folder = Arc::new(folder);
        let builder = Arc::new(builder);
        let merger = Arc::new(merger);
        self.unary_step(step, "fold_final_with_merge", move |ctx, info, s| {
            let (folder, builder) = (folder.clone(), builder.clone());
            let plan = ctx.meter_plan(info);
            let partial = with_local_state(
                s,
                info.id.as_str(),
                ctx.step_index,
                plan.meter().counting_in(&plan),
                &rustc_hash::FxHashMap::<T::K, Option<S>>::default,
                Arc::new(
                    move |accs: &mut rustc_hash::FxHashMap<T::K, Option<S>>,
                          inp: &mut Vec<T>,
                          out: &mut Vec<(T::K, S)>| {
                        for item in inp.drain(..) {
                            let (k, v) = item.into_parts();
                            let slot = accs.entry(k).or_insert(None);
                            let acc = slot.take().unwrap_or_else(|| builder());
                            *slot = Some(folder(acc, v));
                        }
                        out.extend(accs.drain().filter_map(|(k, s)| Some((k, s?))));
                    },
                ),
            );
            let merger = merger.clone();
            stateful_batch(
                ctx,
                info,
                partial,
                Arc::new(move |acc: Option<Option<S>>| ReduceLogic {
                    acc: acc.flatten(),
                    reducer: merger.clone(),
                }),
            )
        })
    }
}
