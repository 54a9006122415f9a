//! A keyed join of two streams: payments and shipments of the same orders.
//!
//! ```text
//! cargo run --example join -- run
//! ```
//!
//! Each stream is keyed by order id, and each has its own value type: an amount paid in
//! cents, a destination. `join` keeps, per order, the latest value of each side; in
//! `Complete` mode it emits `(amount, destination)` as soon as both sides have one and then
//! forgets the order. (`Final` would emit at the end of input and `Running` on every
//! update, both with `(Option<u64>, Option<String>)` rows: a side may be missing.)

use std::process::ExitCode;

use bwx::connectors::stdio::StdOutSink;
use bwx::operators::IntoSink;
use bwx::prelude::*;
use bwx::testing::TestingSource;

/// (order id, cents paid) and (order id, where it went): two feeds that know nothing of
/// each other and arrive in any order. These are the payments,
pub const PAYMENTS: &[(u32, u64)] = &[(1001, 2500), (1002, 750), (1004, 9990)];
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
        payments  = input(TestingSource::new(PAYMENTS.to_vec()));
        shipments = input(TestingSource::new(SHIPMENTS.iter().map(|(id, s)| (*id, s.to_string()))));
        matched   = join(payments, shipments, insert = JoinInsertMode::Last, emit = JoinEmitMode::Complete);
        // In `Complete` mode a row has a value of every side.
        format    = matched.map(|(order, (cents, shipped)): (u32, (u64, String))| {
            format!("order {order}: paid {}.{:02} EUR, {shipped}", cents / 100, cents % 100)
        });
        out       = format.output(output);
    })
}

fn main() -> ExitCode {
    bwx::cli::main(build_flow(StdOutSink::new()))
}
