//! The Kafka source feeds Bytewax's gauge `bytewax_kafka_consumer_lag{step_id,topic,
//! partition}` when its run keeps metrics (a `Monitor`, which the dataflow API uses), on
//! real brokers: `BWX_KAFKA_BROKERS` lists them (`.ci/run` starts two; see
//! `scripts/kafka-brokers.sh`). Without it the test says so and checks nothing.

#![cfg(feature = "kafka")]

mod kafka_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bwx_connectors::kafka::{KafkaConfig, KafkaSource};
use bwx_runtime::monitor::{Monitor, metrics_text};
use bwx_runtime::prelude::*;
use bwx_runtime::testing::TestingSink;
use kafka_common::{create_topic, produce, unique_topic};
use rdkafka::consumer::Consumer;

/// The gauge's value for one partition, if the registry has it.
fn lag(step: &str, topic: &str, partition: i32) -> Option<i64> {
    let series = format!(
        "bytewax_kafka_consumer_lag{{partition=\"{partition}\",step_id=\"{step}\",topic=\"{topic}\"}} "
    );
    metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map(|v| v.trim().parse().unwrap())
}

#[test]
fn a_monitored_run_reports_each_partitions_lag_to_the_gauge() {
    let Ok(list) = std::env::var("BWX_KAFKA_BROKERS") else {
        eprintln!("BWX_KAFKA_BROKERS is not set: skipping the consumer-lag gauge test");
        return;
    };
    for brokers in list.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        let topic = unique_topic("lag-metric");
        create_topic(brokers, &topic, 2);
        produce(
            brokers,
            &topic,
            (0..40).map(|i: i32| (vec![b'k'], i.to_string().into_bytes(), i % 2)),
        );
        // The gauge is the broker's high watermark minus the source's position: a broker
        // must report the watermark to be checked against it.
        let watermarks = kafka_common::reader_from_beginning(brokers, &topic, 2);
        let highs: Vec<i64> = (0..2)
            .map(|p| {
                watermarks
                    .fetch_watermarks(&topic, p, Duration::from_secs(10))
                    .map_or(-1, |(_, high)| high)
            })
            .collect();
        if highs != [20, 20] {
            eprintln!("{brokers} reports high watermarks {highs:?} for 20 messages a partition: skipping it");
            continue;
        }
        let flow = Dataflow::new("lagged");
        let read = Arc::new(AtomicUsize::new(0));
        let counted = read.clone();
        // One message per batch, and the worker stalls on the first one: the partitions'
        // backlog stays unread for a few lag reports, then drains.
        flow.input(
            "inp",
            KafkaSource::new(KafkaConfig::new(brokers), [topic.as_str()])
                .tail(true)
                .batch_size(1),
        )
        .inspect("stall", move |_, _| {
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(2500));
            }
        })
        .output("out", TestingSink::new());
        let monitor = Monitor::new(&flow);
        let stop = Arc::new(AtomicBool::new(false));
        let config = RunConfig::default()
            .epoch_interval(Duration::from_millis(200))
            .monitor(monitor.clone())
            .stop_flag(stop.clone());
        let running = {
            let flow = flow.clone();
            std::thread::spawn(move || bwx_runtime::run_main_with(&flow, config))
        };
        let started = Instant::now();
        let mut backlog_seen = false;
        loop {
            let lags = [lag("lagged.inp", &topic, 0), lag("lagged.inp", &topic, 1)];
            // At most one message of each partition was read during the stall.
            backlog_seen |= lags.iter().flatten().any(|l| *l >= 19);
            if backlog_seen && read.load(Ordering::SeqCst) == 40 && lags == [Some(0), Some(0)] {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{brokers}: lags {lags:?}, backlog seen {backlog_seen}, {} of 40 read",
                read.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::SeqCst);
        running.join().unwrap().unwrap();
    }
}
