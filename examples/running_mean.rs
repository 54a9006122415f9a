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
use bwx::operators::IntoSink;
use bwx::prelude::*;
use serde::{Deserialize, Serialize};

/// One CSV row, deserialized by column name.
#[derive(Clone, Debug, Deserialize)]
pub struct Reading {
    /// The sensor's name.
    pub sensor: String,
    /// Its reading.
    pub celsius: f64,
}

/// What a sensor's running mean needs to remember. It is serde so that recovery can store it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Mean {
    count: u64,
    sum: f64,
}

impl Mean {
    /// Adds a reading; returns the mean so far.
    pub fn add(&mut self, celsius: f64) -> f64 {
        self.count += 1;
        self.sum += celsius;
        self.sum / self.count as f64
    }
}

/// Reads `sensor,celsius` rows from `path` and writes `sensor mean` lines to `output`.
pub fn build_flow<M>(path: &Path, output: impl IntoSink<String, M>) -> Dataflow {
    bwx::dataflow!(running_mean {
        readings  = input(CsvSource::<Reading>::new(path));
        // A keyed stream is a stream of (key, value) pairs.
        by_sensor = readings.key_on(|r: &Reading| r.sensor.clone());
        celsius   = by_sensor.map_value(|r| r.celsius);
        // The state starts as `None` for a new key; returning `Some` keeps it. The state
        // is stored for recovery under this step's id, `running_mean.mean`.
        mean      = celsius.stateful_map(|state: Option<Mean>, celsius: f64| {
            let mut mean = state.unwrap_or_default();
            let now = mean.add(celsius);
            (Some(mean), now)
        });
        format    = mean.map(|(sensor, mean)| format!("{sensor} {mean:.2}"));
        out       = format.output(output);
    })
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
