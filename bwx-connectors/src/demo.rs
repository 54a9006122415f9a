//! Sources for demos and local experiments (Bytewax's `bytewax.connectors.demo`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bwx_runtime::Data;
use bwx_runtime::inputs::{BatchStatus, ConnectorError};

/// Emits `(metric_name, value)` every `interval` (0.7 s unless told otherwise), `count`
/// times (forever unless told), with values from `next_random` (a random integer from 0 to
/// 9 unless told): Bytewax's `RandomMetricSource`. One partition, named by the metric;
/// resumable: a resumed flow continues the count and the schedule. For several metrics,
/// add one `input` per metric and `merge` them.
///
/// ```
/// use std::time::Duration;
/// use bwx::prelude::*;
/// use bwx::connectors::demo::RandomMetricSource;
/// use bwx::testing::TestingSink;
///
/// let flow = Dataflow::new("metrics");
/// let out = TestingSink::new();
/// let source = RandomMetricSource::new("cpu").interval(Duration::from_millis(1)).count(3);
/// flow.input("cpu", source).output("out", out.clone());
/// bwx::run_main(&flow).unwrap();
/// let got = out.take();
/// assert_eq!(got.len(), 3);
/// assert!(got.iter().all(|(name, v)| name == "cpu" && *v < 10));
/// ```
pub struct RandomMetricSource<F = fn() -> u64> {
    metric_name: String,
    interval: Duration,
    count: u64,
    next_random: Arc<F>,
}

impl RandomMetricSource {
    /// Values of the metric `metric_name`, random integers from 0 to 9, every 0.7 s,
    /// forever.
    pub fn new(metric_name: impl Into<String>) -> Self {
        RandomMetricSource {
            metric_name: metric_name.into(),
            interval: Duration::from_millis(700),
            count: u64::MAX,
            next_random: Arc::new(random_digit),
        }
    }
}

impl<F> RandomMetricSource<F> {
    /// Emits a value every `interval`.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Emits `count` values, then ends.
    pub fn count(mut self, count: u64) -> Self {
        self.count = count;
        self
    }

    /// Makes the values with `next_random` instead.
    pub fn next_random<G>(self, next_random: G) -> RandomMetricSource<G> {
        RandomMetricSource {
            metric_name: self.metric_name,
            interval: self.interval,
            count: self.count,
            next_random: Arc::new(next_random),
        }
    }
}

/// A random integer from 0 to 9 (splitmix64 over a process-wide counter seeded from the
/// clock): demo values, not for anything that needs real randomness.
fn random_digit() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = || {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        (nanos.as_nanos() as u64) | 1
    };
    // The first call seeds the state; a race only picks one of two seeds.
    if STATE.load(Ordering::Relaxed) == 0 {
        let _ = STATE.compare_exchange(0, seed(), Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut z = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % 10
}

/// The partition of a [`RandomMetricSource`]: its state is how many values it has
/// emitted and when the next is due.
#[bwx_macros::source(crate = bwx_runtime)]
pub struct RandomMetricPartition<F> {
    metric_name: String,
    interval: Duration,
    count: u64,
    next_random: Arc<F>,
    /// Values emitted so far.
    #[state]
    emitted: u64,
    /// When the next value is due, in ms since the epoch.
    #[state]
    awake_at_ms: i64,
}

#[bwx_macros::source(crate = bwx_runtime)]
impl<T: Data, F: Fn() -> T + Send + Sync + 'static> RandomMetricPartition<F> {
    fn list_parts(source: &RandomMetricSource<F>) -> Vec<String> {
        vec![source.metric_name.clone()]
    }

    fn open(source: &RandomMetricSource<F>, part: &str) -> Result<Self, ConnectorError> {
        Ok(RandomMetricPartition {
            metric_name: part.to_string(),
            interval: source.interval,
            count: source.count,
            next_random: source.next_random.clone(),
            emitted: 0,
            awake_at_ms: ms_since_epoch(SystemTime::now()),
        })
    }

    fn next_batch(&mut self, batch: &mut Vec<(String, T)>) -> Result<BatchStatus, ConnectorError> {
        if self.emitted >= self.count {
            return Ok(BatchStatus::Eof);
        }
        if ms_since_epoch(SystemTime::now()) < self.awake_at_ms {
            return Ok(BatchStatus::Active);
        }
        // From the due time, not from now: the cadence does not drift with late polls.
        let interval = i64::try_from(self.interval.as_millis()).unwrap_or(i64::MAX);
        self.awake_at_ms = self.awake_at_ms.saturating_add(interval);
        self.emitted += 1;
        batch.push((self.metric_name.clone(), (self.next_random)()));
        Ok(if self.emitted >= self.count {
            BatchStatus::Eof
        } else {
            BatchStatus::Active
        })
    }

    fn next_awake(&self) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_millis(self.awake_at_ms.max(0) as u64))
    }
}

fn ms_since_epoch(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use bwx_runtime::StepId;
    use bwx_runtime::inputs::{FixedPartitionedSource, StatefulSourcePartition};

    use super::*;

    #[test]
    fn random_digits_cover_0_to_9() {
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[random_digit() as usize] = true;
        }
        assert_eq!(seen, [true; 10]);
    }

    #[test]
    fn a_resumed_partition_continues_the_count_and_the_schedule() {
        let source = RandomMetricSource::new("m")
            .interval(Duration::from_secs(3600))
            .count(5)
            .next_random(|| 7u8);
        let step = StepId::from("f.m");
        let mut part = source.build_part(&step, "m", None).unwrap();
        let mut batch = Vec::new();
        assert_eq!(part.next_batch(&mut batch).unwrap(), BatchStatus::Active);
        assert_eq!(batch, vec![("m".to_string(), 7)]);
        // The next value is due in an hour: nothing now.
        batch.clear();
        assert_eq!(part.next_batch(&mut batch).unwrap(), BatchStatus::Active);
        assert!(batch.is_empty());
        let state = part.snapshot();
        assert_eq!(state.emitted, 1);
        let resumed = source.build_part(&step, "m", Some(state)).unwrap();
        assert_eq!(resumed.next_awake(), part.next_awake());
        assert_eq!(resumed.snapshot().emitted, 1);
    }
}
