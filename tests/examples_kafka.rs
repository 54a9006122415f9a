//! The Kafka example's flows, run against librdkafka's mock cluster: seed readings, the
//! aggregating pipeline on 2 workers, and the read-back, checked against a direct count.
#![cfg(feature = "kafka")]

use std::collections::BTreeMap;

use bwx::RunConfig;
use bwx::connectors::kafka::KafkaConfig;
use bwx::connectors::kafka::rdkafka::mocking::MockCluster;
use bwx::testing::TestingSink;

#[allow(dead_code)]
#[path = "../examples/kafka_pipeline.rs"]
mod kafka_pipeline;

use kafka_pipeline::{SENSORS, Stats, check_flow, seed_flow, stats_flow};

#[test]
fn kafka_pipeline_aggregates_the_seeded_readings_per_sensor() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("readings", 3, 1).unwrap();
    mock.create_topic("stats", 1, 1).unwrap();
    let config = KafkaConfig::new(mock.bootstrap_servers());
    let n = 5_000;
    bwx::run_main(&seed_flow(&config, "readings", n)).unwrap();
    bwx::run_workers(&stats_flow(&config, "readings", "stats"), 2, RunConfig::default()).unwrap();
    let got = TestingSink::new();
    bwx::run_main(&check_flow(&config, "stats", got.clone())).unwrap();
    let got: BTreeMap<String, Stats> = got
        .take()
        .into_iter()
        .map(|(sensor, stats)| (sensor, stats.expect("every summary has a value")))
        .collect();

    // The same summaries computed directly; reading 999 of every 1000 is not JSON.
    let mut want: BTreeMap<String, Stats> = BTreeMap::new();
    for i in (0..n).filter(|i| i % 1000 != 999) {
        let stats = want
            .entry(format!("sensor-{}", i % SENSORS))
            .or_insert_with(Stats::empty);
        *stats = stats.clone().with_reading((i % 97) as f64 / 10.0);
    }
    assert_eq!(got.len(), SENSORS as usize);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (sensor, w) in &want {
        let g = &got[sensor];
        assert_eq!((g.count, g.min, g.max), (w.count, w.min, w.max), "{sensor}");
        // The partitions' readings are summed in another order than here.
        assert!((g.sum - w.sum).abs() < 1e-6, "{sensor}: {} vs {}", g.sum, w.sum);
    }
}
