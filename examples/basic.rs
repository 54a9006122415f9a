//! The stateless operators: `filter`, `filter_map`, `map`, `branch` and `merge`.
//!
//! ```text
//! cargo run --example basic -- run
//! ```
//!
//! Temperature readings arrive as text lines. Comments and broken lines are dropped, the
//! rest are parsed, split into readings that are too hot and readings that are fine, each
//! side is formatted its own way, and both are merged into one output.

use std::process::ExitCode;

use bwx::connectors::stdio::StdOutSink;
use bwx::operators::IntoSink;
use bwx::prelude::*;
use bwx::testing::TestingSource;

/// What the sensors sent (a real flow would read them from a file, Kafka or stdin).
pub const READINGS: &[&str] = &[
    "kitchen 21.5",
    "garage 35.2",
    "# sensors recalibrated",
    "attic 41.0",
    "kitchen twenty-two",
    "cellar 12.25",
    "garage 29.9",
];

/// Readings above this many °C raise an alert.
pub const TOO_HOT: f64 = 30.0;

/// `"room 21.5"` → `("room", 21.5)`; `None` for a line that is not a reading.
pub fn parse(line: &str) -> Option<(String, f64)> {
    let (room, celsius) = line.split_once(' ')?;
    Some((room.to_string(), celsius.parse().ok()?))
}

/// The flow, writing its lines to `output` (stdout when run, a `TestingSink` in tests).
///
/// Stateless steps may be chained in one statement: the chain's inner steps are named
/// after the binding and their operator (`basic.readings_filter`,
/// `basic.readings_filter_map`), the last one after the binding (`basic.readings`).
pub fn build_flow<M>(output: impl IntoSink<String, M>) -> Dataflow {
    bwx::dataflow!(basic {
        lines    = input(TestingSource::new(READINGS.iter().copied()));
        // `filter_map` parses and drops what does not parse, in one step.
        readings = lines
            .filter(|line: &&str| !line.starts_with('#'))
            .filter_map(|line: &str| parse(line))
            .map(|(room, c)| (room, c, c * 9.0 / 5.0 + 32.0));
        // One pass splits the stream; no item is copied to both sides. The two sides are
        // the ports `too_hot.trues` and `too_hot.falses`.
        too_hot  = readings.branch(|(_, c, _)| *c > TOO_HOT);
        alerts   = too_hot.trues.map(|(room, c, f)| format!("ALERT {room}: {c:.1} °C ({f:.1} °F)"));
        fine     = too_hot.falses.map(|(room, c, _)| format!("ok {room}: {c:.1} °C"));
        all      = merge(alerts, fine);
        out      = all.output(output);
    })
}

fn main() -> ExitCode {
    bwx::cli::main(build_flow(StdOutSink::new()))
}
