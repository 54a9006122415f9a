//! Protocol Buffers in the Confluent wire format: byte 0, a 4-byte schema id, the message
//! indexes (which message of the `.proto` file: a zigzag-varint count and path, `[0]` written
//! as the single byte 0), then the encoded message. Messages are `prost` types.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use prost::Message;

use super::registry::{SchemaRegistry, SchemaType, SubjectName, frame_header, split_frame};
use super::{Deserializer, SerdeContext, SerdeError, Serializer};

/// The messages a `.proto` file declares, by full name, with their index paths (position
/// among their siblings, outermost first), as Confluent's message indexes count them.
pub(crate) fn message_paths(proto: &str) -> Result<Vec<(String, Vec<u32>)>, SerdeError> {
    let tokens = tokenize(proto)?;
    let mut package = String::new();
    let mut out = Vec::new();
    // Open blocks: a message (its full name, path and how many messages it holds) or another block.
    let mut stack: Vec<Option<(String, Vec<u32>, u32)>> = Vec::new();
    let mut top_messages = 0u32;
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].as_str() {
            "package" if stack.is_empty() => {
                package = tokens.get(i + 1).cloned().unwrap_or_default();
                i += 2;
                continue;
            }
            "message" | "group" if stack.iter().all(Option::is_some) => {
                // `message Name {`, or proto2's `group Name = N {`.
                let Some(name) = tokens.get(i + 1) else { break };
                if let Some(open) = tokens[i + 1..].iter().position(|t| t == "{" || t == ";")
                    && tokens[i + 1 + open] == "{"
                {
                    let (full, path) = match stack.last_mut() {
                        Some(Some((parent, path, count))) => {
                            let mut p = path.clone();
                            p.push(*count);
                            *count += 1;
                            (format!("{parent}.{name}"), p)
                        }
                        _ => {
                            top_messages += 1;
                            let full = if package.is_empty() {
                                name.clone()
                            } else {
                                format!("{package}.{name}")
                            };
                            (full, vec![top_messages - 1])
                        }
                    };
                    out.push((full.clone(), path.clone()));
                    stack.push(Some((full, path, 0)));
                    i += 2 + open;
                    continue;
                }
            }
            "{" => stack.push(None),
            // The guard closes the block; only a `}` with none open is an error.
            "}" if stack.pop().is_none() => {
                return Err(SerdeError::invalid(
                    "the .proto schema closes a block it never opened",
                ));
            }
            _ => {}
        }
        i += 1;
    }
    if !stack.is_empty() {
        return Err(SerdeError::invalid("the .proto schema leaves a block open"));
    }
    Ok(out)
}

/// Splits `.proto` text into identifiers, numbers, strings and single punctuation marks,
/// without comments.
fn tokenize(text: &str) -> Result<Vec<String>, SerdeError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            if i >= chars.len() {
                return Err(SerdeError::invalid("the .proto schema has an unclosed comment"));
            }
            i += 2;
        } else if c == '"' || c == '\'' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            if i >= chars.len() {
                return Err(SerdeError::invalid("the .proto schema has an unclosed string"));
            }
            i += 1;
            out.push(chars[start..i].iter().collect());
        } else if c.is_alphanumeric() || c == '_' || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    Ok(out)
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Reads one zigzag varint.
fn take_varint(bytes: &mut &[u8]) -> Result<i64, SerdeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some((&b, rest)) = bytes.split_first() else {
            return Err(SerdeError::invalid("the message indexes are cut off"));
        };
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(SerdeError::invalid("a message index is longer than a varint"))
}

/// Confluent's message-index prefix for `path`.
fn encode_indexes(path: &[u32], out: &mut Vec<u8>) {
    if path == [0] {
        out.push(0);
        return;
    }
    put_varint(zigzag(path.len() as i64), out);
    for &i in path {
        put_varint(zigzag(i64::from(i)), out);
    }
}

