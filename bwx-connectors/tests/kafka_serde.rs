//! The (de)serializers on their own: the corrupt Confluent Avro payloads of the strict-decoding
//! report, a fuzz test over the plain and Confluent Avro decoders, the registry client
//! against both registries' answers, retries and caching (feature `avro`).
#![cfg(feature = "avro")]

mod kafka_common;

use std::time::Duration;

use bwx_connectors::kafka::serde::{
    ConfluentAvroDeserializer, ConfluentAvroSerializer, Deserializer, PlainAvroDeserializer,
    PlainAvroSerializer, RegistryErrorKind, RetryPolicy, SchemaReference, SchemaRegistry, SchemaType,
    SerdeContext, SerdeErrorKind, Serializer, SubjectName,
};
use kafka_common::registry::{Flavor, MockRegistry};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde::{Deserialize, Serialize};

const REC: &str = r#"{"type":"record","name":"Rec","fields":[
    {"name":"id","type":"long"},{"name":"name","type":"string"}]}"#;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Rec {
    id: i64,
    name: String,
}

fn ctx() -> SerdeContext<'static> {
    SerdeContext::value("t")
}

fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Schema id 1 = `Rec{id: long, name: string}`; the two payloads that were accepted as
/// `{"id":4,"name":null}` and `{"id":7,"name":"g"}` are errors, generic and typed.
#[test]
fn the_reported_corrupt_confluent_avro_payloads_are_errors() {
    let registry = MockRegistry::start();
    assert_eq!(registry.register("t-value", "AVRO", REC), 1);
    let client = SchemaRegistry::new(&registry.url).unwrap();
    let generic = ConfluentAvroDeserializer::<serde_json::Value>::new(client.clone());
    let typed = ConfluentAvroDeserializer::<Rec>::new(client);
    let truncated = [0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x0c, 0x64, 0x64, 0x64];
    let trailing = [0x00, 0x00, 0x00, 0x00, 0x01, 0x0e, 0x02, 0x67, 0x00, 0x01, 0x02];
    for e in [
        generic.deserialize(&truncated, &ctx()).unwrap_err(),
        typed.deserialize(&truncated, &ctx()).unwrap_err(),
    ] {
        assert_eq!(e.kind(), SerdeErrorKind::Invalid);
        let text = error_text(&e);
        assert!(
            text.contains("writer schema id 1") && text.contains("truncated"),
            "{text}"
        );
        assert!(!text.contains("got Null"), "{text}");
    }
    for e in [
        generic.deserialize(&trailing, &ctx()).unwrap_err(),
        typed.deserialize(&trailing, &ctx()).unwrap_err(),
    ] {
        assert_eq!(e.kind(), SerdeErrorKind::Invalid);
        let text = error_text(&e);
        assert!(
            text.contains("3 bytes left after a complete datum of 3 bytes"),
            "{text}"
        );
    }
    // The same datum without the 3 extra bytes is fine.
    assert_eq!(
        typed.deserialize(&trailing[..8], &ctx()).unwrap(),
        Rec {
            id: 7,
            name: "g".into()
        }
    );
    assert_eq!(
        registry.requests("GET /schemas/ids"),
        1,
        "schema 1 is fetched once"
    );
}

