use std::time::Duration;

use bwx::testing::{TestingSink, TestingSource};
use bwx::windowing::{EventClock, TumblingWindower};

fn main() {
    let _flow = bwx::dataflow!(f {
        temps = input(TestingSource::new(vec![10i64, 12, 15]));
        sums  = temps.reduce_window(
            EventClock::replay(|ts: &i64| *ts, Duration::ZERO),
            TumblingWindower::new(Duration::from_secs(1), 0).unwrap(),
            |a, b| a + b,
        );
        out   = sums.down.output(TestingSink::new());
    });
}
