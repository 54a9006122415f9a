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
/// values.errs.map("offset", |e| e.message.offset).output("bad", bad.clone());
/// bwx::run_main(&flow).unwrap();
/// assert_eq!(good.take(), vec![Some(vec![1, 2])]);
/// assert_eq!(bad.take(), vec![1]);
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
