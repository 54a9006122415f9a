//! JSON in the Confluent wire format (byte 0, a 4-byte schema id, the JSON text), validated
//! against a JSON Schema registered in a [`SchemaRegistry`] (Confluent's `JSONSerializer`).

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::registry::{SchemaRegistry, SchemaType, SubjectName, frame_header, split_frame};
use super::{Deserializer, SerdeContext, SerdeError, Serializer};

/// A compiled JSON Schema.
struct Schema {
    validator: jsonschema::Validator,
}

impl Schema {
    fn compile(text: &str, what: &str) -> Result<Schema, SerdeError> {
        let json: Value = serde_json::from_str(text)
            .map_err(|e| SerdeError::invalid(format!("{what} is not JSON")).caused_by(e))?;
        let validator = jsonschema::validator_for(&json)
            .map_err(|e| SerdeError::invalid(format!("{what} is not a valid JSON Schema: {e}")))?;
        Ok(Schema { validator })
    }

    /// Checks `value`, naming up to three places where it breaks the schema.
    fn check(&self, value: &Value) -> Result<(), SerdeError> {
        let problems: Vec<String> = self
            .validator
            .iter_errors(value)
            .take(3)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!("{} {e}", if at.is_empty() { "/".to_string() } else { at })
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SerdeError::invalid(format!(
                "the JSON does not match its schema: {}",
                problems.join("; ")
            )))
        }
    }
}

/// Decodes Confluent-framed JSON into a serde `T`, checking it against the writer's JSON
/// Schema (fetched once per id). Strict: the JSON must fill the payload exactly and match
/// the schema.
pub struct ConfluentJsonDeserializer<T> {
    registry: SchemaRegistry,
    validate: bool,
    schemas: RwLock<HashMap<u32, Arc<Schema>>>,
    _item: PhantomData<fn() -> T>,
}

impl<T> ConfluentJsonDeserializer<T> {
    /// A deserializer asking `registry` for writer schemas.
    pub fn new(registry: SchemaRegistry) -> Self {
        ConfluentJsonDeserializer {
            registry,
            validate: true,
            schemas: RwLock::new(HashMap::new()),
            _item: PhantomData,
        }
    }

    /// Whether to check each value against its writer schema (default `true`).
    pub fn validate(mut self, validate: bool) -> Self {
        self.validate = validate;
        self
    }

    fn schema(&self, id: u32) -> Result<Arc<Schema>, SerdeError> {
        if let Some(s) = self.schemas.read().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return Ok(s.clone());
        }
        let registered = self.registry.schema_by_id(id).map_err(|e| {
            e.into_serde(format!(
                "cannot fetch the schema of id {id} from the schema registry at {}",
                self.registry.url()
            ))
        })?;
        if registered.schema_type != SchemaType::Json {
            return Err(SerdeError::invalid(format!(
                "schema id {id} is a {:?} schema, not a JSON Schema",
                registered.schema_type
            )));
        }
        let schema = Arc::new(Schema::compile(&registered.schema, &format!("schema id {id}"))?);
        self.schemas
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, schema.clone());
        Ok(schema)
    }
}

impl<T> fmt::Debug for ConfluentJsonDeserializer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfluentJsonDeserializer")
            .field("registry", &self.registry)
            .field("validate", &self.validate)
            .finish()
    }
}

impl<T: DeserializeOwned + 'static> Deserializer<T> for ConfluentJsonDeserializer<T> {
    fn deserialize(&self, bytes: &[u8], _: &SerdeContext<'_>) -> Result<T, SerdeError> {
        let (id, json) = split_frame(bytes)?;
        let value: Value =
            serde_json::from_slice(json).map_err(|e| SerdeError::invalid("invalid JSON").caused_by(e))?;
        if self.validate {
            self.schema(id)?
                .check(&value)
                .map_err(|e| SerdeError::invalid(format!("with writer schema id {id}")).caused_by(e))?;
        }
        serde_json::from_value(value)
            .map_err(|e| SerdeError::invalid("the JSON does not fit the type").caused_by(e))
    }
}

/// Encodes serde items as Confluent-framed JSON, checked against `schema` (a JSON Schema)
/// and registered under the subject [`SubjectName`] names (the record name is the schema's
/// `title`, as in Confluent's clients).
pub struct ConfluentJsonSerializer {
    registry: SchemaRegistry,
    text: String,
    schema: Schema,
    title: Option<String>,
    subject: SubjectName,
    auto_register: bool,
}

impl ConfluentJsonSerializer {
    /// A serializer checking items against `schema` and registering it.
    pub fn new(registry: SchemaRegistry, schema: &str, subject: SubjectName) -> Result<Self, SerdeError> {
        let compiled = Schema::compile(schema, "the schema")?;
        let title = serde_json::from_str::<Value>(schema)
            .ok()
            .and_then(|v| v.get("title").and_then(Value::as_str).map(str::to_string));
        Ok(ConfluentJsonSerializer {
            registry,
            text: schema.to_string(),
            schema: compiled,
            title,
            subject,
            auto_register: true,
        })
    }

    /// Whether to register the schema (`true`, the default) or only look up its id.
    pub fn auto_register(mut self, register: bool) -> Self {
        self.auto_register = register;
        self
    }
}

impl fmt::Debug for ConfluentJsonSerializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfluentJsonSerializer")
            .field("registry", &self.registry)
            .field("subject", &self.subject)
            .finish()
    }
}

impl<T: Serialize> Serializer<T> for ConfluentJsonSerializer {
    fn serialize(&self, item: &T, ctx: &SerdeContext<'_>) -> Result<Vec<u8>, SerdeError> {
        let value = serde_json::to_value(item)
            .map_err(|e| SerdeError::invalid("cannot encode as JSON").caused_by(e))?;
        self.schema.check(&value)?;
        let subject = self.subject.subject(ctx, self.title.as_deref())?;
        let id = if self.auto_register {
            self.registry
                .register(&subject, SchemaType::Json, &self.text, &[])
        } else {
            self.registry.look_up(&subject, SchemaType::Json, &self.text, &[])
        }
        .map_err(|e| {
            e.into_serde(format!(
                "cannot register the JSON Schema under subject {subject:?} in the schema registry at {}",
                self.registry.url()
            ))
        })?;
        let mut out = frame_header(id);
        serde_json::to_writer(&mut out, &value)
            .map_err(|e| SerdeError::invalid("cannot encode as JSON").caused_by(e))?;
        Ok(out)
    }
}
