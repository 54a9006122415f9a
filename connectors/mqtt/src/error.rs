//! [`MqttError`]: what went wrong, naming the broker, client and topic.

/// An error of the MQTT connectors; the client's error is its
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    /// The address is not `host:port`.
    #[error("bad MQTT broker address {0:?}: expected host:port")]
    Address(String),
    /// The broker could not be reached, or refused the client.
    #[error("cannot connect to the MQTT broker at {at} as client {client:?}")]
    Connect {
        /// `host:port`.
        at: String,
        /// The client id.
        client: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The connection broke or a request failed.
    #[error("MQTT client {client:?} at {at}: cannot {doing}")]
    Client {
        /// `host:port`.
        at: String,
        /// The client id.
        client: String,
        /// What it was doing.
        doing: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The broker refused a subscription.
    #[error("the MQTT broker at {at} refused the subscription of client {client:?} to {topic:?}")]
    Refused {
        /// `host:port`.
        at: String,
        /// The client id.
        client: String,
        /// The topic filter.
        topic: String,
    },
    /// The broker did not answer in time.
    #[error("MQTT client {client:?} at {at}: no answer to {waiting} after {seconds} s")]
    Timeout {
        /// `host:port`.
        at: String,
        /// The client id.
        client: String,
        /// What was awaited.
        waiting: String,
        /// How long.
        seconds: u64,
    },
}

impl MqttError {
    /// Whether the broker went away (worth retrying later).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            MqttError::Connect { .. } | MqttError::Client { .. } | MqttError::Timeout { .. }
        )
    }
}

/// Marks a connection failure retriable.
pub(crate) fn into_connector(err: MqttError) -> bwx_runtime::inputs::ConnectorError {
    if err.is_transient() {
        bwx_runtime::inputs::Transient::new(err).into()
    } else {
        err.into()
    }
}
