//! (b) b-running-mean: a keyed running mean that emits for every event; and
//! `keyed-running-mean`, the same over `--keys` keys, for how cost grows with the number of
//! keys (its rows: the count of outputs and an order-independent checksum of them, so that
//! the sink does not hold a row per key).

use bwx::prelude::*;

use crate::events::{GeneratedSource, Generator, draw, value};
use crate::sinks::{Checksum, LastPerKey};
use crate::{Outcome, args::Args};

/// The events of (b) over `keys` keys (10,000 in (b)).
#[derive(Clone)]
struct Events {
    keys: u64,
}

impl Generator for Events {
    type Event = (u32, f64);

    #[inline]
    fn key(&self, i: u64) -> u32 {
        (draw(201, 2 * i) % self.keys) as u32
    }

    #[inline]
    fn event(&self, i: u64, key: u32) -> (u32, f64) {
        (key, value(draw(201, 2 * i + 1)))
    }
}

/// Adds `v` to a key's count and sum; emits the mean so far.
#[inline]
fn add_to_mean(state: Option<(u64, f64)>, v: f64) -> (Option<(u64, f64)>, f64) {
    let (n, sum) = state.unwrap_or((0, 0.0));
    let (n, sum) = (n + 1, sum + v);
    (Some((n, sum)), sum / n as f64)
}

/// The flow with the builder.
fn builder_flow(total: u64, last: LastPerKey<u32, f64>) -> Dataflow {
    let flow = Dataflow::new("running_mean");
    flow.input("events", GeneratedSource::new(Events { keys: 10_000 }, total))
        .stateful_map("mean", add_to_mean)
        .output("last", last);
    flow
}

/// The same flow with `dataflow!`.
fn macro_flow(total: u64, last: LastPerKey<u32, f64>) -> Dataflow {
    bwx::dataflow!(running_mean {
        events = input(GeneratedSource::new(Events { keys: 10_000 }, total));
        mean   = events.stateful_map(add_to_mean);
        last   = mean.output(last);
    })
}

pub fn run(args: &Args) -> Result<Outcome, String> {
    let total = args.events.unwrap_or(5_000_000);
    let last = LastPerKey::new();
    let build = if args.macro_form { macro_flow } else { builder_flow };
    let flow = build(total, last.clone());
    crate::execute(&flow, args)?;
    let (written, last) = last.take();
    // One mean per event: the means this process wrote are the events it processed.
    Ok(Outcome::new(written, move || {
        last.into_iter()
            .map(|(k, mean)| format!("k{k:04},{mean:?}"))
            .collect()
    }))
}

/// `keyed-running-mean`: (b)'s flow over `--keys` keys.
pub fn run_keyed(args: &Args) -> Result<Outcome, String> {
    if args.keys == 0 || args.keys > u64::from(u32::MAX) {
        return Err(format!("--keys must be between 1 and {}", u32::MAX));
    }
    let total = args.events.unwrap_or(5_000_000);
    let sums = Checksum::default();
    let flow = Dataflow::new("running_mean");
    flow.input("events", GeneratedSource::new(Events { keys: args.keys }, total))
        .stateful_map("mean", add_to_mean)
        .output("sums", sums.clone());
    crate::execute(&flow, args)?;
    let (written, checksum) = sums.take();
    Ok(Outcome::new(written, move || {
        vec![format!("{written},{checksum:016x}")]
    }))
}
