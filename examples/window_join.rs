//! A window join: match each order with its payment when both happen within the same
//! one-minute window; orders without a payment in their window are reported unpaid.
//!
//! Run: `cargo run --example window_join`

use std::process::ExitCode;
use std::time::Duration;

use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};
use bwx::windowing::{EventClock, TumblingWindower, each_side};

/// An order or a payment: (order id, (timestamp in ms since the epoch, amount in cents)).
pub type Event = (u32, (i64, u64));

/// A joined row: (order, payment), `None` for a side without a value in the window.
pub type Row = (Option<(i64, u64)>, Option<(i64, u64)>);

/// A result: (order id, window id, order amount, paid amount if any).
pub type Matched = (u32, i64, u64, Option<u64>);

/// The sample orders.
pub fn orders() -> Vec<Event> {
    vec![
        (1, (1_000, 500)),
        (2, (20_000, 1_250)),
        (3, (61_000, 300)),
        (4, (62_000, 800)),
    ]
}

/// The sample payments; order 2 is paid after its window closed, order 4 never.
pub fn payments() -> Vec<Event> {
    vec![(1, (30_000, 500)), (3, (90_000, 300)), (2, (65_000, 1_250))]
}

/// The flow: one row per order and window.
///
/// `join_window` is a free call like `join`: the sides, then the settings `clock` and
/// `windower` (required), `insert`, `emit` and `ordered` (defaults `Last`, `Final`, `true`).
pub fn build(
    order_events: Vec<Event>,
    payment_events: Vec<Event>,
    matched: TestingSink<Matched>,
) -> Dataflow {
    bwx::dataflow!(orders {
        orders      = input(TestingSource::new(order_events));
        payments    = input(TestingSource::new(payment_events));
        paid        = join_window(
            orders,
            payments,
            // The two inputs are read independently, so a key's order and payment may
            // arrive in either order: wait long enough (60 s) that neither is judged late.
            // The clock reads the timestamps of both sides: one getter per side.
            clock = EventClock::replay(
                each_side((|o: &(i64, u64)| o.0, |p: &(i64, u64)| p.0)),
                Duration::from_secs(60),
            ),
            windower = TumblingWindower::new(Duration::from_secs(60), 0).expect("one minute is a valid length"),
            emit = JoinEmitMode::Final,
        );
        orders_only = paid.down.filter_map(|(id, (window, (order, payment))): (u32, (i64, Row))| {
            Some((id, window, order?.1, payment.map(|p| p.1)))
        });
        out         = orders_only.output(matched);
    })
}

fn main() -> ExitCode {
    let matched = TestingSink::new();
    let flow = build(orders(), payments(), matched.clone());
    if let Err(e) = bwx::run_main(&flow) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let mut rows = matched.take();
    rows.sort();
    for (id, window, amount, paid) in rows {
        match paid {
            Some(p) => println!("order {id} (minute {window}): {amount} cents, paid {p}"),
            None => println!("order {id} (minute {window}): {amount} cents, unpaid"),
        }
    }
    ExitCode::SUCCESS
}
