//! [`StepId`]: the dotted id of a step, which names it in errors, logs, metrics and recovery
//! state. It sits below everything else, so that the contracts (sources, sinks, recovery)
//! can name steps without depending on the flow builder.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A dotted step id such as `wordcount.count`; cheap to clone.
///
/// The flow makes the ids of its steps; make one yourself to call a connector's
/// `build_part` or `build` in a test of the connector, as the engine would:
///
/// ```
/// use bwx::prelude::*;
/// use bwx::testing::TestingSource;
///
/// let step = StepId::new("flow.inp".to_string());
/// assert_eq!(step.as_str(), "flow.inp");
/// assert_eq!(step, StepId::from("flow.inp"));
/// let mut part = TestingSource::new(vec![1, 2]).build_part(&step, "iterable", None).unwrap();
/// let mut batch = Vec::new();
/// part.next_batch(&mut batch).unwrap();
/// assert_eq!(batch, vec![1]);
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepId(Arc<str>);

impl StepId {
    /// The step id `id`, such as `"wordcount.count"` (the flow id, then the step's name,
    /// and the names of the operators it is nested in, separated by dots).
    pub fn new(id: String) -> Self {
        StepId(id.into())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for StepId {
    fn from(id: &str) -> Self {
        StepId(id.into())
    }
}

impl From<String> for StepId {
    fn from(id: String) -> Self {
        StepId::new(id)
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for StepId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StepId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(StepId::new)
    }
}
