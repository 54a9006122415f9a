//! A small mock of the Confluent schema registry API over std::net: register a schema
//! under a subject, fetch schemas by id and a subject's versions. Enough for the
//! `schema_registry_converter` clients that the Avro serializers use.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Default)]
struct Store {
    /// Schema text by id (ids start at 1).
    schemas: Vec<String>,
    /// Schema ids by subject, in version order.
    subjects: BTreeMap<String, Vec<u32>>,
}

/// A running mock registry; lives until the test process ends.
pub struct MockRegistry {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    store: Arc<Mutex<Store>>,
}

impl MockRegistry {
    /// Starts the registry on a free loopback port.
    pub fn start() -> MockRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the mock registry");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let store = Arc::new(Mutex::new(Store::default()));
        let shared = store.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let store = shared.clone();
                thread::spawn(move || serve(conn, &store));
            }
        });
        MockRegistry { url, store }
    }

    /// How many schemas were registered.
    pub fn schema_count(&self) -> usize {
        self.store.lock().unwrap().schemas.len()
    }
}

/// Serves requests on one keep-alive connection until the client closes it.
fn serve(conn: TcpStream, store: &Mutex<Store>) {
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
        let (status, reply) = route(method, path, &body, &mut store.lock().unwrap());
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

fn not_found(what: &str) -> (&'static str, serde_json::Value) {
    (
        "404 Not Found",
        serde_json::json!({"error_code": 40403, "message": format!("{what} not found")}),
    )
}

fn route(method: &str, path: &str, body: &[u8], store: &mut Store) -> (&'static str, serde_json::Value) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        ("GET", ["subjects"]) => (
            "200 OK",
            serde_json::json!(store.subjects.keys().collect::<Vec<_>>()),
        ),
        ("POST", ["subjects", subject, "versions"]) => {
            let Ok(req) = serde_json::from_slice::<serde_json::Value>(body) else {
                return (
                    "422 Unprocessable Entity",
                    serde_json::json!({"error_code": 42201, "message": "bad body"}),
                );
            };
            let Some(schema) = req.get("schema").and_then(|s| s.as_str()) else {
                return (
                    "422 Unprocessable Entity",
                    serde_json::json!({"error_code": 42201, "message": "no schema"}),
                );
            };
            let id = match store.schemas.iter().position(|s| s == schema) {
                Some(i) => i as u32 + 1,
                None => {
                    store.schemas.push(schema.to_string());
                    store.schemas.len() as u32
                }
            };
            let versions = store.subjects.entry(subject.to_string()).or_default();
            if !versions.contains(&id) {
                versions.push(id);
            }
            ("200 OK", serde_json::json!({"id": id}))
        }
        ("GET", ["subjects", subject, "versions"]) => match store.subjects.get(*subject) {
            Some(v) => ("200 OK", serde_json::json!((1..=v.len()).collect::<Vec<_>>())),
            None => not_found("subject"),
        },
        ("GET", ["subjects", subject, "versions", version]) => {
            let Some(ids) = store.subjects.get(*subject) else {
                return not_found("subject");
            };
            let index = match *version {
                "latest" => ids.len(),
                v => v.parse().unwrap_or(0),
            };
            match index.checked_sub(1).and_then(|i| ids.get(i)) {
                Some(&id) => (
                    "200 OK",
                    serde_json::json!({"subject": subject, "version": index, "id": id,
                        "schema": store.schemas[id as usize - 1]}),
                ),
                None => not_found("version"),
            }
        }
        ("GET", ["schemas", "ids", id]) => {
            match id
                .parse::<usize>()
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| store.schemas.get(i))
            {
                Some(schema) => ("200 OK", serde_json::json!({"schema": schema})),
                None => not_found("schema"),
            }
        }
        _ => not_found("route"),
    }
}
