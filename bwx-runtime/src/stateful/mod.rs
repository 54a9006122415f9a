//! Keyed stateful operators.
//!
//! All of them stand on [`Stream::stateful_batch`]: items are routed to the worker that owns
//! their key (by the stable [`crate::route_hash`]), and each key has its own logic value
//! (see [`StatefulBatchLogic`] and [`StatefulLogic`]). With recovery on, the state of every
//! key touched in an epoch is snapshotted when the epoch closes.

mod aggregate;
mod collect;
mod enrich;
pub mod join;
pub(crate) mod logic;
mod map;

pub use enrich::TtlCache;
pub use join::{JoinEmit, JoinEmitMode, JoinInsertMode, JoinSides};
pub use logic::{StateAction, StatefulBatchLogic, StatefulLogic};

use std::sync::Arc;

use crate::engine::stateful as engine;
use crate::flow::Stream;
use crate::operators::KeyedItem;
use crate::{Data, ExchangeData, Key};

use logic::PerItem;

impl<T: Data> Stream<T> {
    /// The most general keyed stateful operator: `builder(resume_state)` makes each key's
    /// [`StatefulBatchLogic`], which sees the key's values in batches.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// /// Emits the running count of items per key.
    /// struct Count(u64);
    /// impl StatefulBatchLogic<char, u64> for Count {
    ///     type State = u64;
    ///     fn on_batch(&mut self, values: std::vec::Drain<'_, char>, out: &mut Vec<u64>) -> StateAction {
    ///         self.0 += values.count() as u64;
    ///         out.push(self.0);
    ///         StateAction::Retain
    ///     }
    ///     fn snapshot(&self) -> u64 { self.0 }
    /// }
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![('a', 'x'), ('a', 'y')]).batch_size(2))
    ///     .stateful_batch("count", |resume: Option<u64>| Count(resume.unwrap_or(0)))
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![('a', 2)]);
    /// ```
    pub fn stateful_batch<K, V, W, L, B>(&self, step: &str, builder: B) -> Stream<(K, W)>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        W: Data,
        L: StatefulBatchLogic<V, W>,
        B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
    {
        let builder = Arc::new(builder);
        self.unary_step(step, "stateful_batch", move |ctx, info, s| {
            engine::stateful_batch::<T, W, L, B>(ctx, info, s, builder.clone())
        })
    }

    /// Keyed state with per-item logic ([`StatefulLogic`]); after an item discards the
    /// state, the key's next item gets fresh logic from `builder(None)`.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// /// Emits the sum of every two values of a key.
    /// struct Pairs(Option<i64>);
    /// impl StatefulLogic<i64, i64> for Pairs {
    ///     type State = Option<i64>;
    ///     fn on_item(&mut self, v: i64, out: &mut Vec<i64>) -> StateAction {
    ///         match self.0.take() {
    ///             None => { self.0 = Some(v); StateAction::Retain }
    ///             Some(first) => { out.push(first + v); StateAction::Discard }
    ///         }
    ///     }
    ///     fn snapshot(&self) -> Option<i64> { self.0 }
    /// }
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![(1u8, 1), (1, 2), (1, 3), (1, 4)]))
    ///     .stateful("pairs", |resume: Option<Option<i64>>| Pairs(resume.flatten()))
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![(1, 3), (1, 7)]);
    /// ```
    pub fn stateful<K, V, W, L, B>(&self, step: &str, builder: B) -> Stream<(K, W)>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        W: Data,
        L: StatefulLogic<V, W>,
        B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
    {
        self.stateful_with(step, "stateful", builder)
    }

    /// [`stateful`](Self::stateful) under another operator name, for operators built on it.
    pub(crate) fn stateful_with<W, L, B>(
        &self,
        step: &str,
        operator: &'static str,
        builder: B,
    ) -> Stream<(T::K, W)>
    where
        T: KeyedItem + ExchangeData,
        W: Data,
        L: StatefulLogic<T::V, W>,
        B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
    {
        let builder = Arc::new(builder);
        self.unary_step(step, operator, move |ctx, info, s| {
            let per_key = builder.clone();
            let batch_builder =
                Arc::new(move |resume: Option<L::State>| PerItem::new(per_key(resume), per_key.clone()));
            engine::stateful_batch::<T, W, PerItem<L, B>, _>(ctx, info, s, batch_builder)
        })
    }
}
