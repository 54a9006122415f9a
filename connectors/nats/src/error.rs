//! [`NatsError`]: what went wrong, naming the server, stream and subject.

/// The client's errors, boxed (they are of many types).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// An error of the NATS JetStream connectors; the client's error is its
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The server could not be reached.
    #[error("cannot connect to NATS at {at}")]
    Connect {
        /// The server address.
        at: String,
        /// Why.
        #[source]
        source: Cause,
    },
    /// A request to the server failed.
    #[error("cannot {doing} on NATS at {at}")]
    Request {
        /// What the connector was doing, naming the stream or subject.
        doing: String,
        /// The server address.
        at: String,
        /// Why.
        #[source]
        source: Cause,
    },
    /// Messages after the position the recovery state resumes from are no longer in the
    /// stream (acknowledged in a work-queue stream, removed by its limits or a purge).
    #[error(
        "stream {stream:?} starts at sequence {first}, but the recovery state resumes after sequence {resumed}: the messages in between are gone (acknowledged in a work-queue stream, removed by the stream's limits or purged), or the recovery store is older than the stream (a restored backup?)"
    )]
    MessagesGone {
        /// The stream.
        stream: String,
        /// The first sequence the stream holds.
        first: u64,
        /// The last sequence the recovery state covers.
        resumed: u64,
    },
    /// The tokio runtime of the connector could not start.
    #[error("cannot start the NATS client's runtime")]
    Runtime(#[source] std::io::Error),
}

impl NatsError {
    /// Whether the server went away (worth retrying later).
    pub fn is_transient(&self) -> bool {
        matches!(self, NatsError::Connect { .. })
    }
}

/// Marks a connection failure retriable.
pub(crate) fn into_connector(err: NatsError) -> bwx_runtime::inputs::ConnectorError {
    if err.is_transient() {
        bwx_runtime::inputs::Transient::new(err).into()
    } else {
        err.into()
    }
}
