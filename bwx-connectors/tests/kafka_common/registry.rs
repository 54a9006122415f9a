//! A small schema registry over std::net speaking the REST API the serializers use:
//! register or look up a schema under a subject, schemas by id, a subject's versions and
//! latest version, schema references. It answers like Confluent's registry or, with
//! [`Flavor::Redpanda`], like Redpanda's (which names the subject `name`, keeps primitive
//! schemas as written, always sends `schemaType`, and refuses `null` or unknown fields in a
//! registration). It can be stopped and started again on the same port, to test outages.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Whose registry to imitate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Confluent,
    Redpanda,
}

#[derive(Clone)]
struct Stored {
    schema: String,
    schema_type: String,
    references: serde_json::Value,
}

#[derive(Default)]
struct Store {
    /// Schemas by id - 1.
    schemas: Vec<Stored>,
    /// Schema ids by subject, in version order.
    subjects: BTreeMap<String, Vec<u32>>,
}

struct Shared {
    store: Mutex<Store>,
    flavor: Flavor,
    /// Requests served, by route kind (`GET /schemas/ids`, ...).
    requests: Mutex<BTreeMap<String, usize>>,
    /// Requests answered 503 before the registry answers normally again.
    fail_next: AtomicUsize,
}

/// A running registry; lives until the test process ends or [`stop`](Self::stop).
pub struct MockRegistry {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

struct Running {
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    accept: thread::JoinHandle<()>,
}

impl MockRegistry {
    /// Starts a Confluent-like registry on a free loopback port.
    pub fn start() -> MockRegistry {
        Self::start_flavor(Flavor::Confluent)
    }

    /// Starts a registry answering like `flavor`.
    pub fn start_flavor(flavor: Flavor) -> MockRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the mock registry");
        let addr = listener.local_addr().unwrap();
        let registry = MockRegistry {
            url: format!("http://{addr}"),
            addr,
            shared: Arc::new(Shared {
                store: Mutex::new(Store::default()),
                flavor,
                requests: Mutex::new(BTreeMap::new()),
                fail_next: AtomicUsize::new(0),
            }),
            running: Mutex::new(None),
        };
        registry.serve(listener);
        registry
    }

    fn serve(&self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (shared, stopping, conns) = (self.shared.clone(), stop.clone(), connections.clone());
        let accept = thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                conns
                    .lock()
                    .unwrap()
                    .push(conn.try_clone().expect("clone the connection"));
                let shared = shared.clone();
                thread::spawn(move || serve(conn, &shared));
            }
        });
        *self.running.lock().unwrap() = Some(Running {
            stop,
            connections,
            accept,
        });
    }

    /// Stops answering: the port refuses connections and open ones are closed.
    pub fn stop(&self) {
        let Some(r) = self.running.lock().unwrap().take() else {
            return;
        };
        r.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag and drops the listener.
        let _ = TcpStream::connect(self.addr);
        r.accept.join().expect("the accept loop ends");
        for c in r.connections.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Answers again, on the same port, with the same schemas.
    pub fn restart(&self) {
        self.stop();
        let listener = TcpListener::bind(self.addr).expect("bind the mock registry's port again");
        self.serve(listener);
    }

    /// The next `n` requests are answered `503 Service Unavailable`.
    pub fn fail_next(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// How many schemas were registered.
    pub fn schema_count(&self) -> usize {
        self.shared.store.lock().unwrap().schemas.len()
    }

    /// How many requests of a route kind (e.g. `GET /schemas/ids`) were answered.
    pub fn requests(&self, route: &str) -> usize {
        self.shared
            .requests
            .lock()
            .unwrap()
            .get(route)
            .copied()
            .unwrap_or(0)
    }

    /// Registers a schema directly (as another producer would), returning its id.
    pub fn register(&self, subject: &str, schema_type: &str, schema: &str) -> u32 {
        register(
            &mut self.shared.store.lock().unwrap(),
            subject,
            schema,
            schema_type,
            serde_json::Value::Null,
        )
    }
}

/// Serves requests on one keep-alive connection until the client closes it.
fn serve(conn: TcpStream, shared: &Shared) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone the connection"));
    let mut writer = conn;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("");
        let failing = shared
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let (status, reply) = if failing {
            (
                "503 Service Unavailable",
                serde_json::json!({"error_code": 50301, "message": "try again"}),
            )
        } else {
            *shared
                .requests
                .lock()
                .unwrap()
                .entry(route_kind(method, path))
                .or_default() += 1;
            route(method, path, &body, shared)
        };
        let text = reply.to_string();
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n",
            text.len()
        );
        if writer
            .write_all(head.as_bytes())
            .and_then(|()| writer.write_all(text.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

/// `GET /schemas/ids/7` → `GET /schemas/ids`, for counting.
fn route_kind(method: &str, path: &str) -> String {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let kind = match segs.as_slice() {
        ["schemas", "ids", _] => "/schemas/ids",
        ["subjects", _, "versions", "latest"] => "/subjects/versions/latest",
        ["subjects", _, "versions", _] => "/subjects/versions/n",
        ["subjects", _, "versions"] => "/subjects/versions",
        ["subjects", _] => "/subjects/lookup",
        _ => "other",
    };
    format!("{method} {kind}")
}

fn not_found(code: u32, what: &str) -> (&'static str, serde_json::Value) {
    (
        "404 Not Found",
        serde_json::json!({"error_code": code, "message": format!("{what} not found")}),
    )
}

fn unprocessable(flavor: Flavor, message: &str) -> (&'static str, serde_json::Value) {
    let code = match flavor {
        Flavor::Confluent => 42201,
        Flavor::Redpanda => 422,
    };
    (
        "422 Unprocessable Entity",
        serde_json::json!({"error_code": code, "message": message}),
    )
}

/// Percent-decodes a path segment.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn register(
    store: &mut Store,
    subject: &str,
    schema: &str,
    schema_type: &str,
    references: serde_json::Value,
) -> u32 {
    let id = match store
        .schemas
        .iter()
        // As in Confluent's registry, the same text with other references is another schema.
        .position(|s| s.schema == schema && s.schema_type == schema_type && s.references == references)
    {
        Some(i) => i as u32 + 1,
        None => {
            store.schemas.push(Stored {
                schema: schema.to_string(),
                schema_type: schema_type.to_string(),
                references,
            });
            store.schemas.len() as u32
        }
    };
    let versions = store.subjects.entry(subject.to_string()).or_default();
    if !versions.contains(&id) {
        versions.push(id);
    }
    id
}

/// The schema text as the registry gives it back: Confluent canonicalizes a primitive
/// Avro schema written as an object; Redpanda keeps what was written.
fn as_served(flavor: Flavor, s: &Stored) -> String {
    if flavor == Flavor::Confluent
        && s.schema_type == "AVRO"
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&s.schema)
        && let Some(obj) = v.as_object()
        && obj.len() == 1
        && let Some(t) = obj.get("type").and_then(|t| t.as_str())
    {
        return serde_json::json!(t).to_string();
    }
    s.schema.clone()
}

