//! Small functions to pass to operators (Bytewax's `bytewax.operators.helpers`).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};

/// A map whose values [`map_dict_value`] can change in place.
pub trait Dict {
    /// The keys.
    type Key;
    /// The values.
    type Value;
    /// The value at `key`, if any.
    fn value_mut(&mut self, key: &Self::Key) -> Option<&mut Self::Value>;
}

impl<K: Eq + Hash, V, S: BuildHasher> Dict for HashMap<K, V, S> {
    type Key = K;
    type Value = V;
    fn value_mut(&mut self, key: &K) -> Option<&mut V> {
        self.get_mut(key)
    }
}

impl<K: Ord, V> Dict for BTreeMap<K, V> {
    type Key = K;
    type Value = V;
    fn value_mut(&mut self, key: &K) -> Option<&mut V> {
        self.get_mut(key)
    }
}

/// A function for [`map`](crate::Stream::map) that changes one value of each map item
/// (such as a CSV row read as a `HashMap<String, String>`) with `mapper` and passes the
/// map on: Bytewax's `map_dict_value`. A map without `key` passes unchanged, as with
/// `HashMap::entry(key).and_modify(..)`; filter such items out first if they are wrong.
///
/// ```
/// use std::collections::HashMap;
/// use bwx::prelude::*;
/// use bwx::operators::helpers::map_dict_value;
/// use bwx::testing::{TestingSink, TestingSource};
///
/// let row = HashMap::from([("name".to_string(), "ann".to_string()), ("city".to_string(), "oslo".to_string())]);
/// let flow = Dataflow::new("f");
/// let out = TestingSink::new();
/// flow.input("rows", TestingSource::new(vec![row]))
///     .map("upper_name", map_dict_value("name".to_string(), |name: String| name.to_uppercase()))
///     .output("out", out.clone());
/// bwx::run_main(&flow).unwrap();
/// let rows = out.take();
/// assert_eq!((rows[0]["name"].as_str(), rows[0]["city"].as_str()), ("ANN", "oslo"));
/// ```
pub fn map_dict_value<D, F>(key: D::Key, mapper: F) -> impl Fn(D) -> D + Send + Sync + 'static
where
    D: Dict,
    D::Key: Send + Sync + 'static,
    D::Value: Default,
    F: Fn(D::Value) -> D::Value + Send + Sync + 'static,
{
    move |mut dict: D| {
        if let Some(value) = dict.value_mut(&key) {
            *value = mapper(std::mem::take(value));
        }
        dict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_value_changes_and_a_missing_key_passes() {
        let double = map_dict_value("n", |n: i32| n * 2);
        let map = BTreeMap::from([("n", 2), ("m", 5)]);
        assert_eq!(double(map), BTreeMap::from([("n", 4), ("m", 5)]));
        assert_eq!(double(BTreeMap::from([("m", 5)])), BTreeMap::from([("m", 5)]));
    }
}
