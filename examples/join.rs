//! A keyed join of two streams: payments and shipments of the same orders.
//!
//! ```text
//! cargo run --example join -- run
//! ```
//!
//! Each stream is keyed by order id. `join` keeps, per order, the latest value of each
//! side; in `Complete` mode it emits as soon as both sides have one and then forgets the
//! order. (`Final` would emit at the end of input, with `None` for a missing side;
//! `Running` on every update.)

use std::process::ExitCode;

use bwx::connectors::stdio::StdOutSink;
use bwx::outputs::IntoSink;
use bwx::prelude::*;
use bwx::testing::TestingSource;

/// (order id, what was paid) and (order id, where it went): two feeds that know nothing
/// of each other and arrive in any order.
const PAYMENTS: &[(u32, &str)] = &[
    (1001, "paid 25.00 EUR"),
    (1002, "paid 7.50 EUR"),
    (1004, "paid 99.90 EUR"),
];
const SHIPMENTS: &[(u32, &str)] = &[
    (1002, "shipped to Lyon"),
    (1003, "shipped to Porto"),
    (1001, "shipped to Ghent"),
];

/// The flow, writing matched orders to `output`.
pub fn build_flow<M>(output: impl IntoSink<String, M>) -> Dataflow {
    let flow = Dataflow::new("orders");
    let payments = flow.input(
        "payments",
        TestingSource::new(PAYMENTS.iter().map(|(id, p)| (*id, p.to_string()))),
    );
    let shipments = flow.input(
        "shipments",
        TestingSource::new(SHIPMENTS.iter().map(|(id, s)| (*id, s.to_string()))),
    );
    flow.join(
        "match",
        [&payments, &shipments],
        JoinInsertMode::Last,
        JoinEmitMode::Complete,
    )
    // In `Complete` mode every side is `Some`.
    .filter_map("format", |(order, sides)| match &sides[..] {
        [Some(paid), Some(shipped)] => Some(format!("order {order}: {paid}, {shipped}")),
        _ => None,
    })
    .output("out", output);
    flow
}

fn main() -> ExitCode {
    bwx::cli::main(build_flow(StdOutSink::new()))
}