#[test]
fn frames_and_ids_are_checked() {
    let registry = MockRegistry::start();
    registry.register("t-value", "AVRO", REC);
    let de = ConfluentAvroDeserializer::<Rec>::new(SchemaRegistry::new(&registry.url).unwrap());
    let e = de.deserialize(&[1, 0, 0, 0, 1, 0, 0], &ctx()).unwrap_err();
    assert!(e.to_string().contains("not the magic byte 0"), "{e}");
    let e = de.deserialize(&[0, 0, 0], &ctx()).unwrap_err();
    assert!(e.to_string().contains("shorter than the 5-byte header"), "{e}");
    // An id the registry does not have: the registry answered, so the message is at fault.
    let e = de.deserialize(&[0, 0, 0, 0, 9, 0, 0], &ctx()).unwrap_err();
    assert_eq!(e.kind(), SerdeErrorKind::Invalid);
    let text = error_text(&e);
    assert!(text.contains("schema of id 9") && text.contains("404"), "{text}");
    // A schema of another type under that id is no Avro schema.
    let json_id = registry.register("j-value", "JSON", r#"{"type":"object"}"#);
    let e = de
        .deserialize(&[0, 0, 0, 0, json_id as u8, 0, 0], &ctx())
        .unwrap_err();
    assert!(e.to_string().contains("is a Json schema, not Avro"), "{e}");
}

/// A schema with every kind of value whose truncation apache-avro would read as null
/// (boolean, string, union index) and the rest of Avro's types.
const EVERYTHING: &str = r#"{"type":"record","name":"Everything","namespace":"bwx.fuzz","fields":[
    {"name":"id","type":"long"},
    {"name":"flag","type":"boolean"},
    {"name":"note","type":["null","string"]},
    {"name":"tags","type":{"type":"array","items":"string"}},
    {"name":"attrs","type":{"type":"map","values":"int"}},
    {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B","C"]}},
    {"name":"score","type":"double"},
    {"name":"blob","type":"bytes"},
    {"name":"code","type":{"type":"fixed","name":"Code","size":2}}]}"#;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    A,
    B,
    C,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Everything {
    id: i64,
    flag: bool,
    note: Option<String>,
    tags: Vec<String>,
    attrs: std::collections::BTreeMap<String, i32>,
    kind: Kind,
    score: f64,
    #[serde(with = "serde_bytes_vec")]
    blob: Vec<u8>,
    #[serde(with = "serde_fixed")]
    code: [u8; 2],
}

/// Avro `bytes` as serde bytes (apache-avro reads them back through `deserialize_bytes`).
mod serde_bytes_vec {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_bytes(V)
    }
}

mod serde_fixed {
    pub fn serialize<S: serde::Serializer>(v: &[u8; 2], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 2], D::Error> {
        let v = super::serde_bytes_vec::deserialize(d)?;
        v.try_into()
            .map_err(|v: Vec<u8>| serde::de::Error::custom(format!("{} bytes, not 2", v.len())))
    }
}

fn everything() -> impl Strategy<Value = Everything> {
    (
        any::<i64>(),
        any::<bool>(),
        proptest::option::of(".{0,8}"),
        proptest::collection::vec(".{0,4}", 0..3),
        proptest::collection::btree_map("[a-z]{1,3}", any::<i32>(), 0..3),
        prop_oneof![Just(Kind::A), Just(Kind::B), Just(Kind::C)],
        any::<f64>().prop_filter("NaN never equals itself", |f| !f.is_nan()),
        proptest::collection::vec(any::<u8>(), 0..6),
        any::<[u8; 2]>(),
    )
        .prop_map(
            |(id, flag, note, tags, attrs, kind, score, blob, code)| Everything {
                id,
                flag,
                note,
                tags,
                attrs,
                kind,
                score,
                blob,
                code,
            },
        )
}

/// What one payload may be turned into.
#[derive(Clone, Debug)]
enum Mutation {
    /// Cut after this many bytes (taken modulo the length).
    Truncate(usize),
    /// Append these bytes.
    Append(Vec<u8>),
    /// Replace the byte at this index (modulo the length) with this one.
    Set(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..8).prop_map(Mutation::Append),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
    ]
}

