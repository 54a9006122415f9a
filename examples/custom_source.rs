//! Write your own connector: a partitioned, resumable source with `#[bwx::source]`, in a
//! flow with recovery and an exactly-once file sink.
//!
//! ```text
//! cargo run --example custom_source -- recovery init /tmp/meters-state 1
//! BWX_OUTPUT=/tmp/meters.txt cargo run --example custom_source -- \
//!     run -r /tmp/meters-state -s 100ms -b 1s
//! ```
//!
//! Kill the run (Ctrl-C, or `kill -9`) and start it again with the same command: it
//! continues where the last completed epoch left off, and `/tmp/meters.txt` ends up with
//! every reading exactly once (`tests/custom_source.rs` does this with SIGKILL).
//!
//! The source simulates a fleet of power meters. Each meter is a partition that emits
//! numbered readings on a schedule; a partition's resume state is the number of its next
//! reading. The flow keeps a running total per meter (keyed state, also recovered) and
//! writes `meter seq watts total` lines.
//!
//! Environment: `BWX_OUTPUT` (default `meters.txt`), `BWX_METERS` (4), `BWX_READINGS`
//! (readings per meter, 500), `BWX_EVERY_MS` (milliseconds between readings, 10).
//!
//! # How `#[source]` works
//!
//! Put the attribute on the partition struct and on its `impl` block:
//!
//! - On the struct, `#[state]` marks the fields recovery stores. The attribute generates
//!   `MeterPartState` (here `{ next: u64 }`), serde, and what snapshots and restores it.
//! - In the impl, `list_parts` names the partitions, `open` opens one, `next_batch` reads,
//!   `next_awake` (optional) says when to poll next. The type of `open`'s first parameter,
//!   `Meters`, becomes the source you give to `input`: the attribute implements
//!   `FixedPartitionedSource` for it and `StatefulSourcePartition` for the partition.
//! - On resume, the stored `#[state]` fields are set on the partition `open` returned. A
//!   source that must seek instead (a file, a Kafka partition) takes the state in `open`:
//!   `fn open(source: &S, part: &str, resume: Option<PartState>)`.
//! - Methods may return any error type that converts into `ConnectorError`; the flow
//!   stops with the error, naming the step and the partition.
//!
//! The same by hand is two trait impls (`bwx::inputs::FixedPartitionedSource` and
//! `StatefulSourcePartition`); `#[bwx::sink]` does the same for sinks (see
//! `bwx::connectors::files::FileSink`, written with it).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use bwx::connectors::files::FileSink;
use bwx::prelude::*;
use serde::{Deserialize, Serialize};

/// A fleet of simulated power meters, one partition each.
#[derive(Debug, Clone)]
pub struct Meters {
    /// How many meters (partitions).
    pub meters: u32,
    /// Readings each meter emits before it ends.
    pub readings: u64,
    /// Time between two readings of a meter.
    pub every: Duration,
}

/// One reading: its meter, its number (from 0) and its value. Serde, because it crosses
/// workers on its way to its meter's running total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    /// The meter.
    pub meter: u32,
    /// The reading's number within its meter.
    pub seq: u64,
    /// The power drawn.
    pub watts: u64,
}

/// The value of reading `seq` of `meter`: a pure function of both, so a resumed run emits
/// exactly what the crashed one would have.
pub fn watts(meter: u32, seq: u64) -> u64 {
    100 + (u64::from(meter) * 31 + seq * 17) % 50
}

/// A partition name that names no meter of this fleet.
#[derive(Debug)]
pub struct UnknownMeter(String);

impl std::fmt::Display for UnknownMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no meter named {:?} (partitions are meter-0, meter-1, ...)",
            self.0
        )
    }
}

impl std::error::Error for UnknownMeter {}

/// One meter: the partition. `next` is its resume state.
#[bwx::source]
pub struct MeterPart {
    meter: u32,
    /// The number of the next reading: stored at every epoch close, restored on resume.
    #[state]
    next: u64,
    readings: u64,
    every: Duration,
    /// When the next reading is due.
    due: SystemTime,
}

#[bwx::source]
impl MeterPart {
    /// Every worker lists every meter; each meter is read by exactly one worker.
    fn list_parts(source: &Meters) -> Vec<String> {
        (0..source.meters).map(|m| format!("meter-{m}")).collect()
    }

    /// Opens a meter from the start; with recovery, `next` is then set from the snapshot.
    fn open(source: &Meters, part: &str) -> Result<Self, UnknownMeter> {
        let meter = part
            .strip_prefix("meter-")
            .and_then(|n| n.parse().ok())
            .filter(|m| *m < source.meters)
            .ok_or_else(|| UnknownMeter(part.to_string()))?;
        Ok(MeterPart {
            meter,
            next: 0,
            readings: source.readings,
            every: source.every,
            due: SystemTime::now(),
        })
    }

    /// Emits the readings that are due (at most one per `every`); ends after the last.
    fn next_batch(&mut self, batch: &mut Vec<Reading>) -> Result<BatchStatus, UnknownMeter> {
        let now = SystemTime::now();
        while self.due <= now && self.next < self.readings {
            batch.push(Reading {
                meter: self.meter,
                seq: self.next,
                watts: watts(self.meter, self.next),
            });
            self.next += 1;
            self.due += self.every;
        }
        Ok(if self.next == self.readings {
            BatchStatus::Eof
        } else {
            BatchStatus::Active
        })
    }

    /// Poll again when the next reading is due, rather than spinning.
    fn next_awake(&self) -> Option<SystemTime> {
        Some(self.due)
    }
}

/// Running totals per meter, as `meter seq watts total` lines in the file at `output`.
pub fn build_flow(meters: Meters, output: PathBuf) -> Dataflow {
    bwx::dataflow!(meters {
        readings = input(meters);
        by_meter = readings.key_on(|r: &Reading| r.meter.to_string());
        totals   = by_meter.stateful_map(|total: Option<u64>, r: Reading| {
            let total = total.unwrap_or(0) + r.watts;
            (Some(total), format!("{} {} {} {}", r.meter, r.seq, r.watts, total))
        });
        out      = totals.output(FileSink::new(output));
    })
}

/// `$name` parsed, or `default` when unset.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .map_err(|_| format!("{name}={value:?} is not a valid number")),
        Err(_) => Ok(default),
    }
}

/// The fleet the environment asks for.
fn meters_from_env() -> Result<Meters, String> {
    Ok(Meters {
        meters: env_or("BWX_METERS", 4)?,
        readings: env_or("BWX_READINGS", 500)?,
        every: Duration::from_millis(env_or("BWX_EVERY_MS", 10)?),
    })
}

fn main() -> ExitCode {
    let meters = match meters_from_env() {
        Ok(meters) => meters,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let output = std::env::var_os("BWX_OUTPUT").map_or_else(|| PathBuf::from("meters.txt"), PathBuf::from);
    bwx::cli::main(build_flow(meters, output))
}
