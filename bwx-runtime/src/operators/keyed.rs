//! Keying a stream and the operators on the values of a keyed stream.

use crate::flow::Stream;
use crate::{Data, Key};

/// An item of a keyed stream: a `(key, value)` pair whose key is a [`Key`].
#[diagnostic::on_unimplemented(
    message = "this operator needs a keyed stream `Stream<(K, V)>`, but the items are `{Self}`",
    label = "not a `(key, value)` pair",
    note = "key the stream first with `.key_on(\"step\", |item| key)`"
)]
pub trait KeyedItem: Data {
    /// The key.
    type K: Key;
    /// The value.
    type V: Data;
    /// Splits the item.
    fn into_parts(self) -> (Self::K, Self::V);
    /// The key.
    fn key(&self) -> &Self::K;
    /// The value.
    fn value(&self) -> &Self::V;
}

impl<K: Key, V: Data> KeyedItem for (K, V) {
    type K = K;
    type V = V;
    #[inline]
    fn into_parts(self) -> (K, V) {
        self
    }
    #[inline]
    fn key(&self) -> &K {
        &self.0
    }
    #[inline]
    fn value(&self) -> &V {
        &self.1
    }
}

impl<T: Data> Stream<T> {
    /// Keys every item: the result is a keyed stream `(key, item)`.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec!["apple", "bean"]))
    ///     .key_on("first", |s: &&str| s[..1].to_string())
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![("a".to_string(), "apple"), ("b".to_string(), "bean")]);
    /// ```
    pub fn key_on<K, F>(&self, step: &str, f: F) -> Stream<(K, T)>
    where
        K: Key,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        self.map_batch_step(step, "key_on", move |inp, out| {
            out.extend(inp.drain(..).map(|item| (f(&item), item)))
        })
    }

    /// Drops the key of a keyed stream.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![("k".to_string(), 1)]))
    ///     .key_rm("unkey")
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![1]);
    /// ```
    pub fn key_rm<K, V>(&self, step: &str) -> Stream<V>
    where
        T: KeyedItem<K = K, V = V>,
        K: Key,
        V: Data,
    {
        self.map_batch_step(step, "key_rm", |inp, out| {
            out.extend(inp.drain(..).map(|kv| kv.into_parts().1))
        })
    }

    /// Transforms the value of every `(key, value)`.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![("k".to_string(), 2)]))
    ///     .map_value("square", |v: i32| v * v)
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![("k".to_string(), 4)]);
    /// ```
    pub fn map_value<K, V, W, F>(&self, step: &str, f: F) -> Stream<(K, W)>
    where
        T: KeyedItem<K = K, V = V>,
        K: Key,
        V: Data,
        W: Data,
        F: Fn(V) -> W + Send + Sync + 'static,
    {
        self.map_batch_step(step, "map_value", move |inp, out| {
            out.extend(inp.drain(..).map(|kv| {
                let (k, v) = kv.into_parts();
                (k, f(v))
            }))
        })
    }

    /// Keeps the `(key, value)` items whose value passes `f`.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![("a".to_string(), 1), ("b".to_string(), -1)]))
    ///     .filter_value("positive", |v: &i32| *v > 0)
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![("a".to_string(), 1)]);
    /// ```
    pub fn filter_value<K, V, F>(&self, step: &str, f: F) -> Stream<T>
    where
        T: KeyedItem<K = K, V = V>,
        K: Key,
        V: Data,
        F: Fn(&V) -> bool + Send + Sync + 'static,
    {
        self.map_batch_step(step, "filter_value", move |inp, out| {
            out.extend(inp.drain(..).filter(|kv| f(kv.value())))
        })
    }

    /// Transforms the value of every `(key, value)` and keeps the `Some`s.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![("a".to_string(), "1"), ("b".to_string(), "x")]))
    ///     .filter_map_value("parse", |v: &str| v.parse::<u8>().ok())
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![("a".to_string(), 1)]);
    /// ```
    pub fn filter_map_value<K, V, W, F>(&self, step: &str, f: F) -> Stream<(K, W)>
    where
        T: KeyedItem<K = K, V = V>,
        K: Key,
        V: Data,
        W: Data,
        F: Fn(V) -> Option<W> + Send + Sync + 'static,
    {
        self.map_batch_step(step, "filter_map_value", move |inp, out| {
            out.extend(inp.drain(..).filter_map(|kv| {
                let (k, v) = kv.into_parts();
                f(v).map(|w| (k, w))
            }))
        })
    }

    /// Transforms the value of every `(key, value)` into any number of values.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![("a".to_string(), 2)]))
    ///     .flat_map_value("repeat", |n: usize| vec![n; n])
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![("a".to_string(), 2), ("a".to_string(), 2)]);
    /// ```
    pub fn flat_map_value<K, V, W, I, F>(&self, step: &str, f: F) -> Stream<(K, W)>
    where
        T: KeyedItem<K = K, V = V>,
        K: Key,
        V: Data,
        W: Data,
        I: IntoIterator<Item = W>,
        F: Fn(V) -> I + Send + Sync + 'static,
    {
        self.map_batch_step(step, "flat_map_value", move |inp, out| {
            for kv in inp.drain(..) {
                let (k, v) = kv.into_parts();
                out.extend(f(v).into_iter().map(|w| (k.clone(), w)));
            }
        })
    }
}