/// Both decoders over random bytes and over mutated valid datums: nothing panics; plain and
/// Confluent agree; every truncation and every appended byte is an error; whatever decodes
/// is a value that encodes back to a datum decoding to the same value.
#[test]
fn fuzz_the_plain_and_confluent_avro_decoders() {
    let registry = MockRegistry::start();
    let id = registry.register("fuzz-value", "AVRO", EVERYTHING);
    let plain = PlainAvroDeserializer::<Everything>::new(EVERYTHING).unwrap();
    let plain_generic = PlainAvroDeserializer::<serde_json::Value>::new(EVERYTHING).unwrap();
    let writer = PlainAvroSerializer::new(EVERYTHING).unwrap();
    let confluent = ConfluentAvroDeserializer::<Everything>::new(SchemaRegistry::new(&registry.url).unwrap());
    let framed = |datum: &[u8]| {
        let mut out = vec![0, 0, 0, 0, id as u8];
        out.extend_from_slice(datum);
        out
    };
    let check = |datum: &[u8]| -> Result<Option<Everything>, TestCaseError> {
        let p = plain.deserialize(datum, &ctx());
        let c = confluent.deserialize(&framed(datum), &ctx());
        let g = plain_generic.deserialize(datum, &ctx());
        prop_assert_eq!(
            p.is_ok(),
            c.is_ok(),
            "plain and Confluent disagree on {:?}",
            datum
        );
        prop_assert_eq!(p.is_ok(), g.is_ok(), "typed and generic disagree on {:?}", datum);
        match (p, c) {
            (Ok(p), Ok(c)) => {
                prop_assert_eq!(&p, &c);
                let again = writer.serialize(&p, &ctx()).expect("a decoded value encodes");
                prop_assert_eq!(plain.deserialize(&again, &ctx()).expect("and decodes"), p.clone());
                Ok(Some(p))
            }
            _ => Ok(None),
        }
    };

    let mut runner = TestRunner::new(Config {
        cases: 600,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..48), |bytes| {
            check(&bytes)?;
            Ok(())
        })
        .unwrap();

    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(everything(), mutation()), |(value, m)| {
            let datum = writer.serialize(&value, &ctx()).unwrap();
            prop_assert_eq!(check(&datum)?, Some(value.clone()), "a valid datum decodes");
            match m {
                Mutation::Truncate(at) => {
                    let at = at % datum.len();
                    prop_assert_eq!(
                        check(&datum[..at])?,
                        None,
                        "a datum cut at {} of {} decoded",
                        at,
                        datum.len()
                    );
                }
                Mutation::Append(extra) => {
                    let mut longer = datum.clone();
                    longer.extend_from_slice(&extra);
                    prop_assert_eq!(
                        check(&longer)?,
                        None,
                        "a datum with {} more bytes decoded",
                        extra.len()
                    );
                }
                Mutation::Set(i, b) => {
                    let mut changed = datum.clone();
                    let i = i % changed.len();
                    changed[i] = b;
                    check(&changed)?;
                }
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(
        registry.requests("GET /schemas/ids"),
        1,
        "the writer schema is cached"
    );
}

#[test]
fn a_subjects_latest_schema_from_both_registries() {
    for flavor in [Flavor::Confluent, Flavor::Redpanda] {
        let registry = MockRegistry::start_flavor(flavor);
        let v1 = r#"{"type":"record","name":"Rec","fields":[{"name":"id","type":"long"}]}"#;
        registry.register("s-value", "AVRO", v1);
        let id2 = registry.register("s-value", "AVRO", REC);
        registry.register("p-value", "AVRO", r#"{"type":"string"}"#);
        let client = SchemaRegistry::new(&registry.url).unwrap();
        let latest = client.latest("s-value").unwrap();
        assert_eq!(
            (
                latest.id,
                latest.version,
                latest.subject.as_deref(),
                latest.schema_type
            ),
            (Some(id2), Some(2), Some("s-value"), SchemaType::Avro),
            "{flavor:?}"
        );
        assert_eq!(latest.schema, REC);
        // A plain Avro deserializer built from the latest schema (Bytewax's recipe).
        let de = PlainAvroDeserializer::<Rec>::new(&latest.schema).unwrap();
        assert_eq!(de.deserialize(&[0x0e, 0x02, 0x67], &ctx()).unwrap().name, "g");
        // A primitive schema, as either registry gives it back, still parses.
        let p = client.latest("p-value").unwrap();
        let de = PlainAvroDeserializer::<String>::new(&p.schema).unwrap();
        assert_eq!(
            de.deserialize(&[0x02, 0x78], &ctx()).unwrap(),
            "x",
            "{flavor:?}: {}",
            p.schema
        );
        let missing = client.latest("nope").unwrap_err();
        assert_eq!(
            (missing.kind(), missing.status()),
            (RegistryErrorKind::NotFound, Some(404))
        );

        // A serializer that writes with the subject's latest schema.
        let ser = ConfluentAvroSerializer::latest(client.clone(), SubjectName::Topic);
        let rec = Rec {
            id: 1,
            name: "n".into(),
        };
        let bytes = ser.serialize(&rec, &SerdeContext::value("s")).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, id2 as u8]);
        let back = ConfluentAvroDeserializer::<Rec>::new(client)
            .deserialize(&bytes, &ctx())
            .unwrap();
        assert_eq!(back, rec);
    }
}

#[test]
fn registration_works_on_both_registries_and_is_cached() {
    for flavor in [Flavor::Confluent, Flavor::Redpanda] {
        let registry = MockRegistry::start_flavor(flavor);
        let client = SchemaRegistry::new(&registry.url).unwrap();
        let ser = ConfluentAvroSerializer::new(client.clone(), REC, SubjectName::Topic).unwrap();
        let rec = Rec {
            id: 3,
            name: "x".into(),
        };
        for topic in ["a", "a", "b"] {
            let bytes = ser.serialize(&rec, &SerdeContext::value(topic)).unwrap();
            assert_eq!(&bytes[..5], &[0, 0, 0, 0, 1], "{flavor:?}");
        }
        assert_eq!(
            registry.requests("POST /subjects/versions"),
            2,
            "once per subject"
        );
        // Look-up only: a subject without the schema is an error, not a registration.
        let strict = ConfluentAvroSerializer::new(client.clone(), REC, SubjectName::Record)
            .unwrap()
            .auto_register(false);
        let e = strict.serialize(&rec, &SerdeContext::value("a")).unwrap_err();
        assert!(error_text(&e).contains("subject \"Rec\""), "{}", error_text(&e));
        assert_eq!(e.kind(), SerdeErrorKind::Invalid);
        // An item that does not fit the schema is the item's fault.
        let e = ser.serialize(&"text", &SerdeContext::value("a")).unwrap_err();
        assert_eq!(e.kind(), SerdeErrorKind::Invalid);
        // A message without topic cannot name a topic subject.
        let e = ser
            .serialize(
                &rec,
                &SerdeContext {
                    topic: None,
                    field: bwx_connectors::kafka::MessageField::Key,
                },
            )
            .unwrap_err();
        assert!(e.to_string().contains("has none"), "{e}");
    }
}

#[test]
fn transient_failures_are_retried_and_outages_end_in_unavailable() {
    let registry = MockRegistry::start();
    registry.register("t-value", "AVRO", REC);
    // Three 503s, then the answer: one call, retried.
    registry.fail_next(3);
    let client = SchemaRegistry::new(&registry.url)
        .unwrap()
        .retry(RetryPolicy::up_to(Duration::from_secs(10)));
    let schema = client.schema_by_id(1).unwrap();
    assert_eq!(schema.schema, REC);
    // Down for longer than the limit: unavailable, naming the limit.
    registry.stop();
    let quick = SchemaRegistry::new(&registry.url)
        .unwrap()
        .retry(RetryPolicy::up_to(Duration::from_millis(600)));
    let started = std::time::Instant::now();
    let e = quick.schema_by_id(1).unwrap_err();
    assert_eq!(e.kind(), RegistryErrorKind::Unavailable);
    assert!(started.elapsed() >= Duration::from_millis(300), "it retried");
    assert!(e.to_string().contains("retry limit is 600ms"), "{e}");
    let de = ConfluentAvroDeserializer::<Rec>::new(quick);
    let e = de
        .deserialize(&[0, 0, 0, 0, 1, 0x0e, 0x02, 0x67], &ctx())
        .unwrap_err();
    assert_eq!(e.kind(), SerdeErrorKind::Unavailable, "{e}");
    // The cached schema outlives the outage.
    assert_eq!(client.schema_by_id(1).unwrap().schema, REC);
    registry.restart();
    assert!(de.deserialize(&[0, 0, 0, 0, 1, 0x0e, 0x02, 0x67], &ctx()).is_ok());
}

#[test]
fn schema_references_resolve_through_the_registry() {
    let registry = MockRegistry::start();
    let point = r#"{"type":"record","name":"Point","namespace":"geo","fields":[{"name":"x","type":"long"}]}"#;
    registry.register("geo.Point", "AVRO", point);
    let line = r#"{"type":"record","name":"Line","namespace":"geo","fields":[
        {"name":"from","type":"geo.Point"},{"name":"to","type":"geo.Point"}]}"#;
    // Registered with a reference, as Confluent's clients do.
    let id = register_with_reference(&registry, "lines-value", line, "geo.Point", "geo.Point", 1);
    let de = ConfluentAvroDeserializer::<serde_json::Value>::new(SchemaRegistry::new(&registry.url).unwrap());
    let value = de
        .deserialize(&[0, 0, 0, 0, id as u8, 0x02, 0x04], &ctx())
        .unwrap();
    assert_eq!(value, serde_json::json!({"from": {"x": 1}, "to": {"x": 2}}));
}

