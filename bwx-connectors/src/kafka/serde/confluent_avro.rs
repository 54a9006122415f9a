//! Avro in the Confluent wire format (byte 0, a 4-byte big-endian schema id, the datum),
//! with writer schemas fetched from, and schemas registered in, a [`SchemaRegistry`].

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::avro::AvroSchemas;
use super::registry::{SchemaReference, SchemaRegistry, SchemaType, SubjectName, frame_header, split_frame};
use super::{Deserializer, SerdeContext, SerdeError, Serializer};

/// The parsed Avro schema of a registered schema, with the schemas it references.
pub(crate) fn avro_schema_of(registry: &SchemaRegistry, id: u32) -> Result<AvroSchemas, SerdeError> {
    let fetch_error = |e: super::RegistryError| {
        e.into_serde(format!(
            "cannot fetch the schema of id {id} from the schema registry at {}",
            registry.url()
        ))
    };
    let schema = registry.schema_by_id(id).map_err(fetch_error)?;
    if schema.schema_type != SchemaType::Avro {
        return Err(SerdeError::invalid(format!(
            "schema id {id} is a {:?} schema, not Avro",
            schema.schema_type
        )));
    }
    let named: Vec<String> = registry
        .referenced(&schema)
        .map_err(fetch_error)?
        .iter()
        .map(|s| s.schema.clone())
        .collect();
    AvroSchemas::parse(&schema.schema, &named).map_err(|e| {
        SerdeError::invalid(format!(
            "schema id {id} in the registry is not a valid Avro schema"
        ))
        .caused_by(e)
    })
}

/// Decodes Confluent-framed Avro into a serde `T` (a struct, or `serde_json::Value` for
/// any datum), looking writer schemas up by id (once per id).
///
/// Strict: a payload that is not framed, names an id the registry does not have, holds a
/// truncated datum or bytes after the datum, or does not fit `T`, is an
/// [`Invalid`](super::SerdeErrorKind::Invalid) error. A registry that does not answer
/// within its [`RetryPolicy`](super::RetryPolicy) is
/// [`Unavailable`](super::SerdeErrorKind::Unavailable).
pub struct ConfluentAvroDeserializer<T> {
    registry: SchemaRegistry,
    schemas: RwLock<HashMap<u32, Arc<AvroSchemas>>>,
    _item: PhantomData<fn() -> T>,
}

impl<T> ConfluentAvroDeserializer<T> {
    /// A deserializer asking `registry` for writer schemas.
    pub fn new(registry: SchemaRegistry) -> Self {
        ConfluentAvroDeserializer {
            registry,
            schemas: RwLock::new(HashMap::new()),
            _item: PhantomData,
        }
    }

    fn schemas(&self, id: u32) -> Result<Arc<AvroSchemas>, SerdeError> {
        if let Some(s) = self.schemas.read().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return Ok(s.clone());
        }
        let parsed = Arc::new(avro_schema_of(&self.registry, id)?);
        self.schemas
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, parsed.clone());
        Ok(parsed)
    }
}

impl<T> fmt::Debug for ConfluentAvroDeserializer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfluentAvroDeserializer")
            .field("registry", &self.registry)
            .finish()
    }
}

impl<T: DeserializeOwned + 'static> Deserializer<T> for ConfluentAvroDeserializer<T> {
    fn deserialize(&self, bytes: &[u8], _: &SerdeContext<'_>) -> Result<T, SerdeError> {
        let (id, datum) = split_frame(bytes)?;
        self.schemas(id)?
            .decode(datum)
            .map_err(|e| SerdeError::invalid(format!("with writer schema id {id}")).caused_by(e))
    }
}

/// Which schema a serializer writes with.
enum WriterSchema {
    /// This one, registered (or looked up) under the subject with its references.
    Given {
        text: String,
        references: Vec<SchemaReference>,
        schemas: AvroSchemas,
    },
    /// The subject's latest, fetched once per subject.
    Latest(RwLock<HashMap<String, (u32, Arc<AvroSchemas>)>>),
}

/// Encodes serde items as Confluent-framed Avro: the schema is registered under the
/// subject that [`SubjectName`] names for the message (once per subject), or, with
/// [`latest`](Self::latest), the subject's latest schema is used.
pub struct ConfluentAvroSerializer {
    registry: SchemaRegistry,
    writer: WriterSchema,
    subject: SubjectName,
    auto_register: bool,
}

impl ConfluentAvroSerializer {
    /// A serializer writing with `schema` (Avro JSON), registering it under the subject
    /// `subject` names (`SubjectName::Topic`: `{topic}-value` for values, Confluent's default).
    pub fn new(registry: SchemaRegistry, schema: &str, subject: SubjectName) -> Result<Self, SerdeError> {
        Self::with_references(registry, schema, &[], subject)
    }

