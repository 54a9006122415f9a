//! [`StreamEntry`]: an entry read from a stream, and [`ToFields`]: what the sink adds.

use serde::{Deserialize, Serialize};

/// An entry of a Redis stream: its stream, its id, and its fields in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEntry {
    /// The stream's key.
    pub stream: String,
    /// The entry id, `<milliseconds>-<sequence>`.
    pub id: String,
    /// The fields and their values, in the order they were added.
    pub fields: Vec<(String, Vec<u8>)>,
}

impl StreamEntry {
    /// The value of the first field called `name`.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// What [`crate::RedisStreamSink`] adds as one entry: its fields, in order.
///
/// Implemented for lists of `(name, value)` pairs of strings or bytes, and for
/// [`StreamEntry`] (so that a flow can copy entries from stream to stream).
pub trait ToFields {
    /// Calls `add` for every field.
    fn for_each_field(&self, add: impl FnMut(&str, &[u8]));
}

impl ToFields for Vec<(String, Vec<u8>)> {
    fn for_each_field(&self, mut add: impl FnMut(&str, &[u8])) {
        self.iter().for_each(|(f, v)| add(f, v));
    }
}

impl ToFields for Vec<(String, String)> {
    fn for_each_field(&self, mut add: impl FnMut(&str, &[u8])) {
        self.iter().for_each(|(f, v)| add(f, v.as_bytes()));
    }
}

impl ToFields for StreamEntry {
    fn for_each_field(&self, add: impl FnMut(&str, &[u8])) {
        self.fields.for_each_field(add)
    }
}