const UNIT: &str = r#"{"type":"enum","name":"Unit","namespace":"geo","symbols":["M","KM"]}"#;
const POINT: &str = r#"{"type":"record","name":"Point","namespace":"geo","fields":[
    {"name":"x","type":"long"},{"name":"unit","type":"geo.Unit"}]}"#;
const ROUTE: &str = r#"{"type":"record","name":"Route","namespace":"geo","fields":[
    {"name":"name","type":"string"},{"name":"stops","type":{"type":"array","items":"geo.Point"}}]}"#;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Unit {
    M,
    #[serde(rename = "KM")]
    Km,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i64,
    unit: Unit,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Route {
    name: String,
    stops: Vec<Point>,
}

fn reference(name: &str, subject: &str, version: u32) -> SchemaReference {
    SchemaReference {
        name: name.into(),
        subject: subject.into(),
        version,
    }
}

/// A record that references a record registered under another subject, which references an
/// enum under a third: the serializer registers it with its reference, and a deserializer
/// with a client of its own resolves the references from the registry alone, on both
/// registries' answers. Each referenced version is fetched once.
#[test]
fn a_record_referencing_other_subjects_round_trips() {
    for flavor in [Flavor::Confluent, Flavor::Redpanda] {
        let registry = MockRegistry::start_flavor(flavor);
        let client = SchemaRegistry::new(&registry.url).unwrap();
        client.register("geo.Unit", SchemaType::Avro, UNIT, &[]).unwrap();
        client
            .register(
                "geo.Point",
                SchemaType::Avro,
                POINT,
                &[reference("geo.Unit", "geo.Unit", 1)],
            )
            .unwrap();
        let ser = ConfluentAvroSerializer::with_references(
            client.clone(),
            ROUTE,
            &[reference("geo.Point", "geo.Point", 1)],
            SubjectName::Topic,
        )
        .unwrap();
        let route = Route {
            name: "r1".into(),
            stops: vec![
                Point { x: 1, unit: Unit::M },
                Point {
                    x: -3,
                    unit: Unit::Km,
                },
            ],
        };
        let bytes = ser.serialize(&route, &SerdeContext::value("routes")).unwrap();
        assert_eq!(
            &bytes[..5],
            &[0, 0, 0, 0, 3],
            "{flavor:?}: registered as the third schema"
        );

        // What the registry holds: the schema with its reference.
        let stored = client.latest("routes-value").unwrap();
        assert_eq!(stored.references, vec![reference("geo.Point", "geo.Point", 1)]);

        let fresh = SchemaRegistry::new(&registry.url).unwrap();
        let typed = ConfluentAvroDeserializer::<Route>::new(fresh.clone());
        let generic = ConfluentAvroDeserializer::<serde_json::Value>::new(fresh);
        let fetched = registry.requests("GET /subjects/versions/n");
        for _ in 0..3 {
            assert_eq!(typed.deserialize(&bytes, &ctx()).unwrap(), route, "{flavor:?}");
        }
        assert_eq!(
            generic.deserialize(&bytes, &ctx()).unwrap(),
            serde_json::json!({"name": "r1", "stops": [{"x": 1, "unit": "M"}, {"x": -3, "unit": "KM"}]})
        );
        assert_eq!(
            registry.requests("GET /subjects/versions/n") - fetched,
            2,
            "{flavor:?}: geo.Point v1 and geo.Unit v1, once each (cached across deserializers of one client)"
        );
        // A truncated datum of the referencing schema is still an error.
        assert!(typed.deserialize(&bytes[..bytes.len() - 1], &ctx()).is_err());
    }
}

