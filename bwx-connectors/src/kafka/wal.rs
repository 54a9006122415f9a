//! The stored form of an exactly-once sink's write-ahead log: each epoch's messages as one
//! byte string (lengths and bytes back to back), so that storing an epoch's output costs
//! about a copy of its bytes rather than a MessagePack value per byte and field name per
//! message.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use super::message::KafkaSinkMessage;

/// Pre-committed epochs and their messages.
pub(crate) type Pending = Vec<(u64, Arc<Vec<KafkaSinkMessage>>)>;

const KEY: u8 = 1;
const VALUE: u8 = 2;
const TOPIC: u8 = 4;
const PARTITION: u8 = 8;
const TIMESTAMP: u8 = 16;

pub(crate) fn serialize<S: Serializer>(pending: &Pending, s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(pending.len()))?;
    for (epoch, messages) in pending {
        seq.serialize_element(&(epoch, Blob(encode(messages))))?;
    }
    seq.end()
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Pending, D::Error> {
    let stored: Vec<(u64, Blob)> = Vec::deserialize(d)?;
    stored
        .into_iter()
        .map(|(epoch, blob)| {
            decode(&blob.0)
                .map(|messages| (epoch, Arc::new(messages)))
                .map_err(|why| de::Error::custom(format!("epoch {epoch} of the write-ahead log: {why}")))
        })
        .collect()
}

/// Bytes stored as a MessagePack `bin`, not as an array of numbers.
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl<'de> Visitor<'de> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(Blob(out))
            }
        }
        d.deserialize_byte_buf(BlobVisitor)
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    // A Kafka message is far below 4 GiB (librdkafka's limit is 1 GB).
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn encode(messages: &[KafkaSinkMessage]) -> Vec<u8> {
    let size: usize = messages
        .iter()
        .map(|m| {
            let headers: usize = m
                .headers
                .iter()
                .map(|(k, v)| 9 + k.len() + v.as_ref().map_or(0, Vec::len))
                .sum();
            33 + m.key.as_ref().map_or(0, Vec::len)
                + m.value.as_ref().map_or(0, Vec::len)
                + m.topic.as_ref().map_or(0, |t| t.len())
                + headers
        })
        .sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&(messages.len() as u32).to_le_bytes());
    for m in messages {
        let flags = [
            (m.key.is_some(), KEY),
            (m.value.is_some(), VALUE),
            (m.topic.is_some(), TOPIC),
            (m.partition.is_some(), PARTITION),
            (m.timestamp.is_some(), TIMESTAMP),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |f, (_, bit)| f | bit);
        out.push(flags);
        if let Some(k) = &m.key {
            put(&mut out, k);
        }
        if let Some(v) = &m.value {
            put(&mut out, v);
        }
        if let Some(t) = &m.topic {
            put(&mut out, t.as_bytes());
        }
        if let Some(p) = m.partition {
            out.extend_from_slice(&p.to_le_bytes());
        }
        if let Some(ts) = m.timestamp {
            out.extend_from_slice(&ts.to_le_bytes());
        }
        out.extend_from_slice(&(m.headers.len() as u32).to_le_bytes());
        for (name, value) in &m.headers {
            put(&mut out, name.as_bytes());
            out.push(u8::from(value.is_some()));
            if let Some(v) = value {
                put(&mut out, v);
            }
        }
    }
    out
}

/// Reads what [`encode`] wrote; says where it is malformed.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "truncated at byte {} of {} (wanted {n} more)",
                    self.at,
                    self.bytes.len()
                )
            })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u32()?;
        Ok(self.take(n)?.to_vec())
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let at = self.at;
        String::from_utf8(self.bytes()?).map_err(|_| format!("the {what} at byte {at} is not UTF-8"))
    }
}

fn decode(bytes: &[u8]) -> Result<Vec<KafkaSinkMessage>, String> {
    let mut r = Reader { bytes, at: 0 };
    let count = r.u32()?;
    // Every message takes at least 5 bytes: a bound on what a corrupt count may reserve.
    let mut out = Vec::with_capacity(count.min(bytes.len() / 5));
    for _ in 0..count {
        let [flags] = r.array()?;
        let mut m = KafkaSinkMessage::new(None, None);
        if flags & KEY != 0 {
            m.key = Some(r.bytes()?);
        }
        if flags & VALUE != 0 {
            m.value = Some(r.bytes()?);
        }
        if flags & TOPIC != 0 {
            m.topic = Some(r.string("topic")?.into());
        }
        if flags & PARTITION != 0 {
            m.partition = Some(i32::from_le_bytes(r.array()?));
        }
        if flags & TIMESTAMP != 0 {
            m.timestamp = Some(i64::from_le_bytes(r.array()?));
        }
        let headers = r.u32()?;
        for _ in 0..headers {
            let name = r.string("header name")?;
            let [has_value] = r.array()?;
            let value = if has_value != 0 { Some(r.bytes()?) } else { None };
            m.headers.push((name, value));
        }
        out.push(m);
    }
    if r.at != bytes.len() {
        return Err(format!(
            "{} bytes left after {count} messages",
            bytes.len() - r.at
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages() -> Vec<KafkaSinkMessage> {
        vec![
            KafkaSinkMessage::new(Some(b"k".to_vec()), Some(vec![0, 255, 7])),
            KafkaSinkMessage::new(None, None),
            KafkaSinkMessage::new(Some(Vec::new()), Some(b"v".to_vec()))
                .topic("t\u{e9}")
                .partition(-1)
                .header("h", Some(b"x".to_vec()))
                .header("empty", None),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, mut m)| {
            m.timestamp = (i == 2).then_some(-5);
            m
        })
        .collect()
    }

    #[test]
    fn messages_round_trip_and_corruption_is_named() {
        let m = messages();
        let blob = encode(&m);
        assert_eq!(decode(&blob).unwrap(), m);
        let short = decode(&blob[..blob.len() - 1]).unwrap_err();
        assert!(short.contains("truncated at byte"), "{short}");
        let mut long = blob.clone();
        long.push(0);
        assert!(
            decode(&long)
                .unwrap_err()
                .contains("1 bytes left after 3 messages")
        );
        let mut huge = blob;
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).unwrap_err().contains("truncated"));
    }

    #[test]
    fn a_log_round_trips_through_messagepack() {
        #[derive(Serialize, Deserialize)]
        struct Log {
            #[serde(with = "super")]
            pending: Pending,
        }
        let log = Log {
            pending: vec![(3, Arc::new(messages())), (4, Arc::new(Vec::new()))],
        };
        let bytes = rmp_serde::encode::to_vec_named(&log).unwrap();
        // One `bin` per epoch: the value bytes appear as they are.
        assert!(bytes.windows(3).any(|w| w == [0, 255, 7]));
        let back: Log = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.pending, log.pending);
    }
}
