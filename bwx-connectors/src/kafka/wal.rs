//! The stored form of an exactly-once sink's write-ahead log: each epoch's messages as one
//! byte string (lengths and bytes back to back), encoded message by message as the epoch's
//! batches are written, so that storing an epoch's output costs about a copy of its bytes
//! (rather than a MessagePack value per byte and field name per message), and storing an
//! epoch again in a later snapshot costs no new encoding.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use super::message::KafkaSinkMessage;

const KEY: u8 = 1;
const VALUE: u8 = 2;
const TOPIC: u8 = 4;
const PARTITION: u8 = 8;
const TIMESTAMP: u8 = 16;

/// One epoch's messages in their stored form, shared between the snapshots that hold it.
/// It is stored as a MessagePack `bin`, not as an array of numbers.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct LoggedEpoch(Arc<Vec<u8>>);

impl fmt::Debug for LoggedEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LoggedEpoch({} bytes)", self.0.len())
    }
}

impl LoggedEpoch {
    /// The messages, in the order they were written; says where the bytes are malformed.
    pub(crate) fn messages(&self) -> Result<Vec<KafkaSinkMessage>, String> {
        decode(&self.0)
    }
}

impl Serialize for LoggedEpoch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for LoggedEpoch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl<'de> Visitor<'de> for BlobVisitor {
            type Value = LoggedEpoch;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<LoggedEpoch, E> {
                Ok(LoggedEpoch(Arc::new(v.to_vec())))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<LoggedEpoch, E> {
                Ok(LoggedEpoch(Arc::new(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LoggedEpoch, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(LoggedEpoch(Arc::new(out)))
            }
        }
        d.deserialize_byte_buf(BlobVisitor)
    }
}

/// Encodes the open epoch's messages as they are written.
#[derive(Debug)]
pub(crate) struct EpochEncoder {
    /// A message count (filled in by `finish`), then the messages.
    bytes: Vec<u8>,
    count: u32,
}

impl Default for EpochEncoder {
    fn default() -> Self {
        EpochEncoder {
            bytes: vec![0; 4],
            count: 0,
        }
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    // A Kafka message is far below 4 GiB (librdkafka's limit is 1 GB).
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

impl EpochEncoder {
    /// Appends one message.
    pub(crate) fn push(&mut self, m: &KafkaSinkMessage) {
        let out = &mut self.bytes;
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
            put(out, k);
        }
        if let Some(v) = &m.value {
            put(out, v);
        }
        if let Some(t) = &m.topic {
            put(out, t.as_bytes());
        }
        if let Some(p) = m.partition {
            out.extend_from_slice(&p.to_le_bytes());
        }
        if let Some(ts) = m.timestamp {
            out.extend_from_slice(&ts.to_le_bytes());
        }
        out.extend_from_slice(&(m.headers.len() as u32).to_le_bytes());
        for (name, value) in &m.headers {
            put(out, name.as_bytes());
            out.push(u8::from(value.is_some()));
            if let Some(v) = value {
                put(out, v);
            }
        }
        self.count += 1;
    }

    /// The epoch's messages so far, stored; the encoder starts the next epoch with room for
    /// as many bytes as this one took.
    pub(crate) fn finish(&mut self) -> LoggedEpoch {
        let mut next = Vec::with_capacity(self.bytes.len());
        next.extend_from_slice(&[0; 4]);
        let mut bytes = std::mem::replace(&mut self.bytes, next);
        bytes[..4].copy_from_slice(&self.count.to_le_bytes());
        self.count = 0;
        LoggedEpoch(Arc::new(bytes))
    }
}

/// Reads what [`EpochEncoder`] wrote; says where it is malformed.
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

    fn encode(messages: &[KafkaSinkMessage]) -> Vec<u8> {
        let mut encoder = EpochEncoder::default();
        messages.iter().for_each(|m| encoder.push(m));
        encoder.finish().0.to_vec()
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
    fn an_encoder_starts_each_epoch_afresh() {
        let mut encoder = EpochEncoder::default();
        let m = messages();
        encoder.push(&m[0]);
        encoder.push(&m[1]);
        let first = encoder.finish();
        encoder.push(&m[2]);
        let second = encoder.finish();
        let empty = encoder.finish();
        assert_eq!(first.messages().unwrap(), m[..2]);
        assert_eq!(second.messages().unwrap(), m[2..]);
        assert_eq!(empty.messages().unwrap(), []);
    }

    #[test]
    fn a_log_round_trips_through_messagepack() {
        #[derive(Serialize, Deserialize)]
        struct Log {
            pending: Vec<(u64, LoggedEpoch)>,
        }
        let mut encoder = EpochEncoder::default();
        messages().iter().for_each(|m| encoder.push(m));
        let log = Log {
            pending: vec![(3, encoder.finish()), (4, encoder.finish())],
        };
        let bytes = rmp_serde::encode::to_vec(&log).unwrap();
        // One `bin` per epoch: the value bytes appear as they are.
        assert!(bytes.windows(3).any(|w| w == [0, 255, 7]));
        let back: Log = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.pending, log.pending);
        assert_eq!(back.pending[0].1.messages().unwrap(), messages());
    }
}
