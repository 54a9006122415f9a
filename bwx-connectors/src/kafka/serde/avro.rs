//! Plain (unframed) Avro datums with apache-avro: the schema is known to both sides. Also
//! the strict datum decoding that the Confluent Avro format shares.

use std::fmt;
use std::io::{self, Read};
use std::marker::PhantomData;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as AvroValue;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Deserializer, SerdeContext, SerdeError, Serializer};

/// A schema with the named schemas it references (Avro records, enums and fixed types
/// defined elsewhere, Bytewax's `named_schemas`, the registry's schema references).
#[derive(Clone, Debug)]
pub(crate) struct AvroSchemas {
    main: Schema,
    named: Vec<Schema>,
}

impl AvroSchemas {
    /// Parses `main`, resolving the names it uses among `named` (each an Avro JSON schema).
    pub(crate) fn parse<S: AsRef<str>>(main: &str, named: &[S]) -> Result<Self, SerdeError> {
        let (main, named) = if named.is_empty() {
            (Schema::parse_str(main), Vec::new())
        } else {
            match Schema::parse_str_with_list(main, named.iter().map(AsRef::as_ref)) {
                Ok((main, named)) => (Ok(main), named),
                Err(e) => (Err(e), Vec::new()),
            }
        };
        Ok(AvroSchemas {
            main: main.map_err(|e| SerdeError::invalid("invalid Avro schema").caused_by(e))?,
            named,
        })
    }

    /// The schema and every schema it references, for name resolution.
    fn all(&self) -> Vec<&Schema> {
        self.named.iter().chain(std::iter::once(&self.main)).collect()
    }

    /// The record (or enum, fixed) full name of the main schema, if it is named.
    pub(crate) fn full_name(&self) -> Option<String> {
        self.main.name().map(|n| n.fullname(None))
    }

    /// Decodes exactly one datum that fills `bytes`: a truncated datum, bytes left after
    /// it, or a datum that does not fit `T` are errors, never a partial value.
    pub(crate) fn decode<T: DeserializeOwned + 'static>(&self, bytes: &[u8]) -> Result<T, SerdeError> {
        let mut reader = DatumReader { rest: bytes };
        let value = GenericDatumReader::builder(&self.main)
            .writer_schemata(self.all())
            .and_then(|b| b.build())
            .and_then(|r| r.read_value(&mut reader))
            .map_err(|e| {
                SerdeError::invalid(format!(
                    "invalid Avro datum ({} bytes; failed after reading {} of them)",
                    bytes.len(),
                    bytes.len() - reader.rest.len()
                ))
                .caused_by(e)
            })?;
        if !reader.rest.is_empty() {
            return Err(SerdeError::invalid(format!(
                "invalid Avro datum: {} bytes left after a complete datum of {} bytes",
                reader.rest.len(),
                bytes.len() - reader.rest.len()
            )));
        }
        // JSON has no bytes: into `serde_json::Value`, Avro bytes and fixed values become
        // arrays of numbers.
        let value = if std::any::TypeId::of::<T>() == std::any::TypeId::of::<serde_json::Value>() {
            bytes_as_arrays(value)
        } else {
            value
        };
        apache_avro::from_value(&value)
            .map_err(|e| SerdeError::invalid("the Avro datum does not fit the type").caused_by(e))
    }

    /// Encodes `item` as a datum of the main schema, appended to `out`.
    pub(crate) fn encode<T: Serialize>(&self, item: &T, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        let datum = GenericDatumWriter::builder(&self.main)
            .schemata(self.all())
            .and_then(|b| b.build())
            .and_then(|w| w.write_ser_to_vec(item))
            .map_err(|e| SerdeError::invalid("the item does not fit the Avro schema").caused_by(e))?;
        out.extend_from_slice(&datum);
        Ok(())
    }
}

/// `value` with every bytes and fixed value replaced by an array of ints.
fn bytes_as_arrays(value: AvroValue) -> AvroValue {
    let ints = |b: Vec<u8>| AvroValue::Array(b.into_iter().map(|x| AvroValue::Int(x.into())).collect());
    match value {
        AvroValue::Bytes(b) | AvroValue::Fixed(_, b) => ints(b),
        AvroValue::Union(i, v) => AvroValue::Union(i, Box::new(bytes_as_arrays(*v))),
        AvroValue::Array(items) => AvroValue::Array(items.into_iter().map(bytes_as_arrays).collect()),
        AvroValue::Map(items) => {
            AvroValue::Map(items.into_iter().map(|(k, v)| (k, bytes_as_arrays(v))).collect())
        }
        AvroValue::Record(fields) => {
            AvroValue::Record(fields.into_iter().map(|(k, v)| (k, bytes_as_arrays(v))).collect())
        }
        other => other,
    }
}

