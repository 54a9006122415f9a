//! Operating a flow binary: the dataflow API (metrics, dataflow, status, live page), logs
//! and traces, progress, stopping, and the binary's own tools. Each case re-executes this
//! test binary as the flow binary (the `child_process_entry` test, which calls
//! `bwx::cli::Runner`), with the arguments in an environment variable.
//!
//! Some cases drive real programs: Debian's `prometheus` and `promtool` and `chromium`.
//! They are found through `BWX_PROMETHEUS`, `BWX_PROMTOOL` and `BWX_CHROMIUM` (which
//! `.ci/run` sets) or on the `PATH`; without them those cases say so and pass, except under
//! CI (`CI` set), where they fail.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod harness;
mod logs;
#[cfg(feature = "otlp")]
mod otlp;
mod page;
mod progress;
mod prometheus;
mod stop;
mod tools;

/// Not a test of its own: the flow binary that the other tests run. Without its
/// arguments it does nothing.
#[test]
fn child_process_entry() {
    harness::child_process_entry();
}
