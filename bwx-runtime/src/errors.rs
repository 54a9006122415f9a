//! Errors of building and running a flow.

use thiserror::Error;

/// Why a flow could not be built or did not finish.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum FlowError {
    /// Two steps got the same dotted id.
    #[error(
        "duplicate step id '{id}': step #{first_index} ({first}) and step #{second_index} ({second}) both use it; give each step its own name"
    )]
    DuplicateStep {
        /// The dotted id.
        id: String,
        /// Operator of the first step with the id.
        first: &'static str,
        /// Position of the first step in the flow.
        first_index: usize,
        /// Operator of the second step with the id.
        second: &'static str,
        /// Position of the second step in the flow.
        second_index: usize,
    },
    /// A step or flow name that cannot be part of a dotted id.
    #[error("bad step id {name:?}: {why}")]
    BadStepName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The flow has no input step.
    #[error("flow '{flow}' has no input: add one with `flow.input(...)`")]
    NoInput {
        /// The flow id.
        flow: String,
    },
    /// The flow has no output step.
    #[error("flow '{flow}' has no output: add one with `stream.output(...)`, or nothing would run")]
    NoOutput {
        /// The flow id.
        flow: String,
    },
    /// A step reads a stream across the boundary of a composite operator: one made
    /// outside it that was not passed in, or one made inside another that was not returned.
    #[error("step '{step}' {problem}")]
    OutOfScope {
        /// The dotted step id.
        step: String,
        /// Which stream, and how to fix it.
        problem: String,
    },
    /// Several problems found while checking a flow.
    #[error("{}", .0.iter().map(|e| format!("- {e}")).collect::<Vec<_>>().join("\n"))]
    Many(Vec<FlowError>),
    /// User code panicked in a step.
    #[error("step '{step}' panicked on worker {worker}: {message}")]
    StepPanicked {
        /// The dotted step id, or `<none>` outside any step.
        step: String,
        /// The global worker index.
        worker: usize,
        /// The panic message, with its source location.
        message: String,
    },
    /// A source or sink reported an error.
    #[error("step '{step}' on worker {worker}, partition '{part}': {message}")]
    Connector {
        /// The dotted step id.
        step: String,
        /// The global worker index.
        worker: usize,
        /// The partition, or `-` for a dynamic (per-worker) one.
        part: String,
        /// What went wrong.
        message: String,
    },
    /// The recovery store is unusable or inconsistent; the message names the file and why.
    #[error("recovery: {0}")]
    Recovery(#[from] crate::recovery::RecoveryError),
    /// The execution could not be set up (configuration, addresses, network).
    #[error("cannot start the flow: {0}")]
    Setup(String),
    /// Another process of the cluster failed, or the connection to it was lost.
    #[error("{0}")]
    Cluster(String),
}
