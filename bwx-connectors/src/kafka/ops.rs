//! Kafka operators: `input` and `output`, and key/value (de)serialization, each splitting
//! into `oks` and `errs`.
//!
//! An operator called with step id `s` adds the steps `s` (the source, for [`input`]),
//! `s_split`, `s_oks` and `s_errs`. Errors are data on `errs`: nothing is dropped silently.
//!
//! A (de)serializer error whose kind is [`SerdeErrorKind::Unavailable`] (a schema registry
//! that stayed down past its retry limit) is not the message's fault: it stops the flow
//! with the step, the topic-partition and offset, instead of diverting good messages to
//! `errs`. With recovery, the resumed flow reads the message again.

// The results are stream items split into `oks` and `errs` in the next step, not errors
// returned up a call stack: boxing the error side would only add an allocation.
#![allow(clippy::result_large_err)]

use bwx_runtime::{Data, Dataflow, Stream};

use rdkafka::types::RDKafkaErrorCode;

use super::error::KafkaError;
use super::message::{Bytes, KafkaSinkMessage, KafkaSourceMessage};
use super::serde::{
    Deserializer, MessageField, SerdeContext, SerdeError, SerdeErrorKind, Serializer, with_causes,
};
use super::{KafkaSink, KafkaSource};

/// The two streams of a Kafka operator.
pub struct KafkaOut<T, E> {
    /// What succeeded.
    pub oks: Stream<T>,
    /// What failed, with the reason and the message concerned.
    pub errs: Stream<E>,
}

/// What a source-message operator returns: messages with key `K` and value `V`, and the
/// messages (with key `K0` and value `V0`) that failed.
pub type SourceOut<K, V, K0 = K, V0 = V> =
    KafkaOut<KafkaSourceMessage<K, V>, KafkaError<KafkaSourceMessage<K0, V0>>>;

/// What a sink-message operator returns: messages with key `K` and value `V`, and the
/// messages (with key `K0` and value `V0`) that failed.
pub type SinkOut<K, V, K0 = K, V0 = V> =
    KafkaOut<KafkaSinkMessage<K, V>, KafkaError<KafkaSinkMessage<K0, V0>>>;

/// Splits a stream of results into `oks` and `errs` in one pass plus two moves per item.
fn split<T: Data, E: Data>(stream: &Stream<Result<T, E>>, step: &str) -> KafkaOut<T, E> {
    let b = stream.branch(&format!("{step}_split"), Result::is_ok);
    KafkaOut {
        oks: b.trues.filter_map(&format!("{step}_oks"), Result::ok),
        errs: b.falses.filter_map(&format!("{step}_errs"), Result::err),
    }
}

/// Reads Kafka with `source`; consumer errors go to `errs` instead of stopping the flow.
///
/// ```
/// use bwx::connectors::kafka::rdkafka::mocking::MockCluster;
/// use bwx::connectors::kafka::{self, KafkaConfig, KafkaSink, KafkaSinkMessage, KafkaSource};
/// use bwx::prelude::*;
/// use bwx::testing::{TestingSink, TestingSource};
///
/// // librdkafka's in-process mock broker stands in for a real one.
/// let mock = MockCluster::new(1).unwrap();
/// mock.create_topic("events", 2, 1).unwrap();
/// let config = KafkaConfig::new(mock.bootstrap_servers());
///
/// let write = Dataflow::new("write");
/// let msgs = write.input("in", TestingSource::new(vec!["a", "b", "c"]))
///     .map("msg", |s: &str| KafkaSinkMessage::new(None, Some(s.as_bytes().to_vec())));
/// kafka::output(&msgs, "out", KafkaSink::new(config.clone(), Some("events")));
/// bwx::run_main(&write).unwrap();
///
/// let read = Dataflow::new("read");
/// let (oks, errs) = (TestingSink::new(), TestingSink::new());
/// let out = kafka::input(&read, "in", KafkaSource::new(config, ["events"]).tail(false));
/// out.oks.map("value", |m| m.value.unwrap()).output("oks", oks.clone());
/// out.errs.output("errs", errs.clone());
/// bwx::run_main(&read).unwrap();
/// let mut values = oks.take();
/// values.sort();
/// assert_eq!(values, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
/// assert!(errs.take().is_empty());
/// ```
pub fn input(flow: &Dataflow, step: &str, source: KafkaSource) -> SourceOut<Bytes, Bytes> {
    split(&flow.input(step, source.emit_errors()), step)
}

