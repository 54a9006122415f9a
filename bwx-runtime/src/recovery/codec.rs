//! Encoding of keys and state for recovery.
//!
//! State is MessagePack with named fields (rmp-serde), self-describing, so a state struct
//! that gains a `#[serde(default)]` field still reads old snapshots. Every state blob starts
//! with a tag byte naming its codec, so the codec can change later without guessing.
//! Keys are MessagePack too (compact form): equal keys give equal bytes.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Tag byte of MessagePack-with-named-fields state.
pub const TAG_MSGPACK_NAMED: u8 = 1;

/// Why a blob could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The blob is empty.
    #[error("empty state blob")]
    Empty,
    /// The tag byte names no known codec.
    #[error("unknown state codec tag {0}")]
    UnknownTag(u8),
    /// Serialization failed.
    #[error("cannot encode state: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// Deserialization failed.
    #[error("cannot decode state: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
}

/// Encodes state: tag byte, then MessagePack with named fields.
pub fn encode<S: Serialize + ?Sized>(state: &S) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![TAG_MSGPACK_NAMED];
    rmp_serde::encode::write_named(&mut out, state)?;
    Ok(out)
}

/// Decodes state written by [`encode`].
pub fn decode<S: DeserializeOwned>(blob: &[u8]) -> Result<S, CodecError> {
    match blob.split_first() {
        None => Err(CodecError::Empty),
        Some((&TAG_MSGPACK_NAMED, rest)) => Ok(rmp_serde::from_slice(rest)?),
        Some((&tag, _)) => Err(CodecError::UnknownTag(tag)),
    }
}

/// Encodes a key for the store (compact MessagePack): equal keys give equal bytes. A key
/// type whose `Serialize` fails (a map with non-string keys in some formats, a custom
/// impl that errors) is an error, never an empty key that another key could collide with.
pub fn encode_key<K: Serialize + ?Sized>(key: &K) -> Result<Vec<u8>, CodecError> {
    Ok(rmp_serde::to_vec(key)?)
}

/// The stored key of a source or sink partition: its name, encoded as [`encode_key`]
/// encodes a string (MessagePack `str`), which cannot fail.
pub fn part_key(name: &str) -> Vec<u8> {
    let len = name.len();
    let mut out = Vec::with_capacity(len + 5);
    match len {
        0..=31 => out.push(0xa0 | len as u8),
        32..=0xff => out.extend([0xd9, len as u8]),
        0x100..=0xffff => {
            out.push(0xda);
            out.extend((len as u16).to_be_bytes());
        }
        _ => {
            out.push(0xdb);
            out.extend((len as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(name.as_bytes());
    out
}

/// Decodes a key written by [`encode_key`].
pub fn decode_key<K: DeserializeOwned>(bytes: &[u8]) -> Result<K, CodecError> {
    Ok(rmp_serde::from_slice(bytes)?)
}

/// A stored key as it prints in messages: its JSON form, or hex.
pub(crate) fn printable_key(bytes: &[u8]) -> String {
    to_json(bytes).to_string()
}

/// MessagePack to JSON; bytes that are not MessagePack show as hex.
pub(crate) fn to_json(bytes: &[u8]) -> serde_json::Value {
    rmp_serde::from_slice::<serde_json::Value>(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(hex(bytes)))
}

/// Lower-case hex of bytes, for messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize)]
    struct V1 {
        count: u64,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct V2 {
        count: u64,
        #[serde(default)]
        sum: f64,
    }

    #[test]
    fn a_new_defaulted_field_reads_old_state() {
        let blob = encode(&V1 { count: 3 }).unwrap();
        assert_eq!(decode::<V2>(&blob).unwrap(), V2 { count: 3, sum: 0.0 });
    }

    #[test]
    fn bad_blobs_are_errors() {
        assert!(matches!(decode::<u32>(&[]), Err(CodecError::Empty)));
        assert!(matches!(decode::<u32>(&[9, 1]), Err(CodecError::UnknownTag(9))));
        assert!(matches!(
            decode::<String>(&[TAG_MSGPACK_NAMED, 0xc1]),
            Err(CodecError::Decode(_))
        ));
    }

    #[test]
    fn a_key_that_fails_to_serialize_is_an_error() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("this key cannot be written"))
            }
        }
        let err = encode_key(&Refuses).unwrap_err();
        assert!(err.to_string().contains("this key cannot be written"), "{err}");
    }

    #[test]
    fn partition_keys_are_encoded_strings() {
        for len in [0, 1, 31, 32, 255, 256, 65535, 65536] {
            let name = "p".repeat(len);
            assert_eq!(part_key(&name), encode_key(&name).unwrap(), "length {len}");
        }
    }

    #[test]
    fn keys_round_trip() {
        let k = ("a".to_string(), 7u32);
        assert_eq!(decode_key::<(String, u32)>(&encode_key(&k).unwrap()).unwrap(), k);
    }
}
