//! JSON with serde_json.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Deserializer, SerdeContext, SerdeError, Serializer};

/// Decodes JSON into a `T`.
pub struct JsonDeserializer<T>(PhantomData<fn() -> T>);

impl<T> JsonDeserializer<T> {
    /// A JSON deserializer.
    pub fn new() -> Self {
        JsonDeserializer(PhantomData)
    }
}

impl<T> Default for JsonDeserializer<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for JsonDeserializer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsonDeserializer")
    }
}

impl<T: DeserializeOwned + 'static> Deserializer<T> for JsonDeserializer<T> {
    fn deserialize(&self, bytes: &[u8], _: &SerdeContext<'_>) -> Result<T, SerdeError> {
        serde_json::from_slice(bytes).map_err(|e| SerdeError::invalid("invalid JSON").caused_by(e))
    }
}

/// Encodes any serde item as JSON.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonSerializer;

impl<T: Serialize> Serializer<T> for JsonSerializer {
    fn serialize(&self, item: &T, _: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError> {
        serde_json::to_vec(item).map_err(|e| SerdeError::invalid("cannot encode as JSON").caused_by(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let ctx = SerdeContext::value("t");
        let bytes = JsonSerializer.serialize(&vec![1u32, 2], &ctx).unwrap();
        let back: Vec<u32> = JsonDeserializer::new().deserialize(&bytes, &ctx).unwrap();
        assert_eq!(back, vec![1, 2]);
        let err = JsonDeserializer::<Vec<u32>>::new()
            .deserialize(b"{oops", &ctx)
            .unwrap_err();
        assert_eq!(err.kind(), super::super::SerdeErrorKind::Invalid);
        assert!(err.to_string().starts_with("invalid JSON"), "{err}");
        // Trailing bytes after a complete value are an error too.
        assert!(
            JsonDeserializer::<Vec<u32>>::new()
                .deserialize(b"[1] x", &ctx)
                .is_err()
        );
    }
}