/// A reference to a subject or version the registry does not have is an error naming the
/// subject and version, for the serializer (when built) and the deserializer (on `errs`,
/// as the data's fault: the registry answered).
#[test]
fn a_missing_reference_names_its_subject_and_version() {
    let registry = MockRegistry::start();
    // Retries only ride out a slow machine: a 404 is final and never retried.
    let client = SchemaRegistry::new(&registry.url)
        .unwrap()
        .retry(RetryPolicy::up_to(Duration::from_secs(120)));
    client.register("geo.Unit", SchemaType::Avro, UNIT, &[]).unwrap();
    // Version 2 of geo.Unit does not exist.
    let e = ConfluentAvroSerializer::with_references(
        client.clone(),
        POINT,
        &[reference("geo.Unit", "geo.Unit", 2)],
        SubjectName::Topic,
    )
    .unwrap_err();
    let text = error_text(&e);
    assert_eq!(e.kind(), SerdeErrorKind::Invalid, "{text}");
    assert!(
        text.contains(
            r#"references "geo.Unit" as subject "geo.Unit" version 2, which the schema registry at"#
        ) && text.contains("does not have"),
        "{text}"
    );
    // A schema registered (by another producer) with a reference to a subject that is gone.
    let id = register_with_reference(&registry, "points-value", POINT, "geo.Unit", "geo.Units", 1);
    let de = ConfluentAvroDeserializer::<Point>::new(client.clone());
    let e = de
        .deserialize(&[0, 0, 0, 0, id as u8, 0x02, 0x00], &ctx())
        .unwrap_err();
    let text = error_text(&e);
    assert_eq!(e.kind(), SerdeErrorKind::Invalid, "{text}");
    assert!(
        text.contains(&format!("cannot fetch the schema of id {id}"))
            && text.contains(r#"subject "geo.Units" version 1"#)
            && text.contains("404"),
        "{text}"
    );
    // A nested reference that is missing names the schema that references it.
    let id = register_with_reference(&registry, "routes-value", ROUTE, "geo.Point", "points-value", 1);
    let de = ConfluentAvroDeserializer::<Route>::new(client);
    let e = de.deserialize(&[0, 0, 0, 0, id as u8, 0x00], &ctx()).unwrap_err();
    let text = error_text(&e);
    assert!(
        text.contains(
            r#"subject "points-value" version 1 references "geo.Unit" as subject "geo.Units" version 1"#
        ),
        "{text}"
    );
}

/// Registers `schema` with one reference through the registry client.
fn register_with_reference(
    registry: &MockRegistry,
    subject: &str,
    schema: &str,
    name: &str,
    ref_subject: &str,
    version: u32,
) -> u32 {
    let client = SchemaRegistry::new(&registry.url).unwrap();
    client
        .register(
            subject,
            SchemaType::Avro,
            schema,
            &[reference(name, ref_subject, version)],
        )
        .unwrap()
}

#[cfg(feature = "json-schema")]
mod json_schema {
    use bwx_connectors::kafka::serde::{ConfluentJsonDeserializer, ConfluentJsonSerializer};

    use super::*;

    pub const SCHEMA: &str = r#"{"title":"Reading","type":"object","required":["sensor","value"],
        "properties":{"sensor":{"type":"string"},"value":{"type":"number","minimum":0}},
        "additionalProperties":false}"#;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Reading {
        pub sensor: String,
        pub value: f64,
    }

    #[test]
    fn json_schema_round_trip_validates_both_ways() {
        let registry = MockRegistry::start();
        let client = SchemaRegistry::new(&registry.url).unwrap();
        let ser = ConfluentJsonSerializer::new(client.clone(), SCHEMA, SubjectName::Topic).unwrap();
        let de = ConfluentJsonDeserializer::<Reading>::new(client);
        let r = Reading {
            sensor: "a".into(),
            value: 1.5,
        };
        let bytes = ser.serialize(&r, &ctx()).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 1]);
        assert_eq!(&bytes[5..], br#"{"sensor":"a","value":1.5}"#);
        assert_eq!(de.deserialize(&bytes, &ctx()).unwrap(), r);
        // An item that breaks the schema is not written.
        let bad = Reading {
            sensor: "a".into(),
            value: -1.0,
        };
        let e = ser.serialize(&bad, &ctx()).unwrap_err();
        assert!(e.to_string().contains("/value"), "{e}");
        // Bytes that break the writer's schema, or are not JSON, are not read.
        let mut wrong = bytes[..5].to_vec();
        wrong.extend_from_slice(br#"{"sensor":"a","value":1.5,"extra":1}"#);
        assert!(
            error_text(&de.deserialize(&wrong, &ctx()).unwrap_err()).contains("does not match its schema")
        );
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() - 2);
        assert!(de.deserialize(&cut, &ctx()).is_err());
        let mut longer = bytes.clone();
        longer.extend_from_slice(b" x");
        assert!(de.deserialize(&longer, &ctx()).is_err());
        assert_eq!(registry.requests("POST /subjects/versions"), 1);
        assert!(
            ConfluentJsonSerializer::new(
                SchemaRegistry::new(&registry.url).unwrap(),
                "{\"type\": 5}",
                SubjectName::Topic
            )
            .is_err()
        );
    }
}