/// Writes sink messages, or source messages as they are ([`KafkaSourceMessage::to_sink`]),
/// with `sink`. Adds the steps `{step}_to_sink` and `step`.
pub fn output<T>(stream: &Stream<T>, step: &str, sink: KafkaSink)
where
    T: Data + Into<KafkaSinkMessage>,
{
    stream
        .map(&format!("{step}_to_sink"), Into::into)
        .output(step, sink);
}

impl<K, V> From<KafkaSourceMessage<K, V>> for KafkaSinkMessage<K, V> {
    fn from(m: KafkaSourceMessage<K, V>) -> Self {
        m.to_sink()
    }
}

fn where_from<K, V>(m: &KafkaSourceMessage<K, V>) -> String {
    format!(
        "partition {} of topic {:?} at offset {}",
        m.partition, m.topic, m.offset
    )
}

/// Stops the flow from inside a step (the engine reports the step and worker): for a
/// service that stayed unavailable, where putting the message on `errs` would lose it.
fn stop_flow(why: String) -> ! {
    panic!("{why}; the flow stops rather than put a message that is not at fault on `errs`")
}

/// The `errs` item for a message that failed to decode, or a stop for a failed service.
fn decode_failure<K, V>(
    id: &str,
    field: MessageField,
    m: KafkaSourceMessage<K, V>,
    e: SerdeError,
) -> KafkaError<KafkaSourceMessage<K, V>> {
    let text = format!(
        "step {id}: cannot deserialize the {field} of {}: {}",
        where_from(&m),
        with_causes(&e)
    );
    if e.kind() == SerdeErrorKind::Unavailable {
        stop_flow(text);
    }
    let code = match field {
        MessageField::Key => RDKafkaErrorCode::KeyDeserialization,
        MessageField::Value => RDKafkaErrorCode::ValueDeserialization,
    };
    let at = (Some(m.topic.clone()), Some(m.partition), Some(m.offset));
    KafkaError::new(text, code, m).at(at.0, at.1, at.2)
}

/// The `errs` item for a message that failed to encode, or a stop for a failed service.
fn encode_failure<K, V>(
    id: &str,
    field: MessageField,
    m: KafkaSinkMessage<K, V>,
    e: SerdeError,
) -> KafkaError<KafkaSinkMessage<K, V>> {
    let text = format!(
        "step {id}: cannot serialize the {field} of a message to {}: {}",
        m.topic
            .as_deref()
            .map_or_else(|| "the sink's topic".to_string(), |t| format!("topic {t:?}")),
        with_causes(&e)
    );
    if e.kind() == SerdeErrorKind::Unavailable {
        stop_flow(text);
    }
    let code = match field {
        MessageField::Key => RDKafkaErrorCode::KeySerialization,
        MessageField::Value => RDKafkaErrorCode::ValueSerialization,
    };
    let at = (m.topic.clone(), m.partition);
    KafkaError::new(text, code, m).at(at.0, at.1, None)
}

fn decode<T, D: Deserializer<T>>(
    d: &D,
    bytes: Option<&[u8]>,
    topic: &str,
    field: MessageField,
) -> Result<Option<T>, SerdeError> {
    let ctx = SerdeContext {
        topic: Some(topic),
        field,
    };
    bytes.map(|b| d.deserialize(b, &ctx)).transpose()
}

