//! The consumer-lag hook: librdkafka's per-partition lag, reported to an observer.
//!
//! librdkafka computes each assigned partition's lag (high watermark minus the next offset)
//! and reports it in its statistics, every `statistics.interval.ms` (1 s unless set) when
//! an observer is installed. The metrics work turns these reports into a gauge
//! (`bwx_kafka_consumer_lag{step_id,topic,partition}`); nothing is reported without an
//! observer, and no statistics are collected then.

use std::fmt;
use std::sync::Arc;

use rdkafka::consumer::ConsumerContext;
use rdkafka::{ClientContext, Statistics};

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

/// Receives lag reports; called on librdkafka's statistics, about once per interval.
pub type LagObserver = Arc<dyn Fn(&ConsumerLag) + Send + Sync>;

/// The client context of a source partition's consumer.
#[derive(Clone, Default)]
pub(crate) struct SourceContext {
    pub(crate) lag: Option<(LagObserver, String)>,
}

impl fmt::Debug for SourceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceContext")
            .field("lag_observer", &self.lag.is_some())
            .finish()
    }
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        let Some((observer, step_id)) = &self.lag else {
            return;
        };
        for (topic, t) in &statistics.topics {
            for (&partition, p) in &t.partitions {
                // librdkafka lists an internal partition -1 and reports -1 while unknown.
                if partition >= 0 && p.consumer_lag >= 0 {
                    observer(&ConsumerLag {
                        step_id: step_id.clone(),
                        topic: topic.clone(),
                        partition,
                        lag: p.consumer_lag,
                    });
                }
            }
        }
    }
}

impl ConsumerContext for SourceContext {}
