//! `enrich_cached`: side lookups through a per-worker TTL cache.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Data;
use crate::engine::stateless::with_local_state;
use crate::flow::Stream;
use crate::monitor::meter::Timing;

/// A cache of looked-up values that expire after a time to live (Bytewax's `TTLCache`).
/// [`Stream::enrich_cached`] keeps one per worker; use one in your own logic too.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::{Duration, Instant};
/// use bwx::stateful::TtlCache;
///
/// // A clock the test moves: a second per tick since the first reading.
/// static TICKS: AtomicU64 = AtomicU64::new(0);
/// fn now() -> Instant {
///     static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
///     *START.get_or_init(Instant::now) + Duration::from_secs(TICKS.load(Ordering::SeqCst))
/// }
///
/// let lookups = Arc::new(AtomicU64::new(0));
/// let counted = lookups.clone();
/// let getter = Arc::new(move |k: &u32| { counted.fetch_add(1, Ordering::SeqCst); k * 10 });
/// let mut cache = TtlCache::with_now(getter, Duration::from_secs(60), now);
/// assert_eq!(*cache.get(&1), 10);
/// TICKS.store(59, Ordering::SeqCst);
/// assert_eq!(*cache.get(&1), 10); // still fresh: no second lookup
/// assert_eq!(lookups.load(Ordering::SeqCst), 1);
/// TICKS.store(60, Ordering::SeqCst);
/// assert_eq!(*cache.get(&1), 10); // expired: looked up again
/// assert_eq!(lookups.load(Ordering::SeqCst), 2);
/// ```
pub struct TtlCache<K, V> {
    getter: Arc<dyn Fn(&K) -> V + Send + Sync>,
    ttl: Duration,
    now: fn() -> Instant,
    entries: HashMap<K, (V, Instant)>,
}

impl<K: Eq + Hash + Clone, V> TtlCache<K, V> {
    /// A cache that calls `getter` on a miss and keeps values for `ttl`.
    pub fn new(getter: Arc<dyn Fn(&K) -> V + Send + Sync>, ttl: Duration) -> Self {
        Self::with_now(getter, ttl, Instant::now)
    }

    /// A cache that reads the time from `now` (a test's clock) instead of the system's.
    pub fn with_now(getter: Arc<dyn Fn(&K) -> V + Send + Sync>, ttl: Duration, now: fn() -> Instant) -> Self {
        TtlCache {
            getter,
            ttl,
            now,
            entries: HashMap::new(),
        }
    }

    /// The cached value for `key`, looked up again if missing or older than the TTL.
    pub fn get(&mut self, key: &K) -> &V {
        let now = (self.now)();
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
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
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
    /// bwx::run_main(&flow).unwrap();
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
