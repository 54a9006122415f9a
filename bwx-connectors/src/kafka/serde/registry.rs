//! A schema-registry client for the Confluent wire format, speaking the REST API that
//! Confluent's Schema Registry and Redpanda's built-in registry share: schemas by id,
//! subjects' versions and latest version, registration and look-up, schema references.
//!
//! - **Cached.** A schema is fetched once per id, a registration once per subject and
//!   schema; clones of a [`SchemaRegistry`] share the cache (every worker of a flow).
//! - **Retried.** A registry that cannot be reached, times out, or answers 5xx, 408 or 429
//!   is asked again with exponential backoff for up to [`RetryPolicy`]'s limit (2 minutes by
//!   default) while the caller waits; only then is the call [`RegistryErrorKind::Unavailable`].
//!   An answer that settles the question (404: no such id, subject or version; 4xx: schema
//!   rejected) is never retried.
//! - **Tolerant of both registries' answers:** `subject` or Redpanda's older `name`, a
//!   missing `schemaType` (Avro), primitive schemas as given or canonicalized.
//!
//! Secrets (basic-auth password, bearer token, credentials in a URL) are never printed.

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{MessageField, SerdeContext, SerdeError};

/// The first byte of every Confluent-framed key or value.
pub(crate) const MAGIC: u8 = 0;

/// Splits a Confluent-framed payload into its schema id and the rest.
pub(crate) fn split_frame(bytes: &[u8]) -> Result<(u32, &[u8]), SerdeError> {
    match bytes {
        [MAGIC, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [MAGIC, ..] => Err(SerdeError::invalid(format!(
            "not the Confluent wire format: {} bytes, shorter than the 5-byte header",
            bytes.len()
        ))),
        [first, ..] => Err(SerdeError::invalid(format!(
            "not the Confluent wire format: the first byte is {first:#04x}, not the magic byte 0"
        ))),
        [] => Err(SerdeError::invalid("not the Confluent wire format: no bytes")),
    }
}

/// The 5-byte header of a payload written with schema `id`.
pub(crate) fn frame_header(id: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out
}

/// The kind of a registered schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SchemaType {
    /// Avro (the registry's default, sent without a `schemaType`).
    #[serde(rename = "AVRO")]
    Avro,
    /// JSON Schema.
    #[serde(rename = "JSON")]
    Json,
    /// Protocol Buffers.
    #[serde(rename = "PROTOBUF")]
    Protobuf,
}

/// A named reference from one schema to another registered schema (an Avro named type,
/// a JSON Schema `$ref`, a Protobuf import).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchemaReference {
    /// The name the referencing schema uses (Avro full name, `$ref` URL, import path).
    pub name: String,
    /// The subject the referenced schema is registered under.
    pub subject: String,
    /// Its version.
    pub version: u32,
}

/// A schema as the registry has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// Its id (what the wire format carries), when the answer gave it.
    pub id: Option<u32>,
    /// The subject, when fetched by subject.
    pub subject: Option<String>,
    /// The version within the subject, when fetched by subject.
    pub version: Option<u32>,
    /// Avro, JSON Schema or Protobuf.
    pub schema_type: SchemaType,
    /// The schema text.
    pub schema: String,
    /// The schemas it references.
    pub references: Vec<SchemaReference>,
}