/// Reads the message indexes and returns the path and the rest.
fn decode_indexes(mut bytes: &[u8]) -> Result<(Vec<u32>, &[u8]), SerdeError> {
    let count = take_varint(&mut bytes)?;
    if count == 0 {
        return Ok((vec![0], bytes));
    }
    if !(1..=64).contains(&count) {
        return Err(SerdeError::invalid(format!(
            "{count} message indexes cannot be right"
        )));
    }
    let mut path = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let i = take_varint(&mut bytes)?;
        path.push(
            u32::try_from(i).map_err(|_| SerdeError::invalid(format!("message index {i} is negative")))?,
        );
    }
    Ok((path, bytes))
}

/// The full names of a schema's messages by index path.
type MessageNames = HashMap<Vec<u32>, String>;

/// Encodes `prost` messages as Confluent-framed Protobuf, registering `proto` (the `.proto`
/// text that declares the message) under the subject [`SubjectName`] names (the record
/// name is the message's full name).
pub struct ConfluentProtobufSerializer<T> {
    registry: SchemaRegistry,
    proto: String,
    message: String,
    path: Vec<u32>,
    subject: SubjectName,
    auto_register: bool,
    _item: PhantomData<fn(&T)>,
}

impl<T> ConfluentProtobufSerializer<T> {
    /// A serializer for the message `message` (full name, e.g. `sensors.Reading`) of `proto`.
    pub fn new(
        registry: SchemaRegistry,
        proto: &str,
        message: &str,
        subject: SubjectName,
    ) -> Result<Self, SerdeError> {
        let path = message_paths(proto)?
            .into_iter()
            .find(|(name, _)| name == message)
            .map(|(_, path)| path)
            .ok_or_else(|| {
                SerdeError::invalid(format!("the .proto schema declares no message {message:?}"))
            })?;
        Ok(ConfluentProtobufSerializer {
            registry,
            proto: proto.to_string(),
            message: message.to_string(),
            path,
            subject,
            auto_register: true,
            _item: PhantomData,
        })
    }

    /// Whether to register the schema (`true`, the default) or only look up its id.
    pub fn auto_register(mut self, register: bool) -> Self {
        self.auto_register = register;
        self
    }
}

impl<T> fmt::Debug for ConfluentProtobufSerializer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfluentProtobufSerializer")
            .field("registry", &self.registry)
            .field("message", &self.message)
            .field("subject", &self.subject)
            .finish()
    }
}

impl<T: Message + 'static> Serializer<T> for ConfluentProtobufSerializer<T> {
    fn serialize(&self, item: &T, ctx: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError> {
        let subject = self.subject.subject(ctx, Some(&self.message))?;
        let id = if self.auto_register {
            self.registry
                .register(&subject, SchemaType::Protobuf, &self.proto, &[])
        } else {
            self.registry
                .look_up(&subject, SchemaType::Protobuf, &self.proto, &[])
        }
        .map_err(|e| {
            e.into_serde(format!(
                "cannot register the .proto schema under subject {subject:?} in the schema registry at {}",
                self.registry.url()
            ))
        })?;
        let mut out = frame_header(id);
        encode_indexes(&self.path, &mut out);
        item.encode(&mut out)
            .map_err(|e| SerdeError::invalid("cannot encode the message").caused_by(e))?;
        Ok(out)
    }
}

/// Decodes Confluent-framed Protobuf into the `prost` message `T`, whose full name is
/// `message`. Strict: the writer's schema (fetched once per id) must name `message` at the
/// payload's message indexes, so that bytes of another message type are an error instead of
/// a wrong value.
pub struct ConfluentProtobufDeserializer<T> {
    registry: SchemaRegistry,
    message: String,
    /// Message names by index path, per writer schema id.
    schemas: RwLock<HashMap<u32, Arc<MessageNames>>>,
    _item: PhantomData<fn() -> T>,
}

