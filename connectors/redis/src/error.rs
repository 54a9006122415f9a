//! [`RedisError`]: what went wrong, naming the server and the stream.

/// An error of the Redis Streams connectors; the Redis client's error is its
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The URL does not parse.
    #[error("bad Redis URL {url:?}")]
    Url {
        /// The URL (without its password).
        url: String,
        /// Why.
        #[source]
        source: redis::RedisError,
    },
    /// The server could not be reached.
    #[error("cannot connect to Redis at {at}")]
    Connect {
        /// `host:port`.
        at: String,
        /// Why.
        #[source]
        source: redis::RedisError,
    },
    /// A command failed.
    #[error("cannot {doing} on Redis at {at}")]
    Command {
        /// What the connector was doing, naming the stream.
        doing: String,
        /// `host:port`.
        at: String,
        /// Why.
        #[source]
        source: redis::RedisError,
    },
    /// A stream to read does not exist, or is not a stream.
    #[error("Redis at {at} has no stream {stream:?} ({found})")]
    NoStream {
        /// `host:port`.
        at: String,
        /// The key.
        stream: String,
        /// What the key is instead (`none` when missing).
        found: String,
    },
    /// The server answered something a stream read cannot be.
    #[error("unexpected reply to {doing} on stream {stream:?}: {reply}")]
    Reply {
        /// The command.
        doing: &'static str,
        /// The key.
        stream: String,
        /// The reply, abridged.
        reply: String,
    },
}

impl RedisError {
    /// Whether the server went away (worth retrying later).
    pub fn is_transient(&self) -> bool {
        match self {
            RedisError::Connect { .. } => true,
            RedisError::Command { source, .. } => {
                source.is_io_error() || source.is_connection_dropped() || source.is_timeout()
            }
            _ => false,
        }
    }
}

/// Marks a connection loss retriable.
pub(crate) fn into_connector(err: RedisError) -> bwx_runtime::inputs::ConnectorError {
    if err.is_transient() {
        bwx_runtime::inputs::Transient::new(err).into()
    } else {
        err.into()
    }
}
