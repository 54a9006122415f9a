//! The consumer-lag hook: each partition's lag, reported to an observer about once per
//! interval.
//!
//! A partition with an observer starts a small thread with its own metadata-only client:
//! every interval it asks the broker for the partition's high watermark and reports
//! `high watermark - next offset to read`. The worker never waits for it. (librdkafka's
//! own statistics would carry the lag, but rdkafka 0.39's consumer drops statistics events.)
//! The metrics work turns these reports into a gauge
//! (`bwx_kafka_consumer_lag{step_id,topic,partition}`); without an observer nothing runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;

use super::client::ClientLogs;
use super::config::KafkaConfig;
use super::source::KafkaConsumer;

/// One lag report of one topic-partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerLag {
    /// The source's dotted step id.
    pub step_id: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Messages between the next offset to read and the partition's high watermark.
    pub lag: i64,
}

/// Receives lag reports, on the partition's lag thread.
pub type LagObserver = Arc<dyn Fn(&ConsumerLag) + Send + Sync>;

/// The next offset is not known yet (the partition starts at the beginning or a stored
/// offset and has read nothing): the lag is then measured from the low watermark.
pub(crate) const UNKNOWN: i64 = -1;

/// Stops the lag thread when the partition is dropped.
pub(crate) struct LagWatch {
    stop: Arc<AtomicBool>,
}

impl Drop for LagWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a lag thread watches.
pub(crate) struct LagTarget {
    pub(crate) step_id: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) next: Arc<AtomicI64>,
}

/// Starts the lag thread of one partition.
pub(crate) fn watch(
    config: &KafkaConfig,
    target: LagTarget,
    observer: LagObserver,
    interval: Duration,
) -> Result<LagWatch, String> {
    let client: KafkaConsumer = config
        .client_config(&[])
        .create_with_context(ClientLogs::new(format!(
            "step {}: lag of partition {} of {:?}",
            target.step_id, target.partition, target.topic
        )))
        .map_err(|e| format!("cannot create the lag client: {}", config.scrub(&e.to_string())))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    thread::Builder::new()
        .name(format!("bwx-lag-{}-{}", target.partition, target.topic))
        .spawn(move || {
            let mut due = Instant::now() + interval;
            while !stopped.load(Ordering::Relaxed) {
                // Short sleeps so a closed partition's thread ends promptly.
                thread::sleep(Duration::from_millis(20).min(interval));
                if Instant::now() < due {
                    continue;
                }
                due += interval;
                // A failed query skips one report; the next interval tries again.
                if let Ok((low, high)) = client.fetch_watermarks(&target.topic, target.partition, interval) {
                    let next = match target.next.load(Ordering::Relaxed) {
                        UNKNOWN => low,
                        n => n,
                    };
                    observer(&ConsumerLag {
                        step_id: target.step_id.clone(),
                        topic: target.topic.clone(),
                        partition: target.partition,
                        lag: (high - next).max(0),
                    });
                }
            }
        })
        .map_err(|e| format!("cannot start the lag thread: {e}"))?;
    Ok(LagWatch { stop })
}
