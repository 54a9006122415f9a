//! Fail-stop across processes: a worker whose process failed tells every worker of the
//! cluster why, over a raw timely channel that lives outside all dataflows.
//!
//! Without it, a failed process's workers simply return, and timely shuts their
//! connections down cleanly, so the peers' network threads see no error and their workers
//! wait forever for progress that will never come. With it, each peer's worker receives the
//! original error (step, worker, message) and stops with it, so every process exits with
//! the same cause. A process that dies without a word (kill -9) is detected by its peers
//! when its connections close, and one that stops answering by their heartbeats (see the
//! `execution::wire` and `execution::heartbeat` modules).

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use timely::Bincode;
use timely::communication::{Pull, Push};
use timely::worker::Worker;

use crate::errors::{Cause, FlowError};

use super::failure::Failure;

/// What a failing process tells its peers.
#[derive(Clone, Serialize, Deserialize)]
enum Notice {
    /// A source asked to abort the execution.
    Abort,
    /// User code panicked in a step.
    StepPanicked {
        step: String,
        worker: usize,
        message: String,
    },
    /// A source or sink failed.
    Connector {
        step: String,
        worker: usize,
        part: String,
        doing: String,
        retriable: bool,
        /// The cause and its own causes, as they print.
        cause: String,
    },
    /// Any other error, as displayed.
    Other(String),
}

impl Notice {
    fn from_error(err: &FlowError) -> Notice {
        match err {
            FlowError::StepPanicked {
                step,
                worker,
                message,
            } => Notice::StepPanicked {
                step: step.clone(),
                worker: *worker,
                message: message.clone(),
            },
            FlowError::Connector {
                step,
                worker,
                part,
                doing,
                retriable,
                cause,
            } => Notice::Connector {
                step: step.clone(),
                worker: *worker,
                part: part.clone(),
                doing: doing.clone(),
                retriable: *retriable,
                cause: crate::errors::report(cause),
            },
            other => Notice::Other(other.report()),
        }
    }

    fn into_error(self) -> Option<FlowError> {
        match self {
            Notice::Abort => None,
            Notice::StepPanicked {
                step,
                worker,
                message,
            } => Some(FlowError::StepPanicked {
                step,
                worker,
                message,
            }),
            Notice::Connector {
                step,
                worker,
                part,
                doing,
                retriable,
                cause,
            } => Some(FlowError::Connector {
                step,
                worker,
                part,
                doing,
                retriable,
                cause: Cause::new(cause),
            }),
            Notice::Other(message) => Some(FlowError::Cluster(format!("another process failed: {message}"))),
        }
    }
}

/// One worker's ends of the control channel.
pub(crate) struct Control {
    to: Vec<Box<dyn Push<Bincode<Notice>>>>,
    from: Box<dyn Pull<Bincode<Notice>>>,
}

impl Control {
    /// Allocates the channel. Every worker of the cluster must call this at the same point
    /// (before any dataflow is built), so that all get the same channel identifier.
    pub(crate) fn new(worker: &mut Worker) -> Control {
        let identifier = worker.new_identifier();
        // The address names no dataflow: arrivals wake the worker but schedule nothing, and
        // the worker reads the channel itself in its step loop.
        let (to, from) = worker.allocate(identifier, Rc::from([usize::MAX]));
        Control { to, from }
    }

    /// Applies what peers said: stops this process's execution with their error.
    #[inline]
    pub(crate) fn poll(&mut self, failure: &Failure) {
        while let Some(notice) = self.from.recv() {
            match notice.payload.into_error() {
                Some(err) => failure.fail_from_peer(err),
                None => failure.abort_from_peer(),
            }
        }
    }

    /// Tells every worker of the cluster that this process failed (or aborted), and hands
    /// the messages to the network threads. Call after dropping the failed dataflows.
    pub(crate) fn broadcast(&mut self, worker: &mut Worker, failure: &Failure) {
        let notice = match failure.error() {
            Some(err) => Notice::from_error(&err),
            None => Notice::Abort,
        };
        for to in &mut self.to {
            to.send(Bincode::from(notice.clone()));
            to.done();
        }
        // Stepping releases the staged bytes to the network threads.
        worker.step();
    }
}