impl RegisteredSchema {
    /// Reads a registry answer: Confluent's and Redpanda's field names, `schemaType`
    /// absent for Avro.
    fn from_reply(reply: &Value, id: Option<u32>) -> Result<Self, String> {
        let schema = reply
            .get("schema")
            .and_then(Value::as_str)
            .ok_or("the answer has no `schema` text")?
            .to_string();
        let schema_type = match reply.get("schemaType") {
            None | Some(Value::Null) => SchemaType::Avro,
            Some(t) => SchemaType::deserialize(t).map_err(|e| format!("unknown schemaType {t}: {e}"))?,
        };
        let references = match reply.get("references") {
            None | Some(Value::Null) => Vec::new(),
            Some(r) => {
                Vec::<SchemaReference>::deserialize(r).map_err(|e| format!("bad `references`: {e}"))?
            }
        };
        let number = |field: &str| {
            reply
                .get(field)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        Ok(RegisteredSchema {
            id: number("id").or(id),
            subject: reply
                .get("subject")
                .or_else(|| reply.get("name"))
                .and_then(Value::as_str)
                .map(str::to_string),
            version: number("version"),
            schema_type,
            schema,
            references,
        })
    }
}

/// How long and how often a registry call that failed for a reason that may pass
/// (unreachable, timeout, 5xx, 408, 429) is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait before the first retry; doubled after each.
    pub first_backoff: Duration,
    /// The longest wait between two tries.
    pub max_backoff: Duration,
    /// How long to keep trying after the first failure; then the call fails as
    /// [`RegistryErrorKind::Unavailable`].
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// 100 ms doubling to 5 s, for up to 2 minutes.
    fn default() -> Self {
        RetryPolicy {
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            give_up_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The default backoff, trying for up to `limit`.
    pub fn up_to(limit: Duration) -> Self {
        RetryPolicy {
            give_up_after: limit,
            ..RetryPolicy::default()
        }
    }

    /// No retries: one try.
    pub fn never() -> Self {
        RetryPolicy::up_to(Duration::ZERO)
    }
}

/// What kind of failure a [`RegistryError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegistryErrorKind {
    /// The registry answered that the id, subject or version does not exist (404).
    NotFound,
    /// The registry refused the request for what it carries: an invalid or incompatible
    /// schema (422, 409 and other 4xx).
    Rejected,
    /// The registry refused the credentials (401, 403).
    Unauthorized,
    /// The registry could not be reached or failed (5xx, 408, 429, timeouts) for the whole
    /// retry limit, or its answer was not a registry's.
    Unavailable,
}

/// A failed registry call: the kind, the URL (without credentials), the HTTP status and
/// the registry's error code when it answered, and the cause.
#[derive(Clone)]
pub struct RegistryError {
    kind: RegistryErrorKind,
    message: String,
    status: Option<u16>,
    error_code: Option<i64>,
    source: Option<Arc<dyn Error + Send + Sync>>,
}

impl RegistryError {
    /// What kind of failure this is.
    pub fn kind(&self) -> RegistryErrorKind {
        self.kind
    }

    /// The HTTP status, when the registry answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The registry's `error_code` (e.g. 40403: schema not found), when it gave one.
    pub fn error_code(&self) -> Option<i64> {
        self.error_code
    }

    /// As a (de)serialization error: not-found and rejected mean the data is at fault,
    /// the other kinds that the registry is.
    pub(crate) fn into_serde(self, context: String) -> SerdeError {
        let e = match self.kind {
            RegistryErrorKind::NotFound | RegistryErrorKind::Rejected => SerdeError::invalid(context),
            RegistryErrorKind::Unauthorized | RegistryErrorKind::Unavailable => {
                SerdeError::unavailable(context)
            }
        };
        e.caused_by(self)
    }
}

impl fmt::Debug for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("status", &self.status)
            .field("error_code", &self.error_code)
            .finish()
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for RegistryError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// One try's failure: whether trying again may help.
enum Failure {
    Transient(RegistryError),
    Final(RegistryError),
}

/// How schema-registry subjects are named (Confluent's subject name strategies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectName {
    /// `{topic}-key` or `{topic}-value` (Confluent's default, `TopicNameStrategy`).
    Topic,
    /// The record's full name (`RecordNameStrategy`).
    Record,
    /// `{topic}-{record full name}` (`TopicRecordNameStrategy`).
    TopicRecord,
    /// This subject, whatever the topic.
    Fixed(String),
}

impl SubjectName {
    /// The subject for a message of `ctx` whose schema's record is `record`.
    pub(crate) fn subject(&self, ctx: &SerdeContext<'_>, record: Option<&str>) -> Result<String, SerdeError> {
        let topic = || {
            ctx.topic.ok_or_else(|| {
                SerdeError::invalid(
                    "the subject is named after the topic, and the message has none: \
                     give the message a topic, or the serializer a fixed subject (SubjectName::Fixed)",
                )
            })
        };
        let record = || {
            record.ok_or_else(|| {
                SerdeError::invalid("the subject is named after the record, and the schema names none")
            })
        };
        Ok(match self {
            SubjectName::Topic => format!(
                "{}-{}",
                topic()?,
                match ctx.field {
                    MessageField::Key => "key",
                    MessageField::Value => "value",
                }
            ),
            SubjectName::Record => record()?.to_string(),
            SubjectName::TopicRecord => format!("{}-{}", topic()?, record()?),
            SubjectName::Fixed(s) => s.clone(),
        })
    }
}