#[cfg(feature = "protobuf")]
mod protobuf {
    use bwx_connectors::kafka::serde::{ConfluentProtobufDeserializer, ConfluentProtobufSerializer};

    use super::*;

    pub const PROTO: &str = r#"syntax = "proto3";
package sensors;
message Unit { string name = 1; }
message Reading { string sensor = 1; double value = 2; message Note { string text = 1; } }
"#;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Reading {
        #[prost(string, tag = "1")]
        pub sensor: String,
        #[prost(double, tag = "2")]
        pub value: f64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Unit {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    #[test]
    fn protobuf_round_trip_checks_the_message_type() {
        let registry = MockRegistry::start();
        let client = SchemaRegistry::new(&registry.url).unwrap();
        let ser = ConfluentProtobufSerializer::<Reading>::new(
            client.clone(),
            PROTO,
            "sensors.Reading",
            SubjectName::Topic,
        )
        .unwrap();
        let de = ConfluentProtobufDeserializer::<Reading>::new(client.clone(), "sensors.Reading");
        let r = Reading {
            sensor: "a".into(),
            value: 2.5,
        };
        let bytes = ser.serialize(&r, &ctx()).unwrap();
        // Frame, then the message indexes [1] (the second message): count 1, index 1, zigzag.
        assert_eq!(&bytes[..7], &[0, 0, 0, 0, 1, 2, 2]);
        assert_eq!(de.deserialize(&bytes, &ctx()).unwrap(), r);
        // A Unit (index [0], one byte 0) is not read as a Reading.
        let units =
            ConfluentProtobufSerializer::<Unit>::new(client, PROTO, "sensors.Unit", SubjectName::Topic)
                .unwrap();
        let unit = units.serialize(&Unit { name: "m".into() }, &ctx()).unwrap();
        assert_eq!(&unit[..6], &[0, 0, 0, 0, 1, 0]);
        let e = de.deserialize(&unit, &ctx()).unwrap_err();
        assert!(e.to_string().contains("written as message sensors.Unit"), "{e}");
        // A cut message is an error.
        assert!(de.deserialize(&bytes[..bytes.len() - 3], &ctx()).is_err());
        assert!(
            ConfluentProtobufSerializer::<Reading>::new(
                SchemaRegistry::new(&registry.url).unwrap(),
                PROTO,
                "sensors.Nope",
                SubjectName::Topic
            )
            .is_err()
        );
    }
}