impl<T> ConfluentProtobufDeserializer<T> {
    /// A deserializer of the message `message` (full name), asking `registry` for schemas.
    pub fn new(registry: SchemaRegistry, message: &str) -> Self {
        ConfluentProtobufDeserializer {
            registry,
            message: message.to_string(),
            schemas: RwLock::new(HashMap::new()),
            _item: PhantomData,
        }
    }

    fn names(&self, id: u32) -> Result<Arc<MessageNames>, SerdeError> {
        if let Some(n) = self.schemas.read().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return Ok(n.clone());
        }
        let registered = self.registry.schema_by_id(id).map_err(|e| {
            e.into_serde(format!(
                "cannot fetch the schema of id {id} from the schema registry at {}",
                self.registry.url()
            ))
        })?;
        if registered.schema_type != SchemaType::Protobuf {
            return Err(SerdeError::invalid(format!(
                "schema id {id} is a {:?} schema, not Protobuf",
                registered.schema_type
            )));
        }
        let names: MessageNames = message_paths(&registered.schema)
            .map_err(|e| SerdeError::invalid(format!("schema id {id} is not a .proto schema")).caused_by(e))?
            .into_iter()
            .map(|(name, path)| (path, name))
            .collect();
        let names = Arc::new(names);
        self.schemas
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, names.clone());
        Ok(names)
    }
}

impl<T> fmt::Debug for ConfluentProtobufDeserializer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfluentProtobufDeserializer")
            .field("registry", &self.registry)
            .field("message", &self.message)
            .finish()
    }
}

impl<T: Message + Default + 'static> Deserializer<T> for ConfluentProtobufDeserializer<T> {
    fn deserialize(&self, bytes: &[u8], _: &SerdeContext<'_>) -> Result<T, SerdeError> {
        let (id, rest) = split_frame(bytes)?;
        let (path, payload) = decode_indexes(rest)?;
        match self.names(id)?.get(&path) {
            Some(name) if *name == self.message => {}
            Some(name) => {
                return Err(SerdeError::invalid(format!(
                    "written as message {name} (schema id {id}), not {}",
                    self.message
                )));
            }
            None => {
                return Err(SerdeError::invalid(format!(
                    "schema id {id} has no message at index {path:?}"
                )));
            }
        }
        T::decode(payload).map_err(|e| SerdeError::invalid("invalid Protobuf message").caused_by(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTO: &str = r#"
        syntax = "proto3";
        package sensors; // the package
        /* A reading. { braces in comments do not count } */
        message Reading {
            string sensor = 1;
            double value = 2;
            message Unit { string name = 1; enum Kind { A = 0; } }
            oneof extra { string note = 3; }
            message Range { int32 low = 1; }
        }
        enum Level { LOW = 0; }
        service Feed { rpc Get(Reading) returns (Reading) {} }
        message Batch { repeated Reading readings = 1; string s = 2 [json_name = "x{"]; }
    "#;

    #[test]
    fn message_paths_follow_confluents_indexes() {
        let paths = message_paths(PROTO).unwrap();
        assert_eq!(
            paths,
            vec![
                ("sensors.Reading".to_string(), vec![0]),
                ("sensors.Reading.Unit".to_string(), vec![0, 0]),
                ("sensors.Reading.Range".to_string(), vec![0, 1]),
                ("sensors.Batch".to_string(), vec![1]),
            ]
        );
        assert!(message_paths("message A {").is_err());
        assert!(message_paths("}").is_err());
    }

    #[test]
    fn indexes_round_trip_and_zero_is_one_byte() {
        for path in [vec![0], vec![1], vec![0, 1], vec![3, 0, 2]] {
            let mut out = Vec::new();
            encode_indexes(&path, &mut out);
            if path == [0] {
                assert_eq!(out, [0]);
            }
            out.push(0xaa);
            let (back, rest) = decode_indexes(&out).unwrap();
            assert_eq!((back, rest), (path, &[0xaa][..]));
        }
        assert!(decode_indexes(&[0x80]).is_err());
        assert!(decode_indexes(&[0x01]).is_err(), "a negative count");
    }
}
