//! [`JetStreamMessage`]: a message read from a stream.

use serde::{Deserialize, Serialize};

/// A message of a JetStream stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JetStreamMessage {
    /// The stream it was read from.
    pub stream: String,
    /// The subject it was published to.
    pub subject: String,
    /// Its sequence in the stream.
    pub sequence: u64,
    /// Its payload.
    pub payload: Vec<u8>,
}
