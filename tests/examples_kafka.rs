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

#[allow(dead_code)]
#[path = "../examples/kafka_exactly_once.rs"]
mod kafka_exactly_once;

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

/// The exactly-once example, run twice on the same recovery directory with more words in
/// between: every word's counts are read back once each, in order. It needs a broker with
/// transactions (`BWX_KAFKA_TXN_BROKERS`, see tests/kafka_exactly_once.rs).
#[test]
fn kafka_exactly_once_counts_every_word_once_across_runs() {
    let Ok(list) = std::env::var("BWX_KAFKA_TXN_BROKERS") else {
        eprintln!("BWX_KAFKA_TXN_BROKERS is not set: skipping the exactly-once example");
        return;
    };
    for brokers in list.split(',').filter(|b| !b.is_empty()) {
        let id = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let (words, counts) = (format!("words-{id}"), format!("counts-{id}"));
        kafka_exactly_once::create_topic(brokers, &words, 3).unwrap();
        kafka_exactly_once::create_topic(brokers, &counts, 3).unwrap();
        let config = KafkaConfig::new(brokers);
        let dir = tempfile::tempdir().unwrap();
        let recovery = dir.path().join("recovery");
        let batches = ["a b a c", "b a d a"];
        for batch in batches {
            kafka_exactly_once::write_words(brokers, &words, batch.split(' ')).unwrap();
            kafka_exactly_once::run_counts(&config, &words, &counts, &format!("ex-{id}"), &recovery).unwrap();
        }
        let got = kafka_exactly_once::read_counts(brokers, &counts).unwrap();
        let mut per_word: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for line in &got {
            let (w, n) = line.split_once(": ").unwrap();
            per_word
                .entry(w.to_string())
                .or_default()
                .push(n.parse().unwrap());
        }
        let expected: BTreeMap<String, Vec<u64>> = [("a", 4), ("b", 2), ("c", 1), ("d", 1)]
            .into_iter()
            .map(|(w, n)| (w.to_string(), (1..=n).collect()))
            .collect();
        assert_eq!(per_word, expected, "on {brokers}: {got:?}");
    }
}