fn describe(flavor: Flavor, s: &Stored, id: u32, extra: serde_json::Value) -> serde_json::Value {
    let mut reply = serde_json::json!({"schema": as_served(flavor, s)});
    let obj = reply.as_object_mut().unwrap();
    if flavor == Flavor::Redpanda || s.schema_type != "AVRO" {
        obj.insert("schemaType".into(), serde_json::json!(s.schema_type));
    }
    if !s.references.is_null() {
        obj.insert("references".into(), s.references.clone());
    }
    if let Some(extra) = extra.as_object() {
        obj.extend(extra.clone());
        obj.insert("id".into(), serde_json::json!(id));
    }
    reply
}

fn route(method: &str, path: &str, body: &[u8], shared: &Shared) -> (&'static str, serde_json::Value) {
    let flavor = shared.flavor;
    let mut store = shared.store.lock().unwrap();
    let segs: Vec<String> = path.trim_matches('/').split('/').map(unescape).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (method, segs.as_slice()) {
        ("GET", ["subjects"]) => (
            "200 OK",
            serde_json::json!(store.subjects.keys().collect::<Vec<_>>()),
        ),
        ("POST", ["subjects", subject, rest @ ..]) if rest.is_empty() || rest == ["versions"] => {
            let Ok(req) = serde_json::from_slice::<serde_json::Value>(body) else {
                return unprocessable(flavor, "bad body");
            };
            let Some(obj) = req.as_object() else {
                return unprocessable(flavor, "bad body");
            };
            if flavor == Flavor::Redpanda
                && obj.iter().any(|(k, v)| {
                    v.is_null() || !["schema", "schemaType", "references"].contains(&k.as_str())
                })
            {
                return unprocessable(flavor, "unexpected field");
            }
            let Some(schema) = obj.get("schema").and_then(|s| s.as_str()) else {
                return unprocessable(flavor, "no schema");
            };
            let schema_type = obj.get("schemaType").and_then(|t| t.as_str()).unwrap_or("AVRO");
            if schema_type == "AVRO" && serde_json::from_str::<serde_json::Value>(schema).is_err() {
                return unprocessable(flavor, "Invalid schema");
            }
            let references = obj.get("references").cloned().unwrap_or(serde_json::Value::Null);
            if rest.is_empty() {
                // Look-up: the schema must already be under the subject.
                let found = store.subjects.get(*subject).and_then(|ids| {
                    ids.iter().enumerate().find(|(_, id)| {
                        let s = &store.schemas[**id as usize - 1];
                        s.schema == schema && s.schema_type == schema_type && s.references == references
                    })
                });
                return match found {
                    Some((v, &id)) => (
                        "200 OK",
                        serde_json::json!({"subject": subject, "version": v + 1, "id": id, "schema": schema}),
                    ),
                    None if store.subjects.contains_key(*subject) => not_found(40403, "schema"),
                    None => not_found(40401, "subject"),
                };
            }
            let id = register(&mut store, subject, schema, schema_type, references);
            ("200 OK", serde_json::json!({"id": id}))
        }
        ("GET", ["subjects", subject, "versions"]) => match store.subjects.get(*subject) {
            Some(v) => ("200 OK", serde_json::json!((1..=v.len()).collect::<Vec<_>>())),
            None => not_found(40401, "subject"),
        },
        ("GET", ["subjects", subject, "versions", version]) => {
            let Some(ids) = store.subjects.get(*subject) else {
                return not_found(40401, "subject");
            };
            let index = match *version {
                "latest" | "-1" => ids.len(),
                v => v.parse().unwrap_or(0),
            };
            match index.checked_sub(1).and_then(|i| ids.get(i)) {
                Some(&id) => {
                    let name_field = match flavor {
                        Flavor::Confluent => "subject",
                        Flavor::Redpanda => "name",
                    };
                    let stored = store.schemas[id as usize - 1].clone();
                    (
                        "200 OK",
                        describe(
                            flavor,
                            &stored,
                            id,
                            serde_json::json!({name_field: subject, "version": index}),
                        ),
                    )
                }
                None => not_found(40402, "version"),
            }
        }
        ("GET", ["schemas", "ids", id]) => {
            match id
                .parse::<usize>()
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| store.schemas.get(i))
            {
                Some(s) => ("200 OK", describe(flavor, s, 0, serde_json::Value::Null)),
                None => not_found(40403, "schema"),
            }
        }
        _ => not_found(404, "route"),
    }
}
