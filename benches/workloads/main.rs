//! The bench-kit workloads (../shared/bench/WORKLOADS.md) written with bwx's public API.
//!
//! `cargo bench --bench workloads -- <workload> --workers N [--processes P] --data DIR
//! [--events N] [--out FILE] [--macro] [--per-key-clock]` prints one `BENCH` line. Each
//! workload is written twice, with the builder and (`--macro`) with `dataflow!`, to measure
//! that the macro costs nothing at run time. (c) and (d) use a `PerWorker` event clock;
//! `--per-key-clock` runs them with one clock per key, as in Bytewax. Not a timed test:
//! compare.py runs it beside hand-written timely and Bytewax.

mod args;
mod cluster;
mod events;
mod histogram;
mod hot_items;
mod latency;
mod meter;
mod nexmark;
mod nexmark_run;
mod running_mean;
mod sinks;
mod tumbling;
mod wordcount;

use std::process::ExitCode;

use bwx::{Dataflow, RunConfig};

use sha2::{Digest, Sha256};

/// What a workload hands back: input events and output rows (formatted after timing).
pub struct Outcome {
    events: u64,
    /// Formats the output rows; called after the timed region, which the contract ends
    /// when the last row has reached the sink (as the timely runner does).
    rows: Box<dyn FnOnce() -> Vec<String>>,
    /// Further `key=value` pairs for the BENCH line.
    extra: String,
}

impl Outcome {
    /// The events a run processed and how to format its rows.
    pub fn new(events: u64, rows: impl FnOnce() -> Vec<String> + 'static) -> Self {
        Outcome {
            events,
            rows: Box::new(rows),
            extra: String::new(),
        }
    }

    /// Adds `key=value` pairs (space-separated) to the BENCH line.
    pub fn with_extra(self, extra: String) -> Self {
        Outcome { extra, ..self }
    }
}

/// Runs a flow on this process's workers, or as this process's part of a cluster.
pub fn execute(flow: &Dataflow, args: &args::Args) -> Result<(), String> {
    let result = match &args.member {
        Some(m) => bwx::cluster_main(
            flow,
            m.addresses.clone(),
            m.process_id,
            args.workers,
            RunConfig::default(),
        ),
        None => bwx::run_workers(flow, args.workers, RunConfig::default()),
    };
    result.map_err(|e| e.report())
}

fn main() -> ExitCode {
    let args = match args::Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("workloads: {message}\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let run = match args.workload.as_str() {
        "a-wordcount" => wordcount::run,
        "b-running-mean" => running_mean::run,
        "keyed-running-mean" => running_mean::run_keyed,
        "c-tumbling" => tumbling::run,
        "d-hot-items" => hot_items::run,
        // Partitions pace each other only within a process (see nexmark), and the queries
        // are written with the builder only.
        other if nexmark_run::parse(other).is_some() && (args.processes > 1 || args.macro_form) => {
            eprintln!("workloads: {other} runs in one process, without --macro");
            return ExitCode::from(2);
        }
        other if nexmark_run::parse(other).is_some() => nexmark_run::run,
        "latency" if args.processes > 1 || args.macro_form => {
            eprintln!("workloads: latency runs in one process, without --macro");
            return ExitCode::from(2);
        }
        "latency" => latency::run,
        other => {
            eprintln!("workloads: unknown workload {other:?}\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    if let Err(message) = events::check_test_vectors() {
        eprintln!("workloads: {message}");
        return ExitCode::from(1);
    }
    if args.processes > 1 && args.member.is_none() {
        return cluster::lead(&args);
    }
    let meter = meter::Meter::start();
    let outcome = match run(&args) {
        Ok(outcome) => outcome,
        Err(message) => {
            eprintln!("workloads: {message}");
            return ExitCode::from(1);
        }
    };
    let (secs, cpu) = meter.stop();
    if let Some(member) = &args.member {
        return cluster::report(member, outcome, secs, cpu);
    }
    let Outcome { events, rows, extra } = outcome;
    finish(&args, events, rows(), (secs, cpu, meter::peak_rss_mb()), &extra)
}

/// Prints the BENCH line for the whole run (and writes `--out`).
fn finish(
    args: &args::Args,
    events: u64,
    mut rows: Vec<String>,
    (secs, cpu, rss_mb): (f64, f64, f64),
    extra: &str,
) -> ExitCode {
    rows.sort_unstable();
    let mut canonical = Vec::with_capacity(rows.iter().map(|r| r.len() + 1).sum());
    for row in &rows {
        canonical.extend_from_slice(row.as_bytes());
        canonical.push(b'\n');
    }
    let digest: String = Sha256::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some(path) = &args.out
        && let Err(e) = std::fs::write(path, &canonical)
    {
        eprintln!("workloads: cannot write {path}: {e}");
        return ExitCode::from(1);
    }
    println!(
        "BENCH system={} workload={} workers={} processes={} events={} secs={secs:.3} events_per_s={:.0} cpu_s={cpu:.3} rss_mb={:.1} digest={digest} rows={}{}{extra}",
        if args.macro_form { "bwx-macro" } else { "bwx" },
        args.workload,
        args.workers,
        args.processes,
        events,
        events as f64 / secs,
        rss_mb,
        rows.len(),
        if extra.is_empty() { "" } else { " " },
    );
    ExitCode::SUCCESS
}
