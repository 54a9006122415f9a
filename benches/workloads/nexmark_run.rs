//! The Nexmark workloads `nexmark-<query>-r<rate>` (WORKLOADS.md section 3), e.g.
//! `nexmark-q5-r10m` (10,000,000 events/s) or `nexmark-q11-r10k` (10,000 events/s).

use std::sync::atomic::Ordering;

use bwx::testing::TestingSink;

use crate::nexmark_flows::{self, NexmarkSource, Query};
use crate::{Outcome, args::Args};

/// Events of a run unless `--events` says otherwise.
const DEFAULT_EVENTS: u64 = 10_000_000;

/// The query and rate of a workload name, or `None` if it is not a Nexmark workload bwx runs.
pub fn parse(workload: &str) -> Option<(Query, usize)> {
    let rest = workload.strip_prefix("nexmark-")?;
    let (query, rate) = rest.split_once("-r")?;
    let rate = match rate {
        "10m" => 10_000_000,
        "10k" => 10_000,
        _ => return None,
    };
    Some((Query::parse(query)?, rate))
}

pub fn run(args: &Args) -> Result<Outcome, String> {
    let (query, rate) =
        parse(&args.workload).ok_or_else(|| format!("not a nexmark workload: {}", args.workload))?;
    let source = NexmarkSource::new(nexmark_flows::config(rate), args.events.unwrap_or(DEFAULT_EVENTS));
    let emitted = source.counter();
    let (rows, late) = (TestingSink::new(), TestingSink::new());
    let flow = nexmark_flows::flow(query, source, rows.clone(), late.clone())?;
    crate::execute(&flow, args)?;
    let late = late.take().len();
    if late > 0 {
        return Err(format!(
            "{late} late items: a partition ran more than the clock's wait ahead of another"
        ));
    }
    let rows = rows.take();
    Ok(Outcome::new(emitted.load(Ordering::Relaxed), move || {
        rows.iter().map(ToString::to_string).collect()
    }))
}
