//! Shared by the examples: how they start.
//!
//! STAND-IN: this is a minimal runner until `bwx::cli::main(flow)` is available; then
//! `run` below becomes `bwx::cli::main(flow)` (with every flag of the real CLI). It accepts
//! `run [-w N]` and exits 1 when the flow fails, 2 on bad arguments.

use std::process::ExitCode;

use bwx::prelude::*;

/// Runs `flow` as the command line asks: `run [-w WORKERS]`.
pub fn run(flow: Dataflow) -> ExitCode {
    let mut workers = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "run" => {}
            "-w" | "--workers-per-process" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => workers = n,
                None => return usage("-w needs a number of workers"),
            },
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    match bwx::run_workers(&flow, workers, RunConfig::default()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(1)
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("{problem}\nusage: run [-w WORKERS]");
    ExitCode::from(2)
}
