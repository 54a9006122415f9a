//! The metric families: Bytewax's names and labels, and bwx's own.
//!
//! Every family is registered once per process in the [default registry](super::registry),
//! where users register their own metrics too. Steps resolve their label values once, when
//! a worker builds them, and then only add to the resolved counters (once per batch).

use std::sync::OnceLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

/// Bucket bounds of the duration histograms, in seconds: Bytewax's bounds (0 to 10 s),
/// with finer ones below 0.5 ms, where a batch of a compiled step usually falls.
pub(crate) const DURATION_BUCKETS: [f64; 21] = [
    0.0, 0.000_01, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
    0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Bucket bounds of the batch-size histogram (those of Bytewax's exporter).
pub(crate) const SIZE_BUCKETS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0, 10000.0,
];

/// The labels of every per-step family.
pub(crate) const STEP_LABELS: [&str; 2] = ["step_id", "worker_index"];

/// Every family bwx feeds.
pub(crate) struct Families {
    pub(crate) item_inp: IntCounterVec,
    pub(crate) item_out: IntCounterVec,
    pub(crate) next_batch_duration: HistogramVec,
    pub(crate) next_batch_size: HistogramVec,
    pub(crate) write_batch_duration: HistogramVec,
    pub(crate) flat_map_batch_duration: HistogramVec,
    pub(crate) on_batch_duration: HistogramVec,
    pub(crate) on_notify_duration: HistogramVec,
    pub(crate) on_eof_duration: HistogramVec,
    pub(crate) notify_at_duration: HistogramVec,
    pub(crate) snapshot_duration: HistogramVec,
    pub(crate) snapshot_bytes: IntCounterVec,
    pub(crate) snapshot_commit_duration: HistogramVec,
    pub(crate) snapshot_epoch: IntGaugeVec,
    pub(crate) snapshot_time: IntGaugeVec,
    pub(crate) keys: IntGaugeVec,
    pub(crate) late_items: IntCounterVec,
    pub(crate) kafka_consumer_lag: IntGaugeVec,
}

fn counter(name: &str, help: &str) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), &STEP_LABELS).expect("a valid counter family")
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid gauge family")
}

fn histogram(name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)
        .expect("a valid histogram family")
}

fn duration(name: &str, help: &str) -> HistogramVec {
    histogram(name, help, &DURATION_BUCKETS, &STEP_LABELS)
}

impl Families {
    fn new() -> Families {
        Families {
            item_inp: counter(
                "bytewax_item_inp_count_total",
                "number of items this step has ingested",
            ),
            item_out: counter(
                "bytewax_item_out_count_total",
                "number of items this step has emitted",
            ),
            next_batch_duration: duration(
                "bytewax_inp_part_next_batch_duration_seconds",
                "`next_batch` duration in seconds",
            ),
            next_batch_size: histogram(
                "bytewax_inp_part_next_batch_size",
                "`next_batch` batch size",
                &SIZE_BUCKETS,
                &STEP_LABELS,
            ),
            write_batch_duration: duration(
                "bytewax_out_part_write_batch_duration_seconds",
                "`write_batch` duration in seconds",
            ),
            flat_map_batch_duration: duration(
                "bytewax_flat_map_batch_duration_seconds",
                "`flat_map_batch` `mapper` duration in seconds",
            ),
            on_batch_duration: duration(
                "bytewax_stateful_batch_on_batch_duration_seconds",
                "`StatefulBatchLogic.on_batch` duration in seconds",
            ),
            on_notify_duration: duration(
                "bytewax_stateful_batch_on_notify_duration_seconds",
                "`StatefulBatchLogic.on_notify` duration in seconds",
            ),
            on_eof_duration: duration(
                "bytewax_stateful_batch_on_eof_duration_seconds",
                "`StatefulBatchLogic.on_eof` duration in seconds",
            ),
            notify_at_duration: duration(
                "bytewax_stateful_batch_notify_at_duration_seconds",
                "`StatefulBatchLogic.notify_at` duration in seconds",
            ),
            snapshot_duration: duration(
                "bytewax_snapshot_duration_seconds",
                "`snapshot` duration in seconds",
            ),
            snapshot_bytes: IntCounterVec::new(
                Opts::new(
                    "bwx_snapshot_bytes_total",
                    "bytes of encoded keys and state of this step written to recovery",
                ),
                &["step_id"],
            )
            .expect("a valid counter family"),
            snapshot_commit_duration: histogram(
                "bwx_snapshot_commit_duration_seconds",
                "time to write a batch of snapshots durably to these recovery partitions, in seconds",
                &DURATION_BUCKETS,
                &["partitions"],
            ),
            snapshot_epoch: gauge(
                "bwx_snapshot_last_epoch",
                "the last epoch this recovery partition holds every snapshot of",
                &["partition"],
            ),
            snapshot_time: gauge(
                "bwx_snapshot_last_timestamp_seconds",
                "when this process last wrote to this recovery partition (Unix time)",
                &["partition"],
            ),
            keys: gauge(
                "bwx_step_keys",
                "keys with state held by this step on this worker",
                &STEP_LABELS,
            ),
            late_items: counter(
                "bwx_window_late_items_total",
                "items this windowing step found too late for their window",
            ),
            kafka_consumer_lag: gauge(
                "bytewax_kafka_consumer_lag",
                "messages between the consumer's position and the end of the partition",
                &["step_id", "topic", "partition"],
            ),
        }
    }

    fn register(&self) {
        let registry = super::registry();
        let all: [Box<dyn prometheus::core::Collector>; 18] = [
            Box::new(self.item_inp.clone()),
            Box::new(self.item_out.clone()),
            Box::new(self.next_batch_duration.clone()),
            Box::new(self.next_batch_size.clone()),
            Box::new(self.write_batch_duration.clone()),
            Box::new(self.flat_map_batch_duration.clone()),
            Box::new(self.on_batch_duration.clone()),
            Box::new(self.on_notify_duration.clone()),
            Box::new(self.on_eof_duration.clone()),
            Box::new(self.notify_at_duration.clone()),
            Box::new(self.snapshot_duration.clone()),
            Box::new(self.snapshot_bytes.clone()),
            Box::new(self.snapshot_commit_duration.clone()),
            Box::new(self.snapshot_epoch.clone()),
            Box::new(self.snapshot_time.clone()),
            Box::new(self.keys.clone()),
            Box::new(self.late_items.clone()),
            Box::new(self.kafka_consumer_lag.clone()),
        ];
        for family in all {
            if let Err(e) = registry.register(family) {
                // A program that registered a metric of the same name first keeps it; this
                // family still counts, unexported.
                tracing::warn!("cannot register a bwx metric family: {e}");
            }
        }
    }
}

/// The families, registered on first use.
pub(crate) fn families() -> &'static Families {
    static FAMILIES: OnceLock<Families> = OnceLock::new();
    FAMILIES.get_or_init(|| {
        let families = Families::new();
        families.register();
        super::live::register();
        families
    })
}

/// The gauge `bytewax_kafka_consumer_lag{step_id, topic, partition}`, for Kafka sources:
/// messages between the consumer's position and the partition's high watermark.
pub fn kafka_consumer_lag() -> &'static IntGaugeVec {
    &families().kafka_consumer_lag
}
