//! Avro in the Confluent wire format (byte 0, a 4-byte schema id, the datum), with schemas
//! fetched from and registered in a schema registry by `schema_registry_converter`.
//!
//! Both sides cache schemas by id or subject, so the registry is asked once per schema.
//! The calls block the worker; they happen on the first message of each schema only.

use std::fmt;
use std::marker::PhantomData;

use schema_registry_converter::blocking::avro::{AvroDecoder, AvroEncoder};
pub use schema_registry_converter::blocking::schema_registry::SrSettings;
pub use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Deserializer, SerdeError, Serializer};

/// Decodes Confluent-framed Avro into a serde `T`, looking writer schemas up by id.
pub struct ConfluentAvroDeserializer<T> {
    decoder: AvroDecoder,
    _item: PhantomData<fn() -> T>,
}

impl<T> ConfluentAvroDeserializer<T> {
    /// A deserializer using the registry at `url` (e.g. `http://127.0.0.1:8081`).
    pub fn new(url: &str) -> Self {
        Self::with_settings(SrSettings::new(url.to_string()))
    }

    /// A deserializer with full registry settings (several URLs, authentication, timeout).
    pub fn with_settings(settings: SrSettings) -> Self {
        ConfluentAvroDeserializer {
            decoder: AvroDecoder::new(settings),
            _item: PhantomData,
        }
    }
}

// The registry settings may hold credentials: they are never printed.
impl<T> fmt::Debug for ConfluentAvroDeserializer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConfluentAvroDeserializer")
    }
}

impl<T: DeserializeOwned + 'static> Deserializer<T> for ConfluentAvroDeserializer<T> {
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError> {
        let decoded = self
            .decoder
            .decode(Some(bytes))
            .map_err(|e| SerdeError(format!("cannot decode Confluent Avro: {e}")))?;
        apache_avro::from_value(&decoded.value)
            .map_err(|e| SerdeError(format!("Avro datum does not fit the type: {e}")))
    }
}

/// Encodes serde items as Confluent-framed Avro under a subject, registering the schema
/// the strategy supplies (or using the subject's latest one).
pub struct ConfluentAvroSerializer {
    encoder: AvroEncoder,
    strategy: SubjectNameStrategy,
}

impl ConfluentAvroSerializer {
    /// A serializer using the registry at `url` and this subject strategy, e.g.
    /// `SubjectNameStrategy::TopicNameStrategyWithSchema(topic, false, schema)` to register
    /// the value schema of `topic`.
    pub fn new(url: &str, strategy: SubjectNameStrategy) -> Self {
        Self::with_settings(SrSettings::new(url.to_string()), strategy)
    }

    /// A serializer with full registry settings.
    pub fn with_settings(settings: SrSettings, strategy: SubjectNameStrategy) -> Self {
        ConfluentAvroSerializer {
            encoder: AvroEncoder::new(settings),
            strategy,
        }
    }
}

impl fmt::Debug for ConfluentAvroSerializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfluentAvroSerializer")
            .field("strategy", &self.strategy)
            .finish()
    }
}

impl<T: Serialize> Serializer<T> for ConfluentAvroSerializer {
    fn serialize(&self, item: &T) -> Result<Vec<u8>, SerdeError> {
        self.encoder
            .encode_struct(item, &self.strategy)
            .map_err(|e| SerdeError(format!("cannot encode Confluent Avro: {e}")))
    }
}
