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
use bwx::outputs::IntoSink;
use bwx::prelude::*;
use bwx::testing::TestingSource;

/// What the sensors sent (a real flow would read them from a file, Kafka or stdin).
const READINGS: &[&str] = &[
    "kitchen 21.5",
    "garage 35.2",
    "# sensors recalibrated",
    "attic 41.0",
    "kitchen twenty-two",
    "cellar 12.25",
    "garage 29.9",
];

/// Readings above this many °C raise an alert.
const TOO_HOT: f64 = 30.0;

/// `"room 21.5"` → `("room", 21.5)`; `None` for a line that is not a reading.
fn parse(line: &str) -> Option<(String, f64)> {
    let (room, celsius) = line.split_once(' ')?;
    Some((room.to_string(), celsius.parse().ok()?))
}

/// The flow, writing its lines to `output` (stdout when run, a `TestingSink` in tests).
pub fn build_flow<M>(output: impl IntoSink<String, M>) -> Dataflow {
    let flow = Dataflow::new("basic");
    let readings = flow
        .input("lines", TestingSource::new(READINGS.iter().copied()))
        .filter("skip_comments", |line: &&str| !line.starts_with('#'))
        // `filter_map` parses and drops what does not parse, in one step.
        .filter_map("parse", |line: &str| parse(line))
        .map("fahrenheit", |(room, c)| (room, c, c * 9.0 / 5.0 + 32.0));

    // One pass splits the stream; no item is copied to both sides.
    let split = readings.branch("too_hot", |(_, c, _)| *c > TOO_HOT);
    let alerts = split.trues.map("alert", |(room, c, f)| {
        format!("ALERT {room}: {c:.1} °C ({f:.1} °F)")
    });
    let fine = split
        .falses
        .map("fine", |(room, c, _)| format!("ok {room}: {c:.1} °C"));

    flow.merge("all", [&alerts, &fine]).output("out", output);
    flow
}

fn main() -> ExitCode {
    bwx::cli::main(build_flow(StdOutSink::new()))
}