/// Credentials sent with every request.
#[derive(Clone)]
enum Auth {
    Basic { user: String, password: String },
    Bearer(String),
}

/// A schema-registry client; cheap to clone (clones share connections and caches).
///
/// ```no_run
/// use std::time::Duration;
/// use bwx::connectors::kafka::serde::{RetryPolicy, SchemaRegistry};
///
/// let registry = SchemaRegistry::new("http://127.0.0.1:8081")
///     .unwrap()
///     .basic_auth("svc", "secret")
///     .retry(RetryPolicy::up_to(Duration::from_secs(30)));
/// let latest = registry.latest("readings-value").unwrap();
/// println!("version {:?}: {}", latest.version, latest.schema);
/// ```
#[derive(Clone)]
pub struct SchemaRegistry {
    urls: Arc<[String]>,
    http: reqwest::blocking::Client,
    auth: Option<Auth>,
    retry: RetryPolicy,
    cache: Arc<Cache>,
}

#[derive(Default)]
struct Cache {
    by_id: RwLock<HashMap<u32, Arc<RegisteredSchema>>>,
    by_version: RwLock<HashMap<(String, u32), Arc<RegisteredSchema>>>,
    ids: RwLock<HashMap<(String, String), u32>>,
}

/// Reads a cache map, recovering from a poisoned lock (the map holds only finished entries).
fn cached<K: std::hash::Hash + Eq, V: Clone>(map: &RwLock<HashMap<K, V>>, key: &K) -> Option<V> {
    map.read().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
}

fn remember<K: std::hash::Hash + Eq, V>(map: &RwLock<HashMap<K, V>>, key: K, value: V) {
    map.write().unwrap_or_else(|e| e.into_inner()).insert(key, value);
}

/// A URL as it may be printed: without `user:password@`.
fn printable(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((host, path)) => format!("{scheme}://{}/{path}", host.rsplit('@').next().unwrap_or(host)),
            None => format!("{scheme}://{}", rest.rsplit('@').next().unwrap_or(rest)),
        },
        None => url.to_string(),
    }
}

/// Percent-encodes one path segment (subjects may hold any character).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
const ACCEPT: &str =
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json";