/// The bytes of one datum, for apache-avro's decoder. Running out of bytes is an
/// `InvalidData` error, not an end of file: apache-avro decodes a string, a boolean or a
/// union index cut off by the end of its input as a null (a convenience of its file
/// reader), which would turn a truncated datum into a wrong value.
struct DatumReader<'a> {
    rest: &'a [u8],
}

impl Read for DatumReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.rest.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the datum ends before its schema does (truncated)",
            ));
        }
        let n = buf.len().min(self.rest.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

/// Decodes Avro datums written with `schema` into a serde `T` (a struct, or
/// `serde_json::Value` for any datum).
///
/// ```
/// use bwx::connectors::kafka::serde::{Deserializer, PlainAvroDeserializer, SerdeContext};
///
/// let point = r#"{"type":"record","name":"Point","fields":[{"name":"x","type":"long"}]}"#;
/// let line = r#"{"type":"record","name":"Line","fields":[
///     {"name":"from","type":"Point"},{"name":"to","type":"Point"}]}"#;
/// let de = PlainAvroDeserializer::<serde_json::Value>::with_named_schemas(line, &[point]).unwrap();
/// let ctx = SerdeContext::value("lines");
/// assert_eq!(de.deserialize(&[2, 4], &ctx).unwrap(), serde_json::json!({"from": {"x": 1}, "to": {"x": 2}}));
/// // Truncated, or with bytes left over: errors, never a partial value.
/// assert!(de.deserialize(&[2], &ctx).is_err());
/// assert!(de.deserialize(&[2, 4, 0], &ctx).is_err());
/// ```
pub struct PlainAvroDeserializer<T> {
    schemas: AvroSchemas,
    _item: PhantomData<fn() -> T>,
}

impl<T> PlainAvroDeserializer<T> {
    /// A deserializer for datums written with this schema (Avro JSON).
    pub fn new(schema: &str) -> Result<Self, SerdeError> {
        Self::with_named_schemas(schema, &[] as &[&str])
    }

    /// A deserializer for a schema that uses named types defined in `named` (each an Avro
    /// JSON schema of a record, enum or fixed type; Bytewax's `named_schemas`).
    pub fn with_named_schemas<S: AsRef<str>>(schema: &str, named: &[S]) -> Result<Self, SerdeError> {
        Ok(PlainAvroDeserializer {
            schemas: AvroSchemas::parse(schema, named)?,
            _item: PhantomData,
        })
    }
}

impl<T> fmt::Debug for PlainAvroDeserializer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainAvroDeserializer")
            .field("schema", &self.schemas.main)
            .finish()
    }
}

impl<T: DeserializeOwned + 'static> Deserializer<T> for PlainAvroDeserializer<T> {
    fn deserialize(&self, bytes: &[u8], _: &SerdeContext<'_>) -> Result<T, SerdeError> {
        self.schemas.decode(bytes)
    }
}

/// Encodes serde items as Avro datums of `schema`.
#[derive(Debug)]
pub struct PlainAvroSerializer {
    schemas: AvroSchemas,
}

impl PlainAvroSerializer {
    /// A serializer writing datums of this schema (Avro JSON).
    pub fn new(schema: &str) -> Result<Self, SerdeError> {
        Self::with_named_schemas(schema, &[] as &[&str])
    }

    /// A serializer for a schema that uses named types defined in `named`.
    pub fn with_named_schemas<S: AsRef<str>>(schema: &str, named: &[S]) -> Result<Self, SerdeError> {
        Ok(PlainAvroSerializer {
            schemas: AvroSchemas::parse(schema, named)?,
        })
    }
}

