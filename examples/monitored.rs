//! A flow to watch while it runs: the dataflow API serves Prometheus metrics (with a
//! metric of the flow's own), the flow as JSON, its status, and a live page.
//!
//! ```sh
//! BYTEWAX_DATAFLOW_API_ENABLED=true cargo run --example monitored -- run -s 1s
//! # then open http://localhost:3030/ (or curl localhost:3030/metrics, /status, /dataflow)
//! ```
//!
//! It reads `MONITORED_ORDERS` simulated orders (default 100 000, about 1 000 every 50 ms),
//! keeps the big ones, sums them per customer and prints the running totals. On a terminal
//! a progress line shows what it read and wrote; Ctrl-C stops it and says at which epoch.

use std::process::ExitCode;
use std::time::Duration;

use bwx::connectors::stdio::StdOutSink;
use bwx::monitor::{prometheus, registry};
use bwx::prelude::*;
use bwx::testing::{TestingEvent, TestingSource};

/// Order `i`: (customer, amount), spread deterministically.
fn order(i: u64) -> (String, u64) {
    let mixed = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    (format!("customer-{}", mixed % 20), mixed % 1000)
}

fn main() -> ExitCode {
    let orders: u64 = std::env::var("MONITORED_ORDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    // A metric of the flow's own, served at /metrics beside bwx's.
    let big_orders = prometheus::IntCounter::new("monitored_big_orders_total", "orders of 900 or more")
        .expect("a valid metric");
    registry()
        .register(Box::new(big_orders.clone()))
        .expect("registered once");

    let mut events = Vec::new();
    for i in 0..orders {
        events.push(TestingEvent::Item(order(i)));
        if i % 1000 == 999 {
            events.push(TestingEvent::Pause(Duration::from_millis(50)));
        }
    }
    let flow = Dataflow::new("monitored");
    flow.input("orders", TestingSource::from_events(events).batch_size(500))
        // Count once per batch, not once per item: one atomic add for the whole batch.
        .flat_map_batch(
            "big",
            move |batch: &mut Vec<(String, u64)>, out: &mut Vec<(String, u64)>| {
                out.extend(batch.drain(..).filter(|(_, amount)| *amount >= 900));
                big_orders.inc_by(out.len() as u64);
            },
        )
        .stateful_map("totals", |total: Option<u64>, amount: u64| {
            let total = total.unwrap_or(0) + amount;
            (Some(total), total)
        })
        .map("format", |(customer, total)| format!("{customer} {total}"))
        .output("out", StdOutSink::new());
    bwx::cli::Runner::new(flow)
        .version(env!("CARGO_PKG_VERSION"))
        .main()
}