impl SchemaRegistry {
    /// A client of the registry at `urls` (one URL, or several separated by commas, tried
    /// in turn), with a 10 s timeout per request and the default [`RetryPolicy`].
    pub fn new(urls: &str) -> Result<Self, RegistryError> {
        let urls: Vec<String> = urls
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .collect();
        let config_error = |message: String| RegistryError {
            kind: RegistryErrorKind::Rejected,
            message,
            status: None,
            error_code: None,
            source: None,
        };
        if urls.is_empty() {
            return Err(config_error("no schema registry URL given".into()));
        }
        if let Some(bad) = urls
            .iter()
            .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(config_error(format!(
                "{} is not an http:// or https:// URL",
                printable(bad)
            )));
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| RegistryError {
                source: Some(Arc::new(e)),
                ..config_error("cannot create the HTTP client".into())
            })?;
        Ok(SchemaRegistry {
            urls: urls.into(),
            http,
            auth: None,
            retry: RetryPolicy::default(),
            cache: Arc::default(),
        })
    }

    /// Sends HTTP basic authentication (Confluent Cloud: API key and secret).
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some(Auth::Basic {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// Sends a bearer token.
    pub fn bearer_token(mut self, token: &str) -> Self {
        self.auth = Some(Auth::Bearer(token.into()));
        self
    }

    /// Sets how failed calls are retried.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The first URL, without credentials (for messages).
    pub fn url(&self) -> String {
        printable(&self.urls[0])
    }

    /// The schema with this id (cached).
    pub fn schema_by_id(&self, id: u32) -> Result<Arc<RegisteredSchema>, RegistryError> {
        if let Some(s) = cached(&self.cache.by_id, &id) {
            return Ok(s);
        }
        let reply = self.call("GET", &format!("/schemas/ids/{id}"), None)?;
        let schema = Arc::new(RegisteredSchema::from_reply(&reply, Some(id)).map_err(|e| self.bad_reply(e))?);
        remember(&self.cache.by_id, id, schema.clone());
        Ok(schema)
    }

    /// A subject's schema at `version` (cached: a version never changes).
    pub fn version(&self, subject: &str, version: u32) -> Result<Arc<RegisteredSchema>, RegistryError> {
        let key = (subject.to_string(), version);
        if let Some(s) = cached(&self.cache.by_version, &key) {
            return Ok(s);
        }
        let reply = self.call(
            "GET",
            &format!("/subjects/{}/versions/{version}", segment(subject)),
            None,
        )?;
        let schema = Arc::new(RegisteredSchema::from_reply(&reply, None).map_err(|e| self.bad_reply(e))?);
        remember(&self.cache.by_version, key, schema.clone());
        Ok(schema)
    }

    /// A subject's latest schema, asked afresh on every call (it changes when a new
    /// version is registered).
    pub fn latest(&self, subject: &str) -> Result<RegisteredSchema, RegistryError> {
        let reply = self.call(
            "GET",
            &format!("/subjects/{}/versions/latest", segment(subject)),
            None,
        )?;
        let mut schema = RegisteredSchema::from_reply(&reply, None).map_err(|e| self.bad_reply(e))?;
        schema.subject.get_or_insert_with(|| subject.to_string());
        Ok(schema)
    }

    /// Registers `schema` under `subject` (or finds it already there) and returns its id
    /// (cached per subject and schema).
    pub fn register(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[SchemaReference],
    ) -> Result<u32, RegistryError> {
        self.id_of(subject, schema_type, schema, references, true)
    }

    /// The id of `schema` if it is registered under `subject` (cached), without registering it.
    pub fn look_up(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[SchemaReference],
    ) -> Result<u32, RegistryError> {
        self.id_of(subject, schema_type, schema, references, false)
    }

    fn id_of(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[SchemaReference],
        register: bool,
    ) -> Result<u32, RegistryError> {
        let key = (subject.to_string(), schema.to_string());
        if let Some(id) = cached(&self.cache.ids, &key) {
            return Ok(id);
        }
        // Only the fields every registry accepts: Redpanda refuses `null`s and unknown fields.
        let mut body = json!({ "schema": schema });
        if schema_type != SchemaType::Avro {
            body["schemaType"] = json!(schema_type);
        }
        if !references.is_empty() {
            body["references"] = json!(references);
        }
        let path = if register {
            format!("/subjects/{}/versions", segment(subject))
        } else {
            format!("/subjects/{}", segment(subject))
        };
        let reply = self.call("POST", &path, Some(&body))?;
        let id = reply
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| self.bad_reply(format!("the answer has no schema `id`: {reply}")))?;
        remember(&self.cache.ids, key, id);
        Ok(id)
    }

    /// Every schema that `schema` references, directly or not, each after the ones it
    /// references (the order parsers need); see [`resolve_references`](Self::resolve_references).
    pub fn referenced(&self, schema: &RegisteredSchema) -> Result<Vec<Arc<RegisteredSchema>>, RegistryError> {
        self.resolve_references(&schema.references)
    }

    /// The schemas `references` name (each a subject and version), with the schemas those
    /// reference in turn, each after the ones it references. Every version is fetched once
    /// and cached. A reference the registry does not have is a
    /// [`NotFound`](RegistryErrorKind::NotFound) error naming its subject and version and
    /// the schema that references it.
    pub fn resolve_references(
        &self,
        references: &[SchemaReference],
    ) -> Result<Vec<Arc<RegisteredSchema>>, RegistryError> {
        let mut out: Vec<(SchemaReference, Arc<RegisteredSchema>)> = Vec::new();
        self.collect_references(references, "the schema", &mut out, 0)?;
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    fn collect_references(
        &self,
        references: &[SchemaReference],
        referrer: &str,
        out: &mut Vec<(SchemaReference, Arc<RegisteredSchema>)>,
        depth: usize,
    ) -> Result<(), RegistryError> {
        if depth > 32 {
            return Err(self.bad_reply("schema references nest deeper than 32 (a cycle?)".into()));
        }
        for r in references {
            if out.iter().any(|(seen, _)| seen == r) {
                continue;
            }
            let s = self.version(&r.subject, r.version).map_err(|e| RegistryError {
                kind: e.kind,
                message: format!(
                    "{referrer} references {:?} as subject {:?} version {}, which the schema registry at {} {}",
                    r.name,
                    r.subject,
                    r.version,
                    self.url(),
                    match e.kind {
                        RegistryErrorKind::NotFound => "does not have",
                        _ => "did not give",
                    }
                ),
                status: e.status,
                error_code: e.error_code,
                source: Some(Arc::new(e)),
            })?;
            let name = format!("subject {:?} version {}", r.subject, r.version);
            self.collect_references(&s.references, &name, out, depth + 1)?;
            if !out.iter().any(|(seen, _)| seen == r) {
                out.push((r.clone(), s));
            }
        }
        Ok(())
    }

    fn bad_reply(&self, why: String) -> RegistryError {
        RegistryError {
            kind: RegistryErrorKind::Unavailable,
            message: format!(
                "the schema registry at {} gave an answer it should not: {why}",
                self.url()
            ),
            status: None,
            error_code: None,
            source: None,
        }
    }

    /// One call, retried per the policy while the failures may pass.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, RegistryError> {
        let started = Instant::now();
        let mut backoff = self.retry.first_backoff;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let mut last = None;
            for url in self.urls.iter() {
                match self.try_once(url, method, path, body) {
                    Ok(v) => {
                        if tries > 1 {
                            tracing::info!(
                                "the schema registry at {} answered again after {tries} tries in {:.1?}",
                                printable(url),
                                started.elapsed()
                            );
                        }
                        return Ok(v);
                    }
                    Err(Failure::Final(e)) => return Err(e),
                    Err(Failure::Transient(e)) => last = Some(e),
                }
            }
            let Some(mut e) = last else {
                return Err(self.bad_reply("the client has no URL to ask".into()));
            };
            let waited = started.elapsed();
            if waited + backoff > self.retry.give_up_after {
                e.message = format!(
                    "{} (gave up after {tries} tries in {waited:.1?}; the retry limit is {:?})",
                    e.message, self.retry.give_up_after
                );
                return Err(e);
            }
            if tries == 1 {
                tracing::warn!(
                    "{}; retrying for up to {:?}",
                    super::with_causes(&e),
                    self.retry.give_up_after
                );
            } else {
                tracing::debug!("try {tries}: {}", super::with_causes(&e));
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(self.retry.max_backoff);
        }
    }

    fn try_once(&self, url: &str, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let target = format!("{url}{path}");
        let shown = format!("{method} {}{path}", printable(url));
        let error =
            |kind, message: String, status, error_code, source: Option<Arc<dyn Error + Send + Sync>>| {
                RegistryError {
                    kind,
                    message,
                    status,
                    error_code,
                    source,
                }
            };
        let mut request = match method {
            "POST" => self.http.post(&target),
            _ => self.http.get(&target),
        }
        .header("Accept", ACCEPT);
        if let Some(body) = body {
            request = request
                .header("Content-Type", CONTENT_TYPE)
                .body(body.to_string());
        }
        request = match &self.auth {
            Some(Auth::Basic { user, password }) => request.basic_auth(user, Some(password)),
            Some(Auth::Bearer(token)) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().map_err(|e| {
            Failure::Transient(error(
                RegistryErrorKind::Unavailable,
                format!("the schema registry did not answer {shown}"),
                None,
                None,
                Some(Arc::new(e.without_url())),
            ))
        })?;
        let status = response.status().as_u16();
        let text = response.text().map_err(|e| {
            Failure::Transient(error(
                RegistryErrorKind::Unavailable,
                format!("the schema registry's answer to {shown} broke off"),
                Some(status),
                None,
                Some(Arc::new(e.without_url())),
            ))
        })?;
        let reply: Option<Value> = serde_json::from_str(&text).ok();
        if (200..300).contains(&status) {
            return reply.ok_or_else(|| {
                Failure::Final(error(
                    RegistryErrorKind::Unavailable,
                    format!(
                        "the answer to {shown} is not JSON: {:?}",
                        text.chars().take(200).collect::<String>()
                    ),
                    Some(status),
                    None,
                    None,
                ))
            });
        }
        let error_code = reply
            .as_ref()
            .and_then(|r| r.get("error_code"))
            .and_then(Value::as_i64);
        let said = reply
            .as_ref()
            .and_then(|r| r.get("message"))
            .and_then(Value::as_str)
            .map_or_else(|| text.chars().take(200).collect::<String>(), str::to_string);
        let message = format!("the schema registry answered {shown} with {status}: {said}");
        let kind = match status {
            404 => RegistryErrorKind::NotFound,
            401 | 403 => RegistryErrorKind::Unauthorized,
            408 | 429 | 500.. => {
                return Err(Failure::Transient(error(
                    RegistryErrorKind::Unavailable,
                    message,
                    Some(status),
                    error_code,
                    None,
                )));
            }
            _ => RegistryErrorKind::Rejected,
        };
        Err(Failure::Final(error(
            kind,
            message,
            Some(status),
            error_code,
            None,
        )))
    }
}

impl fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field(
                "urls",
                &self.urls.iter().map(|u| printable(u)).collect::<Vec<_>>(),
            )
            .field("retry", &self.retry)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_name_what_is_wrong() {
        assert_eq!(split_frame(&[0, 0, 0, 0, 7, 1, 2]).unwrap(), (7, &[1u8, 2][..]));
        assert!(
            split_frame(&[0, 0, 0, 1])
                .unwrap_err()
                .to_string()
                .contains("shorter than")
        );
        assert!(
            split_frame(&[1, 0, 0, 0, 1])
                .unwrap_err()
                .to_string()
                .contains("0x01")
        );
        assert!(split_frame(&[]).is_err());
        assert_eq!(frame_header(258), vec![0, 0, 0, 1, 2]);
    }

    #[test]
    fn urls_print_without_credentials_and_subjects_are_escaped() {
        assert_eq!(
            printable("https://key:secret@sr.example:8081/x"),
            "https://sr.example:8081/x"
        );
        assert_eq!(printable("http://h:1"), "http://h:1");
        assert_eq!(segment("a b/c-value"), "a%20b%2Fc-value");
        assert!(SchemaRegistry::new("ftp://x").is_err());
        let r = SchemaRegistry::new("http://u:p@h:1")
            .unwrap()
            .basic_auth("u", "hunter2");
        assert!(!format!("{r:?}").contains("hunter2") && !format!("{r:?}").contains(":p@"));
    }

    #[test]
    fn subjects_follow_the_strategies() {
        let ctx = SerdeContext::key("orders");
        assert_eq!(SubjectName::Topic.subject(&ctx, None).unwrap(), "orders-key");
        assert_eq!(SubjectName::Record.subject(&ctx, Some("a.B")).unwrap(), "a.B");
        assert_eq!(
            SubjectName::TopicRecord.subject(&ctx, Some("a.B")).unwrap(),
            "orders-a.B"
        );
        assert_eq!(SubjectName::Fixed("s".into()).subject(&ctx, None).unwrap(), "s");
        let none = SerdeContext {
            topic: None,
            field: MessageField::Value,
        };
        assert!(SubjectName::Topic.subject(&none, None).is_err());
        assert!(SubjectName::Record.subject(&none, None).is_err());
    }

    #[test]
    fn answers_of_both_registries_are_read() {
        let confluent = json!({"subject": "s", "version": 2, "id": 5, "schema": "\"string\""});
        let redpanda = json!({"name": "s", "version": 2, "id": 5, "schema": "{\"type\":\"string\"}",
            "schemaType": "AVRO"});
        for reply in [confluent, redpanda] {
            let s = RegisteredSchema::from_reply(&reply, None).unwrap();
            assert_eq!(
                (s.subject.as_deref(), s.version, s.id),
                (Some("s"), Some(2), Some(5))
            );
            assert_eq!(s.schema_type, SchemaType::Avro);
        }
        let proto = json!({"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF",
            "references": [{"name": "a.proto", "subject": "a", "version": 1}]});
        let s = RegisteredSchema::from_reply(&proto, Some(9)).unwrap();
        assert_eq!(
            (s.id, s.schema_type, s.references.len()),
            (Some(9), SchemaType::Protobuf, 1)
        );
        assert!(RegisteredSchema::from_reply(&json!({"id": 1}), None).is_err());
    }
}
