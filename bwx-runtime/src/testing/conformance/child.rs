//! The child side of a run in a subprocess: the test binary, re-executed with [`ENV`] set,
//! runs one kit flow and exits.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::case::Case;
use super::run::{RunFn, RunSpec, watch_stop_file, write_end};

/// The environment variable that makes a test process a kit child; its value is a [`Job`]
/// in JSON.
pub(crate) const ENV: &str = "BWX_CONFORMANCE_CHILD";

/// Which kit a job is for.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Kit {
    Source,
    Sink,
}

/// What a child runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Job {
    pub kit: Kit,
    pub case_name: String,
    pub case_dir: PathBuf,
    pub spec: RunSpec,
}

/// The job of this process, when it is a kit child.
pub(crate) fn job() -> Option<Job> {
    serde_json::from_str(&std::env::var(ENV).ok()?).ok()
}

/// Runs the job's flow with `run` and exits: 0 when it returned `Ok`, 1 otherwise (the
/// parent reads how it ended from the case directory).
pub(crate) fn main(job: Job, run: impl FnOnce(&Case) -> RunFn) -> ! {
    let case = match Case::new(job.case_name, job.case_dir) {
        Ok(case) => case,
        Err(e) => {
            eprintln!("conformance child: cannot open the case directory: {e}");
            std::process::exit(2)
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    watch_stop_file(&case, job.spec.run, stop.clone(), done.clone());
    let result = run(&case)(&job.spec, stop, None);
    done.store(true, Ordering::SeqCst);
    write_end(&case, job.spec.run, &result);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(if result.is_ok() { 0 } else { 1 })
}