    /// A serializer writing with `schema`, which uses named types registered under other
    /// subjects: `references` names each (its Avro full name, subject and version; the
    /// schemas those reference are followed too). The referenced schemas are fetched now
    /// (once; cached) to check that `schema` parses with them, and `schema` is registered
    /// with its references, as Confluent's clients do. The referenced schemas must be
    /// registered already; a missing one is an error naming its subject and version.
    ///
    /// ```no_run
    /// use bwx::connectors::kafka::serde::{
    ///     ConfluentAvroSerializer, SchemaReference, SchemaRegistry, SerdeContext, Serializer,
    ///     SubjectName,
    /// };
    ///
    /// let registry = SchemaRegistry::new("http://127.0.0.1:8081").unwrap();
    /// // `geo.Point` is registered under the subject `geo.Point` (version 1).
    /// let line = r#"{"type":"record","name":"Line","namespace":"geo","fields":[
    ///     {"name":"from","type":"geo.Point"},{"name":"to","type":"geo.Point"}]}"#;
    /// let point = SchemaReference {
    ///     name: "geo.Point".into(),
    ///     subject: "geo.Point".into(),
    ///     version: 1,
    /// };
    /// let ser = ConfluentAvroSerializer::with_references(registry, line, &[point], SubjectName::Topic)
    ///     .unwrap();
    /// // Registered under `lines-value` with its reference, on first use.
    /// let line = serde_json::json!({"from": {"x": 1}, "to": {"x": 2}});
    /// let bytes = ser.serialize(&line, &SerdeContext::value("lines")).unwrap();
    /// assert_eq!(bytes[0], 0, "the Confluent magic byte");
    /// ```
    pub fn with_references(
        registry: SchemaRegistry,
        schema: &str,
        references: &[SchemaReference],
        subject: SubjectName,
    ) -> Result<Self, SerdeError> {
        let named: Vec<String> = if references.is_empty() {
            Vec::new()
        } else {
            registry
                .resolve_references(references)
                .map_err(|e| {
                    e.into_serde(format!(
                        "cannot fetch the schemas the writer schema references from the schema registry at {}",
                        registry.url()
                    ))
                })?
                .iter()
                .map(|s| s.schema.clone())
                .collect()
        };
        Ok(ConfluentAvroSerializer {
            writer: WriterSchema::Given {
                text: schema.to_string(),
                references: references.to_vec(),
                schemas: AvroSchemas::parse(schema, &named)?,
            },
            registry,
            subject,
            auto_register: true,
        })
    }

    /// A serializer writing with the latest schema of the subject `subject` names (fetched
    /// on first use per subject; Confluent's `use.latest.version`).
    pub fn latest(registry: SchemaRegistry, subject: SubjectName) -> Self {
        ConfluentAvroSerializer {
            registry,
            writer: WriterSchema::Latest(RwLock::new(HashMap::new())),
            subject,
            auto_register: false,
        }
    }

    /// Whether to register the schema (`true`, the default) or only look up its id, so that
    /// a schema missing from the registry is an error (Confluent's `auto.register.schemas`).
    pub fn auto_register(mut self, register: bool) -> Self {
        self.auto_register = register;
        self
    }

    fn latest_schema(
        &self,
        cache: &RwLock<HashMap<String, (u32, Arc<AvroSchemas>)>>,
        subject: &str,
    ) -> Result<(u32, Arc<AvroSchemas>), SerdeError> {
        if let Some(hit) = cache.read().unwrap_or_else(|e| e.into_inner()).get(subject) {
            return Ok(hit.clone());
        }
        let latest = self.registry.latest(subject).map_err(|e| {
            e.into_serde(format!(
                "cannot fetch the latest schema of subject {subject:?} from the schema registry at {}",
                self.registry.url()
            ))
        })?;
        let id = latest.id.ok_or_else(|| {
            SerdeError::unavailable(format!(
                "the schema registry at {} gave the latest schema of {subject:?} without its id",
                self.registry.url()
            ))
        })?;
        let found = (id, Arc::new(avro_schema_of(&self.registry, id)?));
        cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(subject.to_string(), found.clone());
        Ok(found)
    }
}

impl fmt::Debug for ConfluentAvroSerializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfluentAvroSerializer")
            .field("registry", &self.registry)
            .field("subject", &self.subject)
            .field("auto_register", &self.auto_register)
            .finish()
    }
}

impl<T: Serialize> Serializer<T> for ConfluentAvroSerializer {
    fn serialize(&self, item: &T, ctx: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError> {
        match &self.writer {
            WriterSchema::Given {
                text,
                references,
                schemas,
            } => {
                let subject = self.subject.subject(ctx, schemas.full_name().as_deref())?;
                let id = if self.auto_register {
                    self.registry
                        .register(&subject, SchemaType::Avro, text, references)
                } else {
                    self.registry
                        .look_up(&subject, SchemaType::Avro, text, references)
                }
                .map_err(|e| {
                    e.into_serde(format!(
                        "cannot {} the schema under subject {subject:?} in the schema registry at {}",
                        if self.auto_register { "register" } else { "look up" },
                        self.registry.url()
                    ))
                })?;
                let mut out = frame_header(id);
                schemas.encode(item, &mut out)?;
                Ok(out)
            }
            WriterSchema::Latest(cache) => {
                let subject = self.subject.subject(ctx, None)?;
                let (id, schemas) = self.latest_schema(cache, &subject)?;
                let mut out = frame_header(id);
                schemas.encode(item, &mut out)?;
                Ok(out)
            }
        }
    }
}
