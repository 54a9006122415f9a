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
use bwx::operators::IntoSink;
use bwx::prelude::*;
use bwx::testing::TestingSource;

/// (order id, what was paid) and (order id, where it went): two feeds that know nothing
/// of each other and arrive in any order. These are the payments,
pub const PAYMENTS: &[(u32, &str)] = &[
    (1001, "paid 25.00 EUR"),
    (1002, "paid 7.50 EUR"),
    (1004, "paid 99.90 EUR"),
];
/// and these the shipments.
pub const SHIPMENTS: &[(u32, &str)] = &[
    (1002, "shipped to Lyon"),
    (1003, "shipped to Porto"),
    (1001, "shipped to Ghent"),
];

/// The flow, writing matched orders to `output`.
///
/// `join` is a free call over the sides; `insert` and `emit` are optional settings
/// (`Last` and `Complete` by default, as in Bytewax).
pub fn build_flow<M>(output: impl IntoSink<String, M>) -> Dataflow {
    bwx::dataflow!(orders {
        payments  = input(TestingSource::new(PAYMENTS.iter().map(|(id, p)| (*id, p.to_string()))));
        shipments = input(TestingSource::new(SHIPMENTS.iter().map(|(id, s)| (*id, s.to_string()))));
        matched   = join(payments, shipments, insert = JoinInsertMode::Last, emit = JoinEmitMode::Complete);
        // In `Complete` mode every side is `Some`.
        format    = matched.filter_map(|(order, sides)| match &sides[..] {
            [Some(paid), Some(shipped)] => Some(format!("order {order}: {paid}, {shipped}")),
            _ => None,
        });
        out       = format.output(output);
    })
}

fn main() -> ExitCode {
    bwx::cli::main(build_flow(StdOutSink::new()))
}
