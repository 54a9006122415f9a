//! [`Cause`]: an error kept as the source of another, shareable between clones. It sits
//! below every error type of the crate, so that each can keep its causes.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A cause shared between the clones of an error (a flow error is cloned to every worker
/// that stops because of it).
#[derive(Clone)]
pub struct Cause(Arc<dyn Error + Send + Sync>);

impl Cause {
    /// Wraps an error as a cause.
    pub fn new(err: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Cause(Arc::from(err.into()))
    }

    /// The error itself.
    pub fn get(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}
