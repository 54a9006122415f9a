//! Plain (unframed) Avro datums with apache-avro: the schema is known to both sides.

use std::fmt;
use std::marker::PhantomData;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Deserializer, SerdeError, Serializer};

/// Parses an Avro schema, naming what is wrong.
fn parse(schema: &str) -> Result<Schema, SerdeError> {
    Schema::parse_str(schema).map_err(|e| SerdeError(format!("invalid Avro schema: {e}")))
}

/// Decodes Avro datums written with `schema` into a serde `T`.
pub struct PlainAvroDeserializer<T> {
    schema: Schema,
    _item: PhantomData<fn() -> T>,
}

impl<T> PlainAvroDeserializer<T> {
    /// A deserializer for datums written with this schema (Avro JSON).
    pub fn new(schema: &str) -> Result<Self, SerdeError> {
        Ok(PlainAvroDeserializer {
            schema: parse(schema)?,
            _item: PhantomData,
        })
    }
}

impl<T> fmt::Debug for PlainAvroDeserializer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainAvroDeserializer")
            .field("schema", &self.schema)
            .finish()
    }
}

impl<T: DeserializeOwned + 'static> Deserializer<T> for PlainAvroDeserializer<T> {
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError> {
        let mut reader = bytes;
        let item = GenericDatumReader::builder(&self.schema)
            .build()
            .and_then(|r| r.read_deser(&mut reader))
            .map_err(|e| SerdeError(format!("invalid Avro datum: {e}")))?;
        if !reader.is_empty() {
            return Err(SerdeError(format!(
                "invalid Avro datum: {} bytes left after the datum",
                reader.len()
            )));
        }
        Ok(item)
    }
}

/// Encodes serde items as Avro datums of `schema`.
#[derive(Debug)]
pub struct PlainAvroSerializer {
    schema: Schema,
}

impl PlainAvroSerializer {
    /// A serializer writing datums of this schema (Avro JSON).
    pub fn new(schema: &str) -> Result<Self, SerdeError> {
        Ok(PlainAvroSerializer {
            schema: parse(schema)?,
        })
    }
}

impl<T: Serialize> Serializer<T> for PlainAvroSerializer {
    fn serialize(&self, item: &T) -> Result<Vec<u8>, SerdeError> {
        GenericDatumWriter::builder(&self.schema)
            .build()
            .and_then(|w| w.write_ser_to_vec(item))
            .map_err(|e| SerdeError(format!("item does not fit the Avro schema: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    const SCHEMA: &str = r#"{"type":"record","name":"Reading","fields":[
        {"name":"sensor","type":"string"},{"name":"value","type":"double"}]}"#;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Reading {
        sensor: String,
        value: f64,
    }

    #[test]
    fn round_trip_and_errors() {
        let r = Reading {
            sensor: "a".into(),
            value: 1.5,
        };
        let bytes = PlainAvroSerializer::new(SCHEMA).unwrap().serialize(&r).unwrap();
        let de = PlainAvroDeserializer::<Reading>::new(SCHEMA).unwrap();
        assert_eq!(de.deserialize(&bytes).unwrap(), r);
        assert!(de.deserialize(&[0xff]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(de.deserialize(&longer).unwrap_err().0.contains("left after"));
        assert!(PlainAvroSerializer::new("{nope").is_err());
    }
}
