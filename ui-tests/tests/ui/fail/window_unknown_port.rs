use std::time::Duration;

use bwx::testing::{TestingSink, TestingSource};
use bwx::windowing::{EventClock, TumblingWindower};

fn main() {
    let _flow = bwx::dataflow!(f {
        items = input(TestingSource::new(vec![(1u32, 10i64)]));
        sums  = items.reduce_window(
            EventClock::replay(|ts: &i64| *ts, Duration::ZERO),
            TumblingWindower::new(Duration::from_secs(1), 0).unwrap(),
            |a, b| a + b,
        );
        out   = sums.dwon.output(TestingSink::new());
    });
}
