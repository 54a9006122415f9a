//! Kafka operators: `input` and `output`, and key/value (de)serialization, each splitting
//! into `oks` and `errs`.
//!
//! An operator called with step id `s` adds the steps `s` (the source, for [`input`]),
//! `s_split`, `s_oks` and `s_errs`. Errors are data on `errs`: nothing is dropped silently.

use bwx_runtime::{Data, Dataflow, Stream};

use super::message::{Bytes, KafkaError, KafkaSinkMessage, KafkaSourceMessage};
use super::serde::{Deserializer, Serializer};
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
/// ```no_run
/// use bwx_connectors::kafka::{self, KafkaConfig, KafkaSource};
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::testing::TestingSink;
///
/// let flow = Dataflow::new("read");
/// let source = KafkaSource::new(KafkaConfig::new("127.0.0.1:9092"), ["events"]).tail(false);
/// let out = kafka::input(&flow, "in", source);
/// out.oks.output("oks", TestingSink::new());
/// out.errs.output("errs", TestingSink::new());
/// bwx_runtime::run_main(&flow).unwrap();
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
        match m.key.as_deref().map(|k| deserializer.deserialize(k)).transpose() {
            Ok(key) => Ok(m.with_key(key)),
            Err(e) => Err(KafkaError {
                error: format!("step {id}: cannot deserialize the key of {}: {e}", where_from(&m)),
                message: m,
            }),
        }
    });
    split(&results, step)
}

/// Decodes message values; a missing value (tombstone) stays `None`, a value that cannot be
/// decoded goes to `errs` with its message.
///
/// ```no_run
/// use bwx_connectors::kafka::{self, JsonDeserializer, KafkaConfig, KafkaSource};
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::testing::TestingSink;
///
/// let flow = Dataflow::new("json");
/// let msgs = kafka::input(&flow, "in", KafkaSource::new(KafkaConfig::new("127.0.0.1:9092"), ["t"]));
/// let values = kafka::deserialize_value(&msgs.oks, "decode", JsonDeserializer::<Vec<u32>>::new());
/// values.oks.output("ok", TestingSink::new());
/// values.errs.map("why", |e| e.error).output("bad", TestingSink::new());
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
        match m
            .value
            .as_deref()
            .map(|v| deserializer.deserialize(v))
            .transpose()
        {
            Ok(value) => Ok(m.with_value(value)),
            Err(e) => Err(KafkaError {
                error: format!(
                    "step {id}: cannot deserialize the value of {}: {e}",
                    where_from(&m)
                ),
                message: m,
            }),
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
        match serializer.serialize(&m.key) {
            Ok(key) => Ok(m.with_key(Some(key))),
            Err(e) => Err(KafkaError {
                error: format!("step {id}: cannot serialize a key: {e}"),
                message: m,
            }),
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
        match serializer.serialize(&m.value) {
            Ok(value) => Ok(m.with_value(Some(value))),
            Err(e) => Err(KafkaError {
                error: format!("step {id}: cannot serialize a value: {e}"),
                message: m,
            }),
        }
    });
    split(&results, step)
}
