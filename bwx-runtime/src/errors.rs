//! Errors of building and running a flow.
//!
//! Every error names where it happened (step, worker, partition, key) in its message and
//! keeps what caused it as its [`source`](std::error::Error::source), so that the whole
//! chain can be printed ([`FlowError::report`]) or inspected.

use std::error::Error;

use thiserror::Error;

pub use crate::cause::Cause;
use crate::inputs::Transient;

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
    /// A source or sink failed; the connector's error is the source.
    #[error("step '{step}' on worker {worker}{}: {doing}", partition_clause(part))]
    Connector {
        /// The dotted step id.
        step: String,
        /// The global worker index.
        worker: usize,
        /// The partition, or `-` for a dynamic (per-worker) one, which
        /// the message leaves out: the worker names it.
        part: String,
        /// What the engine asked of it ("cannot open the partition", ...).
        doing: String,
        /// Whether a later run may succeed ([`Transient`] or a transient I/O error).
        retriable: bool,
        /// The connector's error.
        #[source]
        cause: Cause,
    },
    /// A source or sink partition is set up wrongly (no partitions anywhere, a duplicate
    /// name, ...); nothing failed in the connector itself.
    #[error("step '{step}': {why}")]
    Partitions {
        /// The dotted step id.
        step: String,
        /// What is wrong.
        why: String,
    },
    /// A state or position could not be encoded for its snapshot.
    #[error("step '{step}' on worker {worker}: cannot encode the state of key {key} for its snapshot")]
    StateEncode {
        /// The dotted step id.
        step: String,
        /// The global worker index.
        worker: usize,
        /// The key (or source/sink partition), as it prints.
        key: String,
        /// The encoder's error.
        #[source]
        cause: Cause,
    },
    /// A stored state, position or key could not be decoded on resume (the state type
    /// changed incompatibly, or the store holds another flow's state).
    #[error("step '{step}' on worker {worker}: cannot decode the stored {what} of key {key}")]
    StateDecode {
        /// The dotted step id.
        step: String,
        /// The global worker index.
        worker: usize,
        /// `state`, `key` or `position`.
        what: &'static str,
        /// The key (or partition), as stored (printable, or hex).
        key: String,
        /// The decoder's error.
        #[source]
        cause: Cause,
    },
    /// The recovery store holds state that matches nothing in the flow: resuming would
    /// drop it silently.
    #[error(
        "the recovery store holds state that matches nothing in this flow: {}; \
         if the flow changed on purpose, resume with `drop_unmatched_state` (`--drop-unmatched-state`) to drop it",
        .0.join("; ")
    )]
    UnmatchedState(Vec<String>),
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

impl FlowError {
    /// A connector error of `step` on `worker`, partition `part` (`-` for a dynamic one):
    /// the engine was `doing` something when the connector failed with `cause`.
    pub(crate) fn connector(
        step: &crate::StepId,
        worker: usize,
        part: &str,
        doing: impl Into<String>,
        cause: impl Into<Box<dyn Error + Send + Sync>>,
    ) -> FlowError {
        let cause = Cause::new(cause);
        FlowError::Connector {
            step: step.to_string(),
            worker,
            part: part.to_string(),
            doing: doing.into(),
            retriable: is_transient(cause.get()),
            cause,
        }
    }

    /// Whether running the flow again may succeed: true for connector errors marked
    /// [`Transient`] (or caused by a transient I/O error such as a refused or timed-out
    /// connection), false for everything else.
    pub fn is_retriable(&self) -> bool {
        match self {
            FlowError::Connector { retriable, .. } => *retriable,
            FlowError::Many(all) => all.iter().all(FlowError::is_retriable),
            _ => false,
        }
    }

    /// The error and its causes on one line, `what: why: why`, as the CLI prints it.
    pub fn report(&self) -> String {
        report(self)
    }
}

/// An error and its causes on one line, `what: why: why`.
pub(crate) fn report(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// The partition name of a dynamic source or sink: one per worker, named by the worker.
pub(crate) const DYNAMIC_PART: &str = "-";

/// `, partition 'p'` for a named partition; nothing for a worker's dynamic one.
fn partition_clause(part: &str) -> String {
    if part == DYNAMIC_PART {
        String::new()
    } else {
        format!(", partition '{part}'")
    }
}

/// Whether `err` or one of its causes says a retry may cure it.
fn is_transient(err: &(dyn Error + 'static)) -> bool {
    use std::io::ErrorKind::*;
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<Transient>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | NotConnected
                    | TimedOut
                    | Interrupted
                    | WouldBlock
                    | HostUnreachable
                    | NetworkUnreachable
                    | NetworkDown
                    | ResourceBusy
            )
        {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StepId;

    #[test]
    fn a_connector_error_keeps_its_cause_and_reports_the_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = FlowError::connector(
            &StepId::new("f.inp".into()),
            1,
            "a.txt",
            "cannot open the partition",
            io,
        );
        assert_eq!(
            err.to_string(),
            "step 'f.inp' on worker 1, partition 'a.txt': cannot open the partition"
        );
        assert_eq!(err.source().unwrap().to_string(), "no such file");
        assert_eq!(
            err.report(),
            "step 'f.inp' on worker 1, partition 'a.txt': cannot open the partition: no such file"
        );
        assert!(!err.is_retriable());
    }

    #[test]
    fn a_dynamic_partition_is_named_by_its_worker_alone() {
        let err = FlowError::connector(
            &StepId::new("f.out".into()),
            2,
            DYNAMIC_PART,
            "cannot write a batch",
            "full",
        );
        assert_eq!(
            err.report(),
            "step 'f.out' on worker 2: cannot write a batch: full"
        );
    }

    #[test]
    fn transient_causes_make_an_error_retriable() {
        let step = StepId::new("f.out".into());
        let marked = FlowError::connector(&step, 0, "-", "cannot write", Transient::new("broker down"));
        assert!(marked.is_retriable());
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(FlowError::connector(&step, 0, "-", "cannot connect", refused).is_retriable());
        assert!(!FlowError::connector(&step, 0, "-", "bad config", "no such topic").is_retriable());
    }
}
