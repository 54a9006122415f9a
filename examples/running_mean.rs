//! A running mean per key with `stateful_map`: state that lives per key, on the worker
//! that owns the key, and is snapshotted for recovery when recovery is on.
//!
//! ```text
//! cargo run --example running_mean -- run        # the bundled examples/data/readings.csv
//! BWX_INPUT=other.csv cargo run --example running_mean -- run -w 2
//! ```
//!
//! Reads `sensor,celsius` rows from a CSV file and prints, for every reading, the mean of
//! that sensor's readings so far.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bwx::connectors::files::CsvSource;
use bwx::connectors::stdio::StdOutSink;
use bwx::outputs::IntoSink;
use bwx::prelude::*;
use serde::{Deserialize, Serialize};

/// One CSV row, deserialized by column name.
#[derive(Clone, Debug, Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

/// What a sensor's running mean needs to remember. It is serde so that recovery can store it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Mean {
    count: u64,
    sum: f64,
}

/// Reads `sensor,celsius` rows from `input` and writes `sensor mean` lines to `output`.
pub fn build_flow<M>(input: &Path, output: impl IntoSink<String, M>) -> Dataflow {
    let flow = Dataflow::new("running_mean");
    flow.input("readings", CsvSource::<Reading>::new(input))
        // A keyed stream is a stream of (key, value) pairs.
        .key_on("by_sensor", |r: &Reading| r.sensor.clone())
        .map_value("celsius", |r| r.celsius)
        // The state starts as `None` for a new key; returning `Some` keeps it.
        .stateful_map("mean", |state: Option<Mean>, celsius: f64| {
            let mut mean = state.unwrap_or_default();
            mean.count += 1;
            mean.sum += celsius;
            let now = mean.sum / mean.count as f64;
            (Some(mean), now)
        })
        .map("format", |(sensor, mean)| format!("{sensor} {mean:.2}"))
        .output("out", output);
    flow
}

/// The file to read: `$BWX_INPUT`, or the bundled readings.
fn input_path() -> PathBuf {
    match std::env::var_os("BWX_INPUT") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/readings.csv"),
    }
}

fn main() -> ExitCode {
    bwx::cli::main(build_flow(&input_path(), StdOutSink::new()))
}
