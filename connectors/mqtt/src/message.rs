//! [`MqttMessage`]: a message received from a subscription.

use serde::{Deserialize, Serialize};

/// A message received by an [`crate::MqttSource`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttMessage {
    /// The topic it was published to.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
}
