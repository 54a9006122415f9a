//! Watching a running flow: Prometheus metrics with Bytewax's names, and the run's status.
//!
//! A [`Monitor`] given to a run ([`RunConfig::monitor`](crate::RunConfig::monitor)) makes
//! every step count its items and time its batches into the process's [`registry`], and
//! tracks the run's phase, epochs and resume point. The dataflow API
//! ([`crate::api`]) serves both; `bwx::cli` turns it on with
//! `BYTEWAX_DATAFLOW_API_ENABLED`. Counting is per batch, never per item.
//!
//! # Metrics
//!
//! Bytewax's names and labels (`step_id`, `worker_index`), so that its dashboards work:
//!
//! | metric | type | what |
//! |---|---|---|
//! | `bytewax_item_inp_count_total` | counter | items a step took in |
//! | `bytewax_item_out_count_total` | counter | items a step emitted |
//! | `bytewax_inp_part_next_batch_duration_seconds` | histogram | a source partition's `next_batch` |
//! | `bytewax_inp_part_next_batch_size` | histogram | items per `next_batch` |
//! | `bytewax_out_part_write_batch_duration_seconds` | histogram | a sink partition's `write_batch` |
//! | `bytewax_flat_map_batch_duration_seconds` | histogram | a stateless step's code, per batch |
//! | `bytewax_stateful_batch_on_batch_duration_seconds` | histogram | a stateful step's code, per batch |
//! | `bytewax_stateful_batch_on_notify_duration_seconds` | histogram | its wake-ups |
//! | `bytewax_stateful_batch_on_eof_duration_seconds` | histogram | its end of input |
//! | `bytewax_stateful_batch_notify_at_duration_seconds` | histogram | asking its next wake-up |
//! | `bytewax_snapshot_duration_seconds` | histogram | taking a step's snapshots of an epoch |
//! | `bytewax_kafka_consumer_lag` | gauge | Kafka: messages behind the end of each partition (`step_id`, `topic`, `partition`) |
//!
//! and bwx's own:
//!
//! | metric | type | what |
//! |---|---|---|
//! | `bwx_epoch{worker_index}` | gauge | the newest epoch of a worker's inputs |
//! | `bwx_step_frontier_epoch` | gauge | the epoch a step works on |
//! | `bwx_step_frontier_lag_seconds` | gauge | how long ago the inputs closed that epoch |
//! | `bwx_step_keys` | gauge | keys with state in a stateful step |
//! | `bwx_window_late_items_total` | counter | items a windowing step found late |
//! | `bwx_snapshot_bytes_total{step_id}` | counter | encoded keys and state of a step written to recovery |
//! | `bwx_snapshot_commit_duration_seconds{partitions}` | histogram | writing a batch of snapshots durably to these partitions |
//! | `bwx_snapshot_last_epoch{partition}` | gauge | the last epoch a recovery partition holds completely |
//! | `bwx_snapshot_last_timestamp_seconds{partition}` | gauge | when this process last wrote to it |
//!
//! plus the `process_*` metrics of the process (CPU, memory, open files). Register your own
//! metrics in the same [`registry`]; they are served beside these:
//!
//! ```
//! use bwx::monitor::{prometheus, registry};
//!
//! let orders = prometheus::IntCounter::new("shop_orders_total", "orders seen").unwrap();
//! registry().register(Box::new(orders.clone())).unwrap();
//! orders.inc();
//! assert!(bwx::monitor::metrics_text().contains("shop_orders_total 1"));
//! ```

mod families;
pub(crate) mod live;
pub(crate) mod meter;
pub(crate) mod snapshots;
mod status;

pub use families::kafka_consumer_lag;
pub use prometheus;
pub use status::{Monitor, Resumed, RunPhase, StatusReport, WorkerStatus};

/// The process's metric registry (the `prometheus` crate's default registry): bwx's
/// families live here, and so can yours.
pub fn registry() -> &'static prometheus::Registry {
    prometheus::default_registry()
}

/// Whether a run of this process keeps metrics now (a [`Monitor`] made with
/// [`Monitor::new`] is alive), for connectors that feed metrics of their own, such as the
/// Kafka source's [`kafka_consumer_lag`].
pub fn metrics_active() -> bool {
    live::active()
}

/// Every metric of the [`registry`] in Prometheus's text format, as `GET /metrics` serves
/// it.
pub fn metrics_text() -> String {
    use prometheus::Encoder;
    let mut out = Vec::new();
    // Encoding gathered families into memory cannot fail: gathering drops empty families.
    let _ = prometheus::TextEncoder::new().encode(&registry().gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Monitor, metrics_text};
    use crate::testing::{TestingSink, TestingSource};
    use crate::windowing::{EventClock, TumblingWindower};
    use crate::{Dataflow, RunConfig};

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .map(|v| v.trim().parse().unwrap())
    }

    #[test]
    fn a_windowing_step_counts_its_late_items() {
        let flow = Dataflow::new("latecount");
        let items = vec![(1u8, 5i64), (1, 25), (1, 3), (1, 12)];
        let w = flow.input("inp", TestingSource::new(items)).reduce_window(
            "sum",
            EventClock::replay(|ts: &i64| *ts, Duration::from_millis(10)),
            TumblingWindower::new(Duration::from_millis(10), 0).unwrap(),
            |a, b| a + b,
        );
        let late = TestingSink::new();
        w.down.output("down", TestingSink::new());
        w.late.output("late", late.clone());
        let monitor = Monitor::new(&flow);
        crate::run_main_with(&flow, RunConfig::default().monitor(monitor)).unwrap();
        // After 25 the watermark is 15: 3 and 12 are late.
        assert_eq!(late.take().len(), 2);
        let text = metrics_text();
        let labels = "{step_id=\"latecount.sum\",worker_index=\"0\"} ";
        assert_eq!(
            value(&text, &format!("bwx_window_late_items_total{labels}")),
            Some(2.0)
        );
        assert_eq!(
            value(&text, &format!("bytewax_item_inp_count_total{labels}")),
            Some(4.0)
        );
        assert_eq!(
            value(
                &text,
                "bytewax_item_inp_count_total{step_id=\"latecount.late\",worker_index=\"0\"} "
            ),
            Some(2.0)
        );
    }
}
