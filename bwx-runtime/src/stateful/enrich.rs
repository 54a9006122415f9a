//! `enrich_cached`: side lookups through a per-worker TTL cache.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Data;
use crate::engine::stateless::with_local_state;
use crate::flow::Stream;
use crate::monitor::meter::Timing;

/// A cache of looked-up values that expire after a time to live. One per worker.
pub struct TtlCache<K, V> {
    getter: Arc<dyn Fn(&K) -> V + Send + Sync>,
    ttl: Duration,
    entries: HashMap<K, (V, Instant)>,
}

impl<K: Eq + Hash + Clone, V> TtlCache<K, V> {
    /// A cache that calls `getter` on a miss and keeps values for `ttl`.
    pub fn new(getter: Arc<dyn Fn(&K) -> V + Send + Sync>, ttl: Duration) -> Self {
        TtlCache {
            getter,
            ttl,
            entries: HashMap::new(),
        }
    }

    /// The cached value for `key`, looked up again if missing or older than the TTL.
    pub fn get(&mut self, key: &K) -> &V {
        let now = Instant::now();
        let stale = self
            .entries
            .get(key)
            .is_none_or(|(_, at)| now.duration_since(*at) >= self.ttl);
        if stale {
            let value = (self.getter)(key);
            self.entries.insert(key.clone(), (value, now));
        }
        &self.entries[key].0
    }

    /// Forgets a key, so the next `get` looks it up.
    pub fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }
}

impl<T: Data> Stream<T> {
    /// Maps items with access to a per-worker [`TtlCache`]: `getter` fetches a value on a
    /// miss or after `ttl`, `mapper(cache, item)` makes the output. Keeps no recovery state.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bwx_runtime::prelude::*;
    /// use bwx_runtime::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![("eur", 10.0), ("usd", 10.0)]))
    ///     .enrich_cached(
    ///         "rate",
    ///         |cur: &String| if cur == "eur" { 1.1 } else { 1.0 },
    ///         |cache, (cur, amount): (&str, f64)| amount * *cache.get(&cur.to_string()),
    ///         Duration::from_secs(60),
    ///     )
    ///     .output("out", out.clone());
    /// bwx_runtime::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![11.0, 10.0]);
    /// ```
    pub fn enrich_cached<DK, DV, U, G, F>(&self, step: &str, getter: G, mapper: F, ttl: Duration) -> Stream<U>
    where
        DK: Eq + Hash + Clone + 'static,
        DV: 'static,
        U: Data,
        G: Fn(&DK) -> DV + Send + Sync + 'static,
        F: Fn(&mut TtlCache<DK, DV>, T) -> U + Send + Sync + 'static,
    {
        let getter: Arc<dyn Fn(&DK) -> DV + Send + Sync> = Arc::new(getter);
        let mapper = Arc::new(mapper);
        self.unary_step(step, "enrich_cached", move |ctx, info, s| {
            let getter = getter.clone();
            let mapper = mapper.clone();
            let plan = ctx.meter_plan(info);
            let meter = plan
                .meter()
                .counting_in(&plan)
                .counting_out(&plan)
                .timing(&plan, Timing::FlatMapBatch);
            Ok(with_local_state(
                s,
                info.id.as_str(),
                ctx.step_index,
                meter,
                &move || TtlCache::new(getter.clone(), ttl),
                Arc::new(
                    move |cache: &mut TtlCache<DK, DV>, inp: &mut Vec<T>, out: &mut Vec<U>| {
                        out.extend(inp.drain(..).map(|item| mapper(cache, item)))
                    },
                ),
            ))
        })
    }
}
