//! Average temperature per sensor over 10-second event-time windows.
//!
//! Readings may arrive up to 5 s out of order; the replay event clock makes the result the
//! same however fast the input is read. A reading more than 5 s behind its sensor's newest
//! one is reported as late instead.
//!
//! Run: `cargo run --example window_tumbling_average`

use std::process::ExitCode;
use std::time::Duration;

use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};
use bwx::windowing::{EventClock, TumblingWindower};

/// A reading: (sensor, timestamp in ms since the epoch, degrees Celsius).
pub type Reading = (String, i64, f64);

/// An average: (sensor, window start in ms since the epoch, mean of its readings).
pub type Average = (String, i64, f64);

/// Windows are aligned to this instant (2023-11-14 22:13:20 UTC).
pub const START: i64 = 1_700_000_000_000;

/// Sample input: two sensors reporting every 2 s for 30 s, a little out of order, and
/// one reading that arrives far too late.
pub fn readings() -> Vec<Reading> {
    let mut out = Vec::new();
    for step in 0..15i64 {
        // Swap every third pair of timestamps to simulate disorder.
        let t = if step % 3 == 1 {
            step + 1
        } else if step % 3 == 2 {
            step - 1
        } else {
            step
        };
        out.push(("kitchen".to_string(), START + t * 2_000, 20.0 + (t % 4) as f64));
        out.push((
            "garage".to_string(),
            START + t * 2_000 + 500,
            8.0 + (t % 3) as f64 * 0.5,
        ));
    }
    out.push(("kitchen".to_string(), START + 1_000, 99.0));
    out
}

/// The flow: averages go to `averages`, late readings to `late`.
///
/// A window operator has three ports: `mean.down` (the results), `mean.late` (items behind
/// the watermark) and `mean.meta` (each closed window's open and close times).
pub fn build(sample: Vec<Reading>, averages: TestingSink<Average>, late: TestingSink<Reading>) -> Dataflow {
    bwx::dataflow!(tumbling_average {
        readings  = input(TestingSource::new(sample));
        by_sensor = readings.key_on(|r: &Reading| r.0.clone());
        // (clock, windower, init, folder, merger, ordered): count and sum per window.
        mean      = by_sensor.fold_window(
            EventClock::replay(|r: &Reading| r.1, Duration::from_secs(5)),
            TumblingWindower::new(Duration::from_secs(10), START).expect("10 s is a valid window length"),
            || (0u32, 0.0f64),
            |(n, sum), r: Reading| (n + 1, sum + r.2),
            |(n1, s1), (n2, s2)| (n1 + n2, s1 + s2),
            false,
        );
        average   = mean.down.map(|(sensor, (id, (n, sum))): (String, (i64, (u32, f64)))| {
            (sensor, START + id * 10_000, sum / f64::from(n))
        });
        averages  = average.output(averages);
        late_item = mean.late.map(|(_, (_, r))| r);
        late      = late_item.output(late);
    })
}

fn main() -> ExitCode {
    let (averages, late) = (TestingSink::new(), TestingSink::new());
    let flow = build(readings(), averages.clone(), late.clone());
    if let Err(e) = bwx::run_main(&flow) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    for (sensor, start, mean) in averages.take() {
        println!("{sensor} {start} {mean:.2}");
    }
    for (sensor, ts, value) in late.take() {
        println!("late: {sensor} {ts} {value}");
    }
    ExitCode::SUCCESS
}
