//! `collect`: per-key lists emitted at a size, a system-time timeout, or EOF.

use std::time::{Duration, SystemTime};

use crate::flow::Stream;
use crate::inputs::State;
use crate::operators::KeyedItem;
use crate::{Data, ExchangeData, Key};

use super::{StateAction, StatefulLogic};

struct CollectLogic<V> {
    items: Vec<V>,
    /// When the list is emitted if it does not fill up first.
    deadline: Option<SystemTime>,
    timeout: Duration,
    max_size: usize,
}

impl<V: State> StatefulLogic<V, Vec<V>> for CollectLogic<V> {
    type State = (Vec<V>, Option<SystemTime>);

    fn on_item(&mut self, value: V, out: &mut Vec<Vec<V>>) -> StateAction {
        if self.deadline.is_none() {
            self.deadline = Some(SystemTime::now() + self.timeout);
        }
        self.items.push(value);
        if self.items.len() >= self.max_size {
            out.push(std::mem::take(&mut self.items));
            StateAction::Discard
        } else {
            StateAction::Retain
        }
    }

    fn on_notify(&mut self, out: &mut Vec<Vec<V>>) -> StateAction {
        out.push(std::mem::take(&mut self.items));
        StateAction::Discard
    }

    fn on_eof(&mut self, out: &mut Vec<Vec<V>>) -> StateAction {
        out.push(std::mem::take(&mut self.items));
        StateAction::Discard
    }

    fn notify_at(&self) -> Option<SystemTime> {
        self.deadline
    }

    fn snapshot(&self) -> Self::State {
        (self.items.clone(), self.deadline)
    }
}

impl<T: Data> Stream<T> {
    /// Collects each key's values into lists. A list is emitted when it reaches
    /// `max_size`, when `timeout` of system time has passed since its first value, or at
    /// EOF, whichever comes first.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![('k', 1), ('k', 2), ('k', 3)]))
    ///     .collect("pairs", Duration::from_secs(60), 2)
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![('k', vec![1, 2]), ('k', vec![3])]);
    /// ```
    pub fn collect<K, V>(&self, step: &str, timeout: Duration, max_size: usize) -> Stream<(K, Vec<V>)>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        V: State,
    {
        let max_size = max_size.max(1);
        self.stateful_with(
            step,
            "collect",
            move |resume: Option<(Vec<T::V>, Option<SystemTime>)>| {
                let (items, deadline) = resume.unwrap_or_default();
                CollectLogic {
                    items,
                    deadline,
                    timeout,
                    max_size,
                }
            },
        )
    }
}
