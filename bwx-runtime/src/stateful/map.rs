//! `stateful_map` and `stateful_flat_map`.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::flow::Stream;
use crate::inputs::State;
use crate::operators::KeyedItem;
use crate::{Data, ExchangeData, Key};

use super::{StateAction, StatefulLogic};

struct FlatMapLogic<S, F, V, I> {
    state: Option<S>,
    mapper: Arc<F>,
    _io: PhantomData<fn(V) -> I>,
}

impl<S, F, V, W, I> StatefulLogic<V, W> for FlatMapLogic<S, F, V, I>
where
    S: State,
    V: 'static,
    I: IntoIterator<Item = W> + 'static,
    F: Fn(Option<S>, V) -> (Option<S>, I) + 'static,
{
    type State = S;

    #[inline]
    fn on_item(&mut self, value: V, out: &mut Vec<W>) -> StateAction {
        let (state, emit) = (self.mapper)(self.state.take(), value);
        out.extend(emit);
        self.state = state;
        if self.state.is_some() {
            StateAction::Retain
        } else {
            StateAction::Discard
        }
    }

    fn snapshot(&self) -> S {
        // Only retained keys are snapshotted, and a retained key has state.
        self.state.clone().expect("a retained key has state")
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
        self.stateful_with(step, "stateful_map", move |state| FlatMapLogic {
            state,
            mapper: mapper.clone(),
            _io: PhantomData,
        })
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
        let mapper = Arc::new(mapper);
        self.stateful_with(step, "stateful_flat_map", move |state| FlatMapLogic {
            state,
            mapper: mapper.clone(),
            _io: PhantomData,
        })
    }
}
