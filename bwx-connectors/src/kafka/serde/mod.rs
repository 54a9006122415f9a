//! Key and value (de)serializers for the `deserialize_*` / `serialize_*` operators.
//!
//! - JSON ([`JsonDeserializer`], [`JsonSerializer`]) with serde_json;
//! - plain, unframed Avro ([`PlainAvroDeserializer`], [`PlainAvroSerializer`]; feature `avro`);
//! - Avro in the Confluent wire format (magic byte, schema id, datum) through a schema
//!   registry ([`ConfluentAvroDeserializer`], [`ConfluentAvroSerializer`]; feature `avro`).
//!
//! Implement [`Deserializer`] / [`Serializer`] for any other format.

#[cfg(feature = "avro")]
mod avro;
mod json;
#[cfg(feature = "avro")]
mod registry;

#[cfg(feature = "avro")]
pub use avro::{PlainAvroDeserializer, PlainAvroSerializer};
pub use json::{JsonDeserializer, JsonSerializer};
#[cfg(feature = "avro")]
pub use registry::{
    ConfluentAvroDeserializer, ConfluentAvroSerializer, SchemaType, SrSettings, SubjectNameStrategy,
    SuppliedSchema,
};

/// Why bytes could not be decoded or an item encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SerdeError(pub String);

/// Decodes a key or a value.
pub trait Deserializer<T>: Send + Sync + 'static {
    /// The item the bytes encode.
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError>;
}

/// Encodes a key or a value.
pub trait Serializer<T>: Send + Sync + 'static {
    /// The bytes of `item`.
    fn serialize(&self, item: &T) -> Result<Vec<u8>, SerdeError>;
}
