use std::time::Duration;

use bwx::testing::{TestingSink, TestingSource};
use bwx::windowing::EventClock;

fn main() {
    let _flow = bwx::dataflow!(f {
        orders   = input(TestingSource::new(vec![(1u32, 10i64)]));
        payments = input(TestingSource::new(vec![(1u32, 12i64)]));
        paid     = join_window(orders, payments, clock = EventClock::replay(|ts: &i64| *ts, Duration::ZERO));
        out      = paid.down.output(TestingSink::new());
    });
}
