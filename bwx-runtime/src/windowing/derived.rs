//! Windowing operators built on [`Stream::window`]: fold, reduce, count, collect, max, min.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::flow::Stream;
use crate::inputs::State;
use crate::operators::KeyedItem;
use crate::{Data, ExchangeData, Key};

use super::WindowOut;
use super::clock::Clock;
use super::logic::{Emit, Shared, WindowLogic};
use super::windower::Windower;

/// The functions of a `fold_window`, shared by all windows of a step.
struct FoldFns<I, F, M> {
    init: I,
    folder: F,
    merger: M,
}

/// One window of a `fold_window`: the accumulator (only `None` while being folded).
struct FoldLogic<S, I, F, M> {
    acc: Option<S>,
    fns: Arc<FoldFns<I, F, M>>,
}

impl<V, S, I, F, M> WindowLogic<V, S> for FoldLogic<S, I, F, M>
where
    S: State,
    I: Fn() -> S + 'static,
    F: Fn(S, V) -> S + 'static,
    M: Fn(S, S) -> S + 'static,
{
    type State = S;

    #[inline]
    fn on_value(&mut self, value: V, _out: &mut Emit<'_, V, S>) {
        let acc = self.acc.take().unwrap_or_else(&self.fns.init);
        self.acc = Some((self.fns.folder)(acc, value));
    }

    fn on_merge(&mut self, other: Self, _out: &mut Emit<'_, V, S>) {
        self.acc = match (self.acc.take(), other.acc) {
            (Some(a), Some(b)) => Some((self.fns.merger)(a, b)),
            (a, b) => a.or(b),
        };
    }

    fn on_close(self, out: &mut Emit<'_, V, S>) {
        out.emit(self.acc.unwrap_or_else(&self.fns.init));
    }

    fn snapshot(&self) -> S {
        self.acc.clone().unwrap_or_else(&self.fns.init)
    }
}

/// One window of a `reduce_window`, `max_window` or `min_window`: the value so far.
struct ReduceLogic<V, F> {
    acc: Option<V>,
    reducer: Arc<F>,
}

impl<V, F> WindowLogic<V, V> for ReduceLogic<V, F>
where
    V: State,
    F: Fn(V, V) -> V + 'static,
{
    type State = Option<V>;

    #[inline]
    fn on_value(&mut self, value: V, _out: &mut Emit<'_, V, V>) {
        self.acc = Some(match self.acc.take() {
            Some(acc) => (self.reducer)(acc, value),
            None => value,
        });
    }

    fn on_merge(&mut self, other: Self, out: &mut Emit<'_, V, V>) {
        if let Some(v) = other.acc {
            self.on_value(v, out);
        }
    }

    fn on_close(self, out: &mut Emit<'_, V, V>) {
        if let Some(v) = self.acc {
            out.emit(v);
        }
    }

    fn snapshot(&self) -> Option<V> {
        self.acc.clone()
    }
}

/// One window of a `collect_window`: its values.
struct CollectLogic<V>(Vec<V>);

impl<V: State> WindowLogic<V, Vec<V>> for CollectLogic<V> {
    type State = Vec<V>;

    #[inline]
    fn on_value(&mut self, value: V, _out: &mut Emit<'_, V, Vec<V>>) {
        self.0.push(value);
    }

    fn on_merge(&mut self, other: Self, _out: &mut Emit<'_, V, Vec<V>>) {
        self.0.extend(other.0);
    }

    fn on_close(self, out: &mut Emit<'_, V, Vec<V>>) {
        out.emit(self.0);
    }

    fn snapshot(&self) -> Vec<V> {
        self.0.clone()
    }
}

/// One window of a `count_window`.
struct CountLogic<X>(u64, PhantomData<fn(X)>);

impl<X: 'static> WindowLogic<X, u64> for CountLogic<X> {
    type State = u64;

    #[inline]
    fn on_value(&mut self, _value: X, _out: &mut Emit<'_, X, u64>) {
        self.0 += 1;
    }

    fn on_merge(&mut self, other: Self, _out: &mut Emit<'_, X, u64>) {
        self.0 += other.0;
    }

    fn on_close(self, out: &mut Emit<'_, X, u64>) {
        out.emit(self.0);
    }

    fn snapshot(&self) -> u64 {
        self.0
    }
}

