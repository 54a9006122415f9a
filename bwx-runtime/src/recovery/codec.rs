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

/// Encodes a key for the store (compact MessagePack). Keys are plain data; a key type
/// whose `Serialize` fails cannot be stored, which is a bug in that type, reported as an
/// empty key rather than a panic.
pub fn encode_key<K: Serialize + ?Sized>(key: &K) -> Vec<u8> {
    rmp_serde::to_vec(key).unwrap_or_default()
}

/// Decodes a key written by [`encode_key`].
pub fn decode_key<K: DeserializeOwned>(bytes: &[u8]) -> Result<K, CodecError> {
    Ok(rmp_serde::from_slice(bytes)?)
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
    fn keys_round_trip() {
        let k = ("a".to_string(), 7u32);
        assert_eq!(decode_key::<(String, u32)>(&encode_key(&k)).unwrap(), k);
    }
}
