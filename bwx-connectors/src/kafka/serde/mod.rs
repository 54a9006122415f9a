//! Key and value (de)serializers for the `deserialize*` / `serialize*` operators.
//!
//! - JSON ([`JsonDeserializer`], [`JsonSerializer`]) with serde_json;
//! - Kafka's primitive formats, as Kafka's and Confluent's clients write them
//!   ([`StringSerde`], [`IntSerde`], [`LongSerde`], [`DoubleSerde`], [`UuidSerde`]);
//! - plain, unframed Avro, with named schemas ([`PlainAvroDeserializer`],
//!   [`PlainAvroSerializer`]; feature `avro`);
//! - the Confluent wire format (magic byte 0, a 4-byte schema id, the payload) through a
//!   [`SchemaRegistry`]: Avro (feature `avro`), JSON Schema (feature `json-schema`) and
//!   Protobuf (feature `protobuf`).
//!
//! Decoding is strict: a datum that is truncated, has bytes left after it, or does not fit
//! its schema is an error, never a partial value. An error says whether the bytes are at
//! fault ([`SerdeErrorKind::Invalid`]: the operators put the message on `errs`) or a service
//! the (de)serializer needs is ([`SerdeErrorKind::Unavailable`]: a schema registry that did
//! not answer within its retry limit; the operators stop the flow rather than divert good
//! messages).
//!
//! Implement [`Deserializer`] / [`Serializer`] for any other format.

#[cfg(feature = "avro")]
mod avro;
#[cfg(feature = "avro")]
mod confluent_avro;
mod json;
#[cfg(feature = "json-schema")]
mod json_schema;
mod primitive;
#[cfg(feature = "protobuf")]
mod protobuf;
#[cfg(feature = "schema-registry")]
pub mod registry;

use std::error::Error;
use std::fmt;
use std::sync::Arc;

#[cfg(feature = "avro")]
pub use avro::{PlainAvroDeserializer, PlainAvroSerializer};
#[cfg(feature = "avro")]
pub use confluent_avro::{ConfluentAvroDeserializer, ConfluentAvroSerializer};
pub use json::{JsonDeserializer, JsonSerializer};
#[cfg(feature = "json-schema")]
pub use json_schema::{ConfluentJsonDeserializer, ConfluentJsonSerializer};
pub use primitive::{DoubleSerde, IntSerde, LongSerde, StringSerde, UuidSerde};
#[cfg(feature = "protobuf")]
pub use protobuf::{ConfluentProtobufDeserializer, ConfluentProtobufSerializer};
#[cfg(feature = "schema-registry")]
pub use registry::{
    RegisteredSchema, RegistryError, RegistryErrorKind, RetryPolicy, SchemaReference, SchemaRegistry,
    SchemaType, SubjectName,
};
/// The UUID type [`UuidSerde`] reads and writes.
pub use uuid::Uuid;

/// Which part of a message is (de)serialized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageField {
    /// The key.
    Key,
    /// The value.
    Value,
}

impl fmt::Display for MessageField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageField::Key => "key",
            MessageField::Value => "value",
        })
    }
}

/// What is being (de)serialized: the message's topic (if it has one; a sink message may
/// leave it to the sink) and whether it is the key or the value. Serializers that name
/// schema-registry subjects after the topic use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SerdeContext<'a> {
    /// The message's topic.
    pub topic: Option<&'a str>,
    /// Key or value.
    pub field: MessageField,
}

impl<'a> SerdeContext<'a> {
    /// The key of a message of `topic`.
    pub fn key(topic: &'a str) -> Self {
        SerdeContext {
            topic: Some(topic),
            field: MessageField::Key,
        }
    }

    /// The value of a message of `topic`.
    pub fn value(topic: &'a str) -> Self {
        SerdeContext {
            topic: Some(topic),
            field: MessageField::Value,
        }
    }
}

/// Whose fault a (de)serialization error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SerdeErrorKind {
    /// The bytes (or the item) are at fault: trying again cannot help. The operators put
    /// the message on `errs`.
    Invalid,
    /// A service the (de)serializer needs failed (a schema registry down past the retry
    /// limit, or refusing the credentials): the message is not at fault. The operators stop
    /// the flow instead of diverting it.
    Unavailable,
}

/// Why bytes could not be decoded or an item encoded; keeps its cause ([`Error::source`]).
#[derive(Clone)]
pub struct SerdeError {
    kind: SerdeErrorKind,
    message: String,
    source: Option<Arc<dyn Error + Send + Sync>>,
}

impl SerdeError {
    /// The bytes or the item are at fault.
    pub fn invalid(message: impl Into<String>) -> Self {
        SerdeError {
            kind: SerdeErrorKind::Invalid,
            message: message.into(),
            source: None,
        }
    }

    /// A service the (de)serializer needs failed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        SerdeError {
            kind: SerdeErrorKind::Unavailable,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn caused_by(mut self, source: impl Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Whose fault it is.
    pub fn kind(&self) -> SerdeErrorKind {
        self.kind
    }

    /// What went wrong, without the causes.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for SerdeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdeError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl fmt::Display for SerdeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for SerdeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// `error` and its causes, joined by `: ` (what an `errs` item or a log line shows).
pub(crate) fn with_causes(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        // Some errors repeat their cause in their own text.
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// Decodes a key or a value.
pub trait Deserializer<T>: Send + Sync + 'static {
    /// The item the bytes encode.
    fn deserialize(&self, bytes: &[u8], ctx: &SerdeContext<'_>) -> Result<T, SerdeError>;
}

/// Encodes a key or a value.
pub trait Serializer<T>: Send + Sync + 'static {
    /// The bytes of `item`.
    fn serialize(&self, item: &T, ctx: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_kept_and_shown_once() {
        let io = std::io::Error::other("connection refused");
        let e = SerdeError::unavailable("the registry did not answer").caused_by(io);
        assert_eq!(e.kind(), SerdeErrorKind::Unavailable);
        assert_eq!(e.source().unwrap().to_string(), "connection refused");
        assert_eq!(with_causes(&e), "the registry did not answer: connection refused");
    }
}