impl<T: Serialize> Serializer<T> for PlainAvroSerializer {
    fn serialize(&self, item: &T, _: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError> {
        let mut out = Vec::new();
        self.schemas.encode(item, &mut out)?;
        Ok(out)
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

    const CTX: SerdeContext<'static> = SerdeContext {
        topic: Some("t"),
        field: super::super::MessageField::Value,
    };

    #[test]
    fn round_trip_and_errors() {
        let r = Reading {
            sensor: "a".into(),
            value: 1.5,
        };
        let bytes = PlainAvroSerializer::new(SCHEMA)
            .unwrap()
            .serialize(&r, &CTX)
            .unwrap();
        let de = PlainAvroDeserializer::<Reading>::new(SCHEMA).unwrap();
        assert_eq!(de.deserialize(&bytes, &CTX).unwrap(), r);
        assert!(de.deserialize(&[0xff], &CTX).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            de.deserialize(&longer, &CTX)
                .unwrap_err()
                .to_string()
                .contains("1 bytes left")
        );
        assert!(PlainAvroSerializer::new("{nope").is_err());
    }

    /// The payloads of the corrupt-Confluent report, without their 5-byte frame: both are
    /// errors through `serde_json::Value` and through a struct.
    #[test]
    fn truncated_and_overlong_datums_are_errors_generic_and_typed() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Rec {
            id: i64,
            name: String,
        }
        let schema = r#"{"type":"record","name":"Rec","fields":[
            {"name":"id","type":"long"},{"name":"name","type":"string"}]}"#;
        let truncated = [0x08, 0x0c, 0x64, 0x64, 0x64];
        let trailing = [0x0e, 0x02, 0x67, 0x00, 0x01, 0x02];
        let generic = PlainAvroDeserializer::<serde_json::Value>::new(schema).unwrap();
        let typed = PlainAvroDeserializer::<Rec>::new(schema).unwrap();
        for err in [
            generic.deserialize(&truncated, &CTX).unwrap_err(),
            typed.deserialize(&truncated, &CTX).unwrap_err(),
        ] {
            let text = super::super::with_causes(&err);
            assert!(
                text.contains("invalid Avro datum (5 bytes; failed after reading 5 of them)"),
                "{text}"
            );
            assert!(text.contains("truncated"), "{text}");
        }
        for err in [
            generic.deserialize(&trailing, &CTX).unwrap_err(),
            typed.deserialize(&trailing, &CTX).unwrap_err(),
        ] {
            assert_eq!(
                err.to_string(),
                "invalid Avro datum: 3 bytes left after a complete datum of 3 bytes"
            );
        }
        assert_eq!(
            generic.deserialize(&trailing[..3], &CTX).unwrap(),
            serde_json::json!({"id": 7, "name": "g"})
        );
    }

    /// apache-avro reads a union index, a boolean or a string cut off by the end of its
    /// input as a null; every one of them is an error here.
    #[test]
    fn no_truncation_reads_as_null() {
        let schema = r#"{"type":"record","name":"R","fields":[
            {"name":"id","type":"long"},{"name":"flag","type":"boolean"},
            {"name":"note","type":["null","string"]}]}"#;
        let de = PlainAvroDeserializer::<serde_json::Value>::new(schema).unwrap();
        let full = [0x08, 0x01, 0x02, 0x02, 0x68];
        assert_eq!(
            de.deserialize(&full, &CTX).unwrap(),
            serde_json::json!({"id": 4, "flag": true, "note": "h"})
        );
        for cut in 0..full.len() {
            assert!(de.deserialize(&full[..cut], &CTX).is_err(), "{cut} bytes decoded");
        }
    }

    #[test]
    fn named_schemas_resolve_in_both_directions() {
        let kind = r#"{"type":"enum","name":"Kind","namespace":"bwx","symbols":["A","B"]}"#;
        let item = r#"{"type":"record","name":"Item","namespace":"bwx","fields":[
            {"name":"kind","type":"bwx.Kind"},{"name":"n","type":"int"}]}"#;
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        enum Kind {
            A,
            B,
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Item {
            kind: Kind,
            n: i32,
        }
        let ser = PlainAvroSerializer::with_named_schemas(item, &[kind]).unwrap();
        let de = PlainAvroDeserializer::<Item>::with_named_schemas(item, &[kind]).unwrap();
        let it = Item { kind: Kind::B, n: 3 };
        let bytes = ser.serialize(&it, &CTX).unwrap();
        assert_eq!(bytes, [2, 6]);
        assert_eq!(de.deserialize(&bytes, &CTX).unwrap(), it);
        // Without the named schema, the reference is an error naming it.
        let err = PlainAvroDeserializer::<Item>::new(item).unwrap_err();
        assert!(super::super::with_causes(&err).contains("bwx.Kind"), "{err:?}");
    }
}
