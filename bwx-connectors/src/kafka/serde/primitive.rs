//! Kafka's primitive formats, byte for byte as Kafka's own (Java) serializers and Confluent's
//! clients write them: UTF-8 strings, big-endian 32- and 64-bit integers, big-endian IEEE 754
//! doubles and UUIDs in their 36-character text form. Each type both serializes and
//! deserializes; decoding is strict (a wrong length is an error naming it).

use uuid::Uuid;

use super::{Deserializer, SerdeContext, SerdeError, Serializer};

/// A UTF-8 string (Kafka's `StringSerializer`); invalid UTF-8 is an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct StringSerde;

/// A 32-bit signed integer, 4 bytes big-endian (Kafka's `IntegerSerializer`).
#[derive(Clone, Copy, Debug, Default)]
pub struct IntSerde;

/// A 64-bit signed integer, 8 bytes big-endian (Kafka's `LongSerializer`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LongSerde;

/// A 64-bit float, 8 bytes big-endian IEEE 754 (Kafka's `DoubleSerializer`).
#[derive(Clone, Copy, Debug, Default)]
pub struct DoubleSerde;

/// A UUID as its 36-character hyphenated text (Kafka's `UUIDSerializer`), e.g.
/// `67e55044-10b1-426f-9247-bb680e5fe0c8`.
#[derive(Clone, Copy, Debug, Default)]
pub struct UuidSerde;

impl Serializer<String> for StringSerde {
    fn serialize(&self, item: &String, _: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError> {
        Ok(item.as_bytes().to_vec())
    }
}

impl Deserializer<String> for StringSerde {
    fn deserialize(&self, bytes: &[u8], _: &SerdeContext<'_>) -> Result<String, SerdeError> {
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|e| SerdeError::invalid("not UTF-8 text").caused_by(e))
    }
}

/// The bytes as an array of exactly `N`, or an error naming the type and the length.
fn exactly<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], SerdeError> {
    bytes
        .try_into()
        .map_err(|_| SerdeError::invalid(format!("{what} takes exactly {N} bytes, got {}", bytes.len())))
}

impl Serializer<i32> for IntSerde {
    fn serialize(&self, item: &i32, _: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError> {
        Ok(item.to_be_bytes().to_vec())
    }
}

impl Deserializer<i32> for IntSerde {
    fn deserialize(&self, bytes: &[u8], _: &SerdeContext<'_>) -> Result<i32, SerdeError> {
        exactly(bytes, "a Kafka int").map(i32::from_be_bytes)
    }
}

impl Serializer<i64> for LongSerde {
    fn serialize(&self, item: &i64, _: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError> {
        Ok(item.to_be_bytes().to_vec())
    }
}

impl Deserializer<i64> for LongSerde {
    fn deserialize(&self, bytes: &[u8], _: &SerdeContext<'_>) -> Result<i64, SerdeError> {
        exactly(bytes, "a Kafka long").map(i64::from_be_bytes)
    }
}

impl Serializer<f64> for DoubleSerde {
    fn serialize(&self, item: &f64, _: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError> {
        Ok(item.to_be_bytes().to_vec())
    }
}

impl Deserializer<f64> for DoubleSerde {
    fn deserialize(&self, bytes: &[u8], _: &SerdeContext<'_>) -> Result<f64, SerdeError> {
        exactly(bytes, "a Kafka double").map(f64::from_be_bytes)
    }
}

impl Serializer<Uuid> for UuidSerde {
    fn serialize(&self, item: &Uuid, _: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError> {
        Ok(item.hyphenated().to_string().into_bytes())
    }
}

impl Deserializer<Uuid> for UuidSerde {
    fn deserialize(&self, bytes: &[u8], _: &SerdeContext<'_>) -> Result<Uuid, SerdeError> {
        // Only the hyphenated form Kafka writes; `Uuid::try_parse` alone also takes others.
        if bytes.len() != 36 {
            return Err(SerdeError::invalid(format!(
                "a Kafka UUID is 36 characters of text, got {} bytes",
                bytes.len()
            )));
        }
        Uuid::try_parse_ascii(bytes).map_err(|e| SerdeError::invalid("not a UUID").caused_by(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: SerdeContext<'static> = SerdeContext {
        topic: Some("t"),
        field: super::super::MessageField::Value,
    };

    #[test]
    fn bytes_are_kafkas() {
        assert_eq!(IntSerde.serialize(&-2, &CTX).unwrap(), [0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(LongSerde.serialize(&1, &CTX).unwrap(), [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            DoubleSerde.serialize(&1.5, &CTX).unwrap(),
            [0x3f, 0xf8, 0, 0, 0, 0, 0, 0]
        );
        let id = Uuid::from_u128(0x67e55044_10b1_426f_9247_bb680e5fe0c8);
        assert_eq!(
            UuidSerde.serialize(&id, &CTX).unwrap(),
            b"67e55044-10b1-426f-9247-bb680e5fe0c8"
        );
        assert_eq!(
            UuidSerde
                .deserialize(b"67e55044-10b1-426f-9247-bb680e5fe0c8", &CTX)
                .unwrap(),
            id
        );
        assert_eq!(IntSerde.deserialize(&[0, 0, 1, 0], &CTX).unwrap(), 256);
        assert_eq!(StringSerde.deserialize("é".as_bytes(), &CTX).unwrap(), "é");
    }

    #[test]
    fn wrong_lengths_and_text_are_errors() {
        let err = IntSerde.deserialize(&[0, 0, 1], &CTX).unwrap_err();
        assert_eq!(err.to_string(), "a Kafka int takes exactly 4 bytes, got 3");
        assert!(LongSerde.deserialize(&[0; 9], &CTX).is_err());
        assert!(DoubleSerde.deserialize(&[], &CTX).is_err());
        assert!(StringSerde.deserialize(&[0xff], &CTX).is_err());
        assert!(
            UuidSerde
                .deserialize(b"67e5504410b1426f9247bb680e5fe0c8", &CTX)
                .is_err()
        );
        assert!(
            UuidSerde
                .deserialize(b"67e55044-10b1-426f-9247-bb680e5fe0cX", &CTX)
                .is_err()
        );
    }
}