fn encode<T, S: Serializer<T>>(
    s: &S,
    item: &T,
    topic: Option<&str>,
    field: MessageField,
) -> Result<Vec<u8>, SerdeError> {
    s.serialize(item, &SerdeContext { topic, field })
}

/// Decodes message keys; a missing key stays `None`, a key that cannot be decoded goes to
/// `errs` with its message.
pub fn deserialize_key<V, T, D>(
    stream: &Stream<KafkaSourceMessage<Bytes, V>>,
    step: &str,
    deserializer: D,
) -> SourceOut<Option<T>, V, Bytes, V>
where
    V: Data,
    T: Data,
    D: Deserializer<T>,
{
    let id = format!("{}.{step}", stream.flow().id());
    let results = stream.map(step, move |m: KafkaSourceMessage<Bytes, V>| {
        match decode(&deserializer, m.key.as_deref(), &m.topic, MessageField::Key) {
            Ok(key) => Ok(m.with_key(key)),
            Err(e) => Err(decode_failure(&id, MessageField::Key, m, e)),
        }
    });
    split(&results, step)
}

/// Decodes message values; a missing value (tombstone) stays `None`, a value that cannot be
/// decoded goes to `errs` with its message.
///
/// ```
/// use bwx::connectors::kafka::rdkafka::mocking::MockCluster;
/// use bwx::connectors::kafka::{self, JsonDeserializer, KafkaConfig, KafkaSink, KafkaSinkMessage, KafkaSource};
/// use bwx::prelude::*;
/// use bwx::testing::{TestingSink, TestingSource};
///
/// let mock = MockCluster::new(1).unwrap();
/// mock.create_topic("t", 1, 1).unwrap();
/// let config = KafkaConfig::new(mock.bootstrap_servers());
/// let write = Dataflow::new("write");
/// write.input("in", TestingSource::new(vec!["[1,2]", "oops"]))
///     .map("msg", |s: &str| KafkaSinkMessage::new(None, Some(s.as_bytes().to_vec())))
///     .output("out", KafkaSink::new(config.clone(), Some("t")));
/// bwx::run_main(&write).unwrap();
///
/// let flow = Dataflow::new("json");
/// let (good, bad) = (TestingSink::new(), TestingSink::new());
/// let msgs = kafka::input(&flow, "in", KafkaSource::new(config, ["t"]).tail(false));
/// let values = kafka::deserialize_value(&msgs.oks, "decode", JsonDeserializer::<Vec<u32>>::new());
/// values.oks.map("v", |m| m.value).output("ok", good.clone());
/// values.errs.map("offset", |e| (e.partition, e.offset)).output("bad", bad.clone());
/// bwx::run_main(&flow).unwrap();
/// assert_eq!(good.take(), vec![Some(vec![1, 2])]);
/// assert_eq!(bad.take(), vec![(Some(0), Some(1))]);
/// ```
pub fn deserialize_value<K, T, D>(
    stream: &Stream<KafkaSourceMessage<K, Bytes>>,
    step: &str,
    deserializer: D,
) -> SourceOut<K, Option<T>, K, Bytes>
where
    K: Data,
    T: Data,
    D: Deserializer<T>,
{
    let id = format!("{}.{step}", stream.flow().id());
    let results = stream.map(step, move |m: KafkaSourceMessage<K, Bytes>| {
        match decode(&deserializer, m.value.as_deref(), &m.topic, MessageField::Value) {
            Ok(value) => Ok(m.with_value(value)),
            Err(e) => Err(decode_failure(&id, MessageField::Value, m, e)),
        }
    });
    split(&results, step)
}