impl<T: Data> Stream<T> {
    /// Folds each window's values into an accumulator: `init()` starts it, `folder(acc,
    /// value)` adds a value, `merger(acc, acc)` joins the accumulators of merged sessions.
    /// The accumulator is emitted when the window closes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    /// use bwx::windowing::{EventClock, TumblingWindower};
    ///
    /// // (sensor, (ts ms, reading)) -> (count, sum) per sensor and 10 ms window.
    /// let items = vec![("a", (1i64, 2.0)), ("a", (5, 4.0)), ("a", (11, 1.0))];
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(items))
    ///     .map("own", |(k, v): (&str, (i64, f64))| (k.to_string(), v))
    ///     .fold_window(
    ///         "stats",
    ///         EventClock::replay(|(ts, _): &(i64, f64)| *ts, Duration::ZERO),
    ///         TumblingWindower::new(Duration::from_millis(10), 0).unwrap(),
    ///         || (0u64, 0.0),
    ///         |(n, s), (_, x)| (n + 1, s + x),
    ///         |(n1, s1), (n2, s2)| (n1 + n2, s1 + s2),
    ///         false,
    ///     )
    ///     .down
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// let a = "a".to_string();
    /// assert_eq!(out.take(), vec![(a.clone(), (0, (2, 6.0))), (a, (1, (1, 1.0)))]);
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn fold_window<K, V, S, C, D, I, F, M>(
        &self,
        step: &str,
        clock: C,
        windower: D,
        init: I,
        folder: F,
        merger: M,
        ordered: bool,
    ) -> WindowOut<K, V, S>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        V: State,
        S: State,
        C: Clock<V>,
        D: Windower,
        I: Fn() -> S + Send + Sync + 'static,
        F: Fn(S, V) -> S + Send + Sync + 'static,
        M: Fn(S, S) -> S + Send + Sync + 'static,
    {
        let fns = Arc::new(FoldFns { init, folder, merger });
        self.window_with(
            step,
            "fold_window",
            clock,
            windower,
            move |resume: Option<S>| FoldLogic {
                acc: resume,
                fns: fns.clone(),
            },
            ordered,
        )
    }

    /// Reduces each window's values with `reducer` and emits the result when the window
    /// closes. Values are applied in arrival order, so `reducer` should be associative and
    /// commutative (as for [`reduce_final`](Self::reduce_final)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    /// use bwx::windowing::{EventClock, TumblingWindower};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![(7u32, 1i64), (7, 2), (7, 15)]))
    ///     .reduce_window(
    ///         "sum",
    ///         EventClock::replay(|ts: &i64| *ts, Duration::ZERO),
    ///         TumblingWindower::new(Duration::from_millis(10), 0).unwrap(),
    ///         |a, b| a + b,
    ///     )
    ///     .down
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![(7, (0, 3)), (7, (1, 15))]);
    /// ```
    pub fn reduce_window<K, V, C, D, F>(
        &self,
        step: &str,
        clock: C,
        windower: D,
        reducer: F,
    ) -> WindowOut<K, V, V>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        V: State,
        C: Clock<V>,
        D: Windower,
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        let reducer = Arc::new(reducer);
        self.window_with(
            step,
            "reduce_window",
            clock,
            windower,
            move |resume: Option<Option<T::V>>| ReduceLogic {
                acc: resume.flatten(),
                reducer: reducer.clone(),
            },
            false,
        )
    }

    /// The value with the largest `by(value)` in each window. Values are applied in arrival
    /// order, not in timestamp order (unordered, as Bytewax's), so of equal ones the first to
    /// arrive wins.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    /// use bwx::windowing::{EventClock, TumblingWindower};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// // (ts, price)
    /// flow.input("inp", TestingSource::new(vec![('k', (1i64, 5u32)), ('k', (2, 9)), ('k', (3, 7))]))
    ///     .max_window(
    ///         "top",
    ///         EventClock::replay(|(ts, _): &(i64, u32)| *ts, Duration::ZERO),
    ///         TumblingWindower::new(Duration::from_millis(10), 0).unwrap(),
    ///         |(_, price): &(i64, u32)| *price,
    ///     )
    ///     .down
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![('k', (0, (2, 9)))]);
    /// ```
    pub fn max_window<K, V, O, C, D, F>(&self, step: &str, clock: C, windower: D, by: F) -> WindowOut<K, V, V>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        V: State,
        O: Ord,
        C: Clock<V>,
        D: Windower,
        F: Fn(&V) -> O + Send + Sync + 'static,
    {
        self.reduce_window_with(step, "max_window", clock, windower, move |a, b| {
            if by(&b) > by(&a) { b } else { a }
        })
    }

    /// The value with the smallest `by(value)` in each window. Values are applied in arrival
    /// order, not in timestamp order (unordered, as Bytewax's), so of equal ones the first to
    /// arrive wins.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    /// use bwx::windowing::{EventClock, TumblingWindower};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![('k', 4i64), ('k', 2), ('k', 8)]))
    ///     .min_window(
    ///         "low",
    ///         EventClock::replay(|ts: &i64| *ts, Duration::from_millis(100)),
    ///         TumblingWindower::new(Duration::from_millis(10), 0).unwrap(),
    ///         |v: &i64| *v,
    ///     )
    ///     .down
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![('k', (0, 2))]);
    /// ```
    pub fn min_window<K, V, O, C, D, F>(&self, step: &str, clock: C, windower: D, by: F) -> WindowOut<K, V, V>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        V: State,
        O: Ord,
        C: Clock<V>,
        D: Windower,
        F: Fn(&V) -> O + Send + Sync + 'static,
    {
        self.reduce_window_with(step, "min_window", clock, windower, move |a, b| {
            if by(&b) < by(&a) { b } else { a }
        })
    }

    fn reduce_window_with<C, D, F>(
        &self,
        step: &str,
        operator: &'static str,
        clock: C,
        windower: D,
        reducer: F,
    ) -> WindowOut<T::K, T::V, T::V>
    where
        T: KeyedItem + ExchangeData,
        T::V: State,
        C: Clock<T::V>,
        D: Windower,
        F: Fn(T::V, T::V) -> T::V + Send + Sync + 'static,
    {
        let reducer = Arc::new(reducer);
        // Unordered, as Bytewax's: the first of equal values is the first to arrive.
        self.window_with(
            step,
            operator,
            clock,
            windower,
            move |resume: Option<Option<T::V>>| ReduceLogic {
                acc: resume.flatten(),
                reducer: reducer.clone(),
            },
            false,
        )
    }

    /// Collects each window's values into a `Vec` (in timestamp order when `ordered`,
    /// otherwise in arrival order).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    /// use bwx::windowing::{EventClock, SlidingWindower};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// let win = SlidingWindower::new(Duration::from_millis(10), Duration::from_millis(5), 0).unwrap();
    /// flow.input("inp", TestingSource::new(vec![(0u8, 7i64), (0, 3)]))
    ///     .collect_window("all", EventClock::replay(|ts: &i64| *ts, Duration::from_millis(10)), win, true)
    ///     .down
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// // Windows -1 = [-5, 5) and 0 = [0, 10).
    /// assert_eq!(out.take(), vec![(0, (-1, vec![3])), (0, (0, vec![3, 7])), (0, (1, vec![7]))]);
    /// ```
    pub fn collect_window<K, V, C, D>(
        &self,
        step: &str,
        clock: C,
        windower: D,
        ordered: bool,
    ) -> WindowOut<K, V, Vec<V>>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        V: State,
        C: Clock<V>,
        D: Windower,
    {
        self.window_with(
            step,
            "collect_window",
            clock,
            windower,
            |resume: Option<Vec<T::V>>| CollectLogic(resume.unwrap_or_default()),
            ordered,
        )
    }

    /// Counts the items of each key (given by `key`) per window. Late items are passed on
    /// whole.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    /// use bwx::windowing::{EventClock, TumblingWindower};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// // (word, ts)
    /// let words = vec![("a".to_string(), 1i64), ("b".to_string(), 2), ("a".to_string(), 3)];
    /// flow.input("inp", TestingSource::new(words))
    ///     .count_window(
    ///         "count",
    ///         EventClock::replay(|(_, ts): &(String, i64)| *ts, Duration::ZERO),
    ///         TumblingWindower::new(Duration::from_millis(10), 0).unwrap(),
    ///         |(w, _): &(String, i64)| w.clone(),
    ///     )
    ///     .down
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![("a".to_string(), (0, 2)), ("b".to_string(), (0, 1))]);
    /// ```
    pub fn count_window<K, C, D, F>(&self, step: &str, clock: C, windower: D, key: F) -> WindowOut<K, T, u64>
    where
        T: ExchangeData + State,
        K: Key,
        C: Clock<T>,
        D: Windower,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        self.window_step::<(K, T), u64, C, D, CountLogic<T>, _, _>(
            step,
            "count_window",
            move |inp: &mut Vec<T>, out: &mut Vec<(K, T)>| out.extend(inp.drain(..).map(|x| (key(&x), x))),
            Shared {
                clock,
                windower,
                builder: |resume: Option<u64>| CountLogic(resume.unwrap_or(0), PhantomData),
                ordered: false,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::Dataflow;
    use crate::testing::{TestingSink, TestingSource};
    use crate::windowing::{EventClock, TumblingWindower};

    /// `(ts, arrival number, price)`.
    type Value = (i64, u8, u32);
    type Item = (char, Value);

    /// Runs `max_window` (or `min_window`) by the price over one 10 ms window.
    fn extreme(max: bool, items: Vec<Item>) -> Vec<(char, (i64, Value))> {
        let flow = Dataflow::new("f");
        let out = TestingSink::new();
        let input = flow.input("inp", TestingSource::new(items));
        let clock = EventClock::replay(|(ts, _, _): &Value| *ts, Duration::from_millis(100));
        let windower = TumblingWindower::new(Duration::from_millis(10), 0).unwrap();
        let by = |(_, _, price): &Value| *price;
        let w = if max {
            input.max_window("extreme", clock, windower, by)
        } else {
            input.min_window("extreme", clock, windower, by)
        };
        w.down.output("out", out.clone());
        crate::run_main(&flow).unwrap();
        out.take()
    }

    #[test]
    fn max_and_min_window_keep_the_first_of_equal_values_to_arrive() {
        // Equal prices, the later timestamp first, both within the wait: Bytewax applies
        // them as they come, so the first to arrive wins (ordered, the earlier ts would).
        let items = vec![('k', (5, 1, 9)), ('k', (2, 2, 9))];
        assert_eq!(extreme(true, items.clone()), vec![('k', (0, (5, 1, 9)))]);
        assert_eq!(extreme(false, items), vec![('k', (0, (5, 1, 9)))]);
    }
}
