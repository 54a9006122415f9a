//! Heap allocations per message of a flow that only forwards Kafka messages (`kafka::input`
//! → `kafka::output`, one worker), against librdkafka's in-process mock cluster (feature
//! `kafka`). A binary of its own: it counts every allocation of the process.
#![cfg(feature = "kafka")]

mod kafka_common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use bwx_connectors::kafka::{self, KafkaConfig, KafkaSink, KafkaSource};
use bwx_runtime::prelude::*;
use bwx_runtime::run_main;
use kafka_common::{produce, unique_topic};
use rdkafka::mocking::MockCluster;

/// The system allocator, counting allocations (and reallocations, which may move).
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Allocations of a key's or a value's size (sizes nothing else here allocates).
static KEY_OR_VALUE_SIZED: AtomicU64 = AtomicU64::new(0);
const KEY_LEN: usize = 41;
const VALUE_LEN: usize = 131;

fn count(size: usize) {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    if size == KEY_LEN || size == VALUE_LEN {
        KEY_OR_VALUE_SIZED.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; the counters are
// relaxed atomics and allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations of one run copying `n` messages from one topic to another: in all, and of
/// key- or value-sized buffers.
fn copy_run(mock: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>, n: usize) -> (u64, u64) {
    let brokers = mock.bootstrap_servers();
    let (from, to) = (unique_topic("alloc-in"), unique_topic("alloc-out"));
    mock.create_topic(&from, 1, 1).unwrap();
    mock.create_topic(&to, 1, 1).unwrap();
    produce(
        &brokers,
        &from,
        (0..n).map(|i| (format!("{i:0KEY_LEN$}").into_bytes(), vec![b'v'; VALUE_LEN], 0)),
    );
    let config = KafkaConfig::new(&brokers);
    let flow = Dataflow::new("forward");
    let msgs = kafka::input(
        &flow,
        "in",
        KafkaSource::new(config.clone(), [from.as_str()]).tail(false),
    );
    kafka::output(&msgs.oks, "out", KafkaSink::new(config, Some(&to)));
    let before = (
        ALLOCATIONS.load(Ordering::Relaxed),
        KEY_OR_VALUE_SIZED.load(Ordering::Relaxed),
    );
    run_main(&flow).unwrap();
    let used = (
        ALLOCATIONS.load(Ordering::Relaxed) - before.0,
        KEY_OR_VALUE_SIZED.load(Ordering::Relaxed) - before.1,
    );
    let written = kafka_common::read_all(&brokers, &to, 1, n).len();
    assert_eq!(written, n, "every message is copied");
    used
}

/// Forwarding a message allocates no buffer for its key or value once the flow runs (the
/// sink gives the buffers back to the source), and handing it to librdkafka allocates
/// nothing (no C string of the topic per message). What remains is one allocation per
/// message inside the rdkafka crate: `PartitionQueue::poll` puts each consumed message's
/// event in an `Arc`. The figures are differences between two runs, so the fixed start and
/// stop costs cancel out. (Before: 4.2 allocations per message, 2 of them key- or
/// value-sized.)
#[test]
fn forwarding_allocates_no_key_or_value_buffer_per_message() {
    let mock = MockCluster::new(1).expect("start the mock cluster");
    // A first run warms up what is created once per process.
    copy_run(&mock, 100);
    // (The mock cluster keeps at most 5 MiB per partition.)
    let (small, large) = (1_000, 16_000);
    let (a, a_sized) = copy_run(&mock, small);
    let (b, b_sized) = copy_run(&mock, large);
    let per_message = |a: u64, b: u64| b.saturating_sub(a) as f64 / (large - small) as f64;
    let (all, sized) = (per_message(a, b), per_message(a_sized, b_sized));
    eprintln!(
        "{a} allocations for {small} messages, {b} for {large}: {all:.2} per message, \
         {sized:.3} of them key- or value-sized"
    );
    assert!(
        sized < 0.01,
        "{sized:.3} key or value buffers allocated per forwarded message (expected none: the \
         sink gives them back to the source)"
    );
    assert!(
        all < 1.5,
        "{all:.2} allocations per forwarded message (expected 1, in rdkafka's consumer)"
    );
}