/// Decodes message keys and values in one step; if either cannot be decoded, the message
/// goes to `errs` as it was read (Bytewax's `deserialize`). Missing keys and values stay
/// `None`.
pub fn deserialize<KT, VT, KD, VD>(
    stream: &Stream<KafkaSourceMessage<Bytes, Bytes>>,
    step: &str,
    key_deserializer: KD,
    value_deserializer: VD,
) -> SourceOut<Option<KT>, Option<VT>, Bytes, Bytes>
where
    KT: Data,
    VT: Data,
    KD: Deserializer<KT>,
    VD: Deserializer<VT>,
{
    let id = format!("{}.{step}", stream.flow().id());
    let results = stream.map(step, move |m: KafkaSourceMessage<Bytes, Bytes>| {
        let key = match decode(&key_deserializer, m.key.as_deref(), &m.topic, MessageField::Key) {
            Ok(key) => key,
            Err(e) => return Err(decode_failure(&id, MessageField::Key, m, e)),
        };
        match decode(
            &value_deserializer,
            m.value.as_deref(),
            &m.topic,
            MessageField::Value,
        ) {
            Ok(value) => Ok(m.with_key_and_value(key, value)),
            Err(e) => Err(decode_failure(&id, MessageField::Value, m, e)),
        }
    });
    split(&results, step)
}

/// Encodes message keys; an item that cannot be encoded goes to `errs` with its message.
/// (To send no key, build the sink message with `key: None`.)
pub fn serialize_key<T, V, S>(
    stream: &Stream<KafkaSinkMessage<T, V>>,
    step: &str,
    serializer: S,
) -> SinkOut<Bytes, V, T, V>
where
    T: Data,
    V: Data,
    S: Serializer<T>,
{
    let id = format!("{}.{step}", stream.flow().id());
    let results = stream.map(step, move |m: KafkaSinkMessage<T, V>| {
        match encode(&serializer, &m.key, m.topic.as_deref(), MessageField::Key) {
            Ok(key) => Ok(m.with_key(Some(key))),
            Err(e) => Err(encode_failure(&id, MessageField::Key, m, e)),
        }
    });
    split(&results, step)
}

/// Encodes message values; an item that cannot be encoded goes to `errs` with its message.
/// (To send a tombstone, build the sink message with `value: None`.)
pub fn serialize_value<K, T, S>(
    stream: &Stream<KafkaSinkMessage<K, T>>,
    step: &str,
    serializer: S,
) -> SinkOut<K, Bytes, K, T>
where
    K: Data,
    T: Data,
    S: Serializer<T>,
{
    let id = format!("{}.{step}", stream.flow().id());
    let results = stream.map(step, move |m: KafkaSinkMessage<K, T>| {
        match encode(&serializer, &m.value, m.topic.as_deref(), MessageField::Value) {
            Ok(value) => Ok(m.with_value(Some(value))),
            Err(e) => Err(encode_failure(&id, MessageField::Value, m, e)),
        }
    });
    split(&results, step)
}

/// Encodes message keys and values in one step; if either cannot be encoded, the message
/// goes to `errs` as it came (Bytewax's `serialize`).
pub fn serialize<KT, VT, KS, VS>(
    stream: &Stream<KafkaSinkMessage<KT, VT>>,
    step: &str,
    key_serializer: KS,
    value_serializer: VS,
) -> SinkOut<Bytes, Bytes, KT, VT>
where
    KT: Data,
    VT: Data,
    KS: Serializer<KT>,
    VS: Serializer<VT>,
{
    let id = format!("{}.{step}", stream.flow().id());
    let results = stream.map(step, move |m: KafkaSinkMessage<KT, VT>| {
        let key = match encode(&key_serializer, &m.key, m.topic.as_deref(), MessageField::Key) {
            Ok(key) => key,
            Err(e) => return Err(encode_failure(&id, MessageField::Key, m, e)),
        };
        match encode(
            &value_serializer,
            &m.value,
            m.topic.as_deref(),
            MessageField::Value,
        ) {
            Ok(value) => Ok(m.with_key_and_value(Some(key), Some(value))),
            Err(e) => Err(encode_failure(&id, MessageField::Value, m, e)),
        }
    });
    split(&results, step)
}
