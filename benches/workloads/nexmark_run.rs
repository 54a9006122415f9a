//! The Nexmark workloads `nexmark-<query>-r<rate>` (WORKLOADS.md section 3), e.g.
//! `nexmark-q5-r10m` (10,000,000 events/s) or `nexmark-q11-r10k` (10,000 events/s).

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use bwx::testing::TestingSink;

use crate::nexmark::{self, Outputs, Query, RowChecksum};
use crate::{Outcome, args::Args};

/// Events of a run unless `--events` says otherwise.
const DEFAULT_EVENTS: u64 = 10_000_000;

/// The query and rate of a workload name, or `None` if it is not a Nexmark workload.
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

/// A directory for the query's files, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(args: &Args) -> Result<Outcome, String> {
    let (query, rate) =
        parse(&args.workload).ok_or_else(|| format!("not a nexmark workload: {}", args.workload))?;
    let events = args.events.unwrap_or(DEFAULT_EVENTS);
    let scratch = Scratch(std::env::temp_dir().join(format!("bwx-nexmark-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0).map_err(|e| format!("{}: {e}", scratch.0.display()))?;
    let late = TestingSink::new();
    let check_late = || match late.take().len() {
        0 => Ok(()),
        n => Err(format!(
            "{n} late items: a partition ran more than the clock's wait ahead of another"
        )),
    };
    if query.keeps_rows() {
        let rows = TestingSink::new();
        let outputs = Outputs {
            rows: rows.clone(),
            late: late.clone(),
            scratch: scratch.0.clone(),
        };
        let (flow, generated) = nexmark::flow(query, nexmark::config(rate), events, outputs)?;
        crate::execute(&flow, args)?;
        check_late()?;
        let rows = rows.take();
        Ok(Outcome::new(generated.load(Ordering::Relaxed), move || {
            if query == Query::Q10 {
                // The log's partitions and their lines, read back after the timed region.
                return match nexmark::log_rows(&scratch.0.join("log")) {
                    Ok(rows) => rows.iter().map(ToString::to_string).collect(),
                    Err(e) => vec![format!("cannot read the log: {e}")],
                };
            }
            rows.iter().map(ToString::to_string).collect()
        }))
    } else {
        let rows = RowChecksum::default();
        let outputs = Outputs {
            rows: rows.clone(),
            late: late.clone(),
            scratch: scratch.0.clone(),
        };
        let (flow, generated) = nexmark::flow(query, nexmark::config(rate), events, outputs)?;
        crate::execute(&flow, args)?;
        check_late()?;
        let row = rows.take();
        Ok(Outcome::new(generated.load(Ordering::Relaxed), move || {
            vec![row.to_string()]
        }))
    }
}
