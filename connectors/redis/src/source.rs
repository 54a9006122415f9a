//! [`RedisStreamSource`]: one partition per stream, resumable from the last entry id.

use std::time::{Duration, SystemTime};

use bwx_runtime::StepId;
use bwx_runtime::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use redis::{Connection, Value};
use serde::{Deserialize, Serialize};

use crate::error::into_connector;
use crate::server::Server;
use crate::{RedisError, StreamEntry};

/// Reads the entries of Redis streams, one partition per stream, each resumable from the
/// id of the last entry read (its recovery state).
///
/// Each poll reads the next `batch_size` entries with `XREAD COUNT n STREAMS key id`, which
/// never blocks the worker. By default a stream is tailed: when there is nothing new the
/// partition looks again every [`poll_interval`](Self::poll_interval) and never ends; with
/// `tail(false)` it ends when it has read what was there. A stream that does not exist (or
/// a key of another type) stops the flow before it starts, naming it: create streams before
/// reading them (`XADD`, or `XGROUP CREATE ... MKSTREAM`).
///
/// Entries trimmed away (`MAXLEN`, `XTRIM`) before they were read are gone: the source
/// continues with the next entry that exists.
///
/// ```no_run
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::testing::TestingSink;
/// use bwx_redis::RedisStreamSource;
///
/// let source = RedisStreamSource::new("redis://127.0.0.1:6379/", ["orders", "refunds"]).unwrap();
/// let flow = Dataflow::new("read");
/// let out = TestingSink::new();
/// flow.input("inp", source).map("id", |e| e.id).output("out", out.clone());
/// ```
#[derive(Clone, Debug)]
pub struct RedisStreamSource {
    server: Server,
    streams: Vec<String>,
    batch: usize,
    tail: bool,
    poll: Duration,
}

impl RedisStreamSource {
    /// Reads `streams` on the server at `url` (`redis://[user:password@]host:port/db`).
    pub fn new<I, S>(url: &str, streams: I) -> Result<Self, RedisError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Ok(RedisStreamSource {
            server: Server::open(url)?,
            streams: streams.into_iter().map(Into::into).collect(),
            batch: 1000,
            tail: true,
            poll: Duration::from_millis(100),
        })
    }

    /// Entries read per poll (at least 1; default 1000).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Whether to keep reading new entries (default) or end after the last one.
    pub fn tail(mut self, tail: bool) -> Self {
        self.tail = tail;
        self
    }

    /// How long a tailing partition waits after it found nothing new (default 100 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll = interval;
        self
    }
}

/// A stream's recovery state: the id of the last entry read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisStreamPosition {
    /// The id of the last entry read; `None` before the first.
    pub last_id: Option<String>,
}

impl FixedPartitionedSource for RedisStreamSource {
    type Item = StreamEntry;
    type State = RedisStreamPosition;
    type Partition = RedisStreamPartition;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        let mut con = self.server.connect().map_err(into_connector)?;
        for stream in &self.streams {
            let kind: String = redis::cmd("TYPE")
                .arg(stream)
                .query(&mut con)
                .map_err(self.server.failed(format!("look up stream {stream:?}")))
                .map_err(into_connector)?;
            if kind != "stream" {
                return Err(RedisError::NoStream {
                    at: self.server.at.clone(),
                    stream: stream.clone(),
                    found: kind,
                }
                .into());
            }
        }
        Ok(self.streams.clone())
    }

    fn build_part(
        &self,
        _: &StepId,
        for_part: &str,
        resume: Option<RedisStreamPosition>,
    ) -> Result<RedisStreamPartition, ConnectorError> {
        Ok(RedisStreamPartition {
            con: self.server.connect().map_err(into_connector)?,
            server: self.server.clone(),
            stream: for_part.to_string(),
            position: resume.unwrap_or_default(),
            batch: self.batch,
            tail: self.tail,
            poll: self.poll,
            awake: None,
        })
    }
}

/// One stream of a [`RedisStreamSource`].
pub struct RedisStreamPartition {
    con: Connection,
    server: Server,
    stream: String,
    position: RedisStreamPosition,
    batch: usize,
    tail: bool,
    poll: Duration,
    awake: Option<SystemTime>,
}

impl RedisStreamPartition {
    fn read(&mut self, batch: &mut Vec<StreamEntry>) -> Result<BatchStatus, RedisError> {
        let after = self.position.last_id.as_deref().unwrap_or("0-0");
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(self.batch)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(after)
            .query(&mut self.con)
            .map_err(self.server.failed(format!("read stream {:?}", self.stream)))?;
        let before = batch.len();
        self.entries(reply, batch)?;
        if let Some(last) = batch.last()
            && batch.len() > before
        {
            self.position.last_id = Some(last.id.clone());
        }
        let read = batch.len() - before;
        if read == self.batch {
            self.awake = None;
            Ok(BatchStatus::Active)
        } else if !self.tail {
            Ok(BatchStatus::Eof)
        } else {
            self.awake = Some(SystemTime::now() + self.poll);
            Ok(BatchStatus::Active)
        }
    }

    /// The entries of an `XREAD` reply: nil, or `[[key, [[id, [field, value, ...]], ...]]]`
    /// (a map of key to entries in RESP3).
    fn entries(&self, reply: Value, batch: &mut Vec<StreamEntry>) -> Result<(), RedisError> {
        let bad = |reply: &Value| RedisError::Reply {
            doing: "XREAD",
            stream: self.stream.clone(),
            reply: format!("{reply:?}").chars().take(200).collect(),
        };
        let per_stream = match reply {
            Value::Nil => return Ok(()),
            Value::Array(streams) => streams
                .into_iter()
                .map(|s| match s {
                    Value::Array(mut pair) if pair.len() == 2 => Ok(pair.swap_remove(1)),
                    other => Err(bad(&other)),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
            other => return Err(bad(&other)),
        };
        for entries in per_stream {
            let Value::Array(entries) = entries else {
                return Err(bad(&entries));
            };
            for entry in entries {
                let Value::Array(mut parts) = entry else {
                    return Err(bad(&entry));
                };
                if parts.len() != 2 {
                    return Err(bad(&Value::Array(parts)));
                }
                let values = parts.pop();
                let id = match parts.pop() {
                    Some(Value::BulkString(id)) => String::from_utf8_lossy(&id).into_owned(),
                    Some(Value::SimpleString(id)) => id,
                    other => return Err(bad(&other.unwrap_or(Value::Nil))),
                };
                let flat = match values {
                    Some(Value::Array(flat)) => flat,
                    other => return Err(bad(&other.unwrap_or(Value::Nil))),
                };
                let mut fields = Vec::with_capacity(flat.len() / 2);
                let mut flat = flat.into_iter();
                while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
                    match (bytes(name), bytes(value)) {
                        (Some(name), Some(value)) => {
                            fields.push((String::from_utf8_lossy(&name).into_owned(), value))
                        }
                        (name, _) => return Err(bad(&Value::BulkString(name.unwrap_or_default()))),
                    }
                }
                batch.push(StreamEntry {
                    stream: self.stream.clone(),
                    id,
                    fields,
                });
            }
        }
        Ok(())
    }
}

fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

impl StatefulSourcePartition for RedisStreamPartition {
    type Item = StreamEntry;
    type State = RedisStreamPosition;

    fn next_batch(&mut self, batch: &mut Vec<StreamEntry>) -> Result<BatchStatus, ConnectorError> {
        self.read(batch).map_err(into_connector)
    }

    fn next_awake(&self) -> Option<SystemTime> {
        self.awake
    }

    fn snapshot(&self) -> RedisStreamPosition {
        self.position.clone()
    }
}
