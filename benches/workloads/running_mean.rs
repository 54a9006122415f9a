//! (b) b-running-mean: a keyed running mean that emits for every event.

use bwx::prelude::*;

use crate::events::{GeneratedSource, Generator, draw, value};
use crate::sinks::LastPerKey;
use crate::{Outcome, args::Args};

#[derive(Clone)]
struct Events;

impl Generator for Events {
    type Event = (u32, f64);

    #[inline]
    fn key(&self, i: u64) -> u32 {
        (draw(201, 2 * i) % 10_000) as u32
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
    flow.input("events", GeneratedSource::new(Events, total))
        .stateful_map("mean", add_to_mean)
        .output("last", last);
    flow
}

/// The same flow with `dataflow!`.
fn macro_flow(total: u64, last: LastPerKey<u32, f64>) -> Dataflow {
    bwx::dataflow!(running_mean {
        events = input(GeneratedSource::new(Events, total));
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
