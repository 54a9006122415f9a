//! [`RedisStreamSink`]: entries added with `XADD`, a pipeline per batch.

use std::marker::PhantomData;

use bwx_runtime::inputs::ConnectorError;
use bwx_runtime::outputs::{Delivery, DynamicSink, StatelessSinkPartition};
use bwx_runtime::{Data, StepId};
use redis::Connection;

use crate::error::into_connector;
use crate::server::Server;
use crate::{RedisError, ToFields};

/// Adds every item as an entry of a Redis stream with `XADD` (the server assigns the id),
/// from every worker; each batch is one pipeline, written and acknowledged by the server
/// before `write_batch` returns.
///
/// At-least-once: after a resume, the entries of the epochs after the last durable one are
/// added again (with new ids). [`max_len`](Self::max_len) trims the stream as it grows
/// (`MAXLEN ~ n`). The stream is created by the first entry.
///
/// ```no_run
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::testing::TestingSource;
/// use bwx_redis::RedisStreamSink;
///
/// let flow = Dataflow::new("write");
/// flow.input("inp", TestingSource::new(1..=3u32))
///     .map("fields", |n| vec![("n".to_string(), n.to_string())])
///     .output("out", RedisStreamSink::new("redis://127.0.0.1:6379/", "numbers").unwrap());
/// bwx_runtime::run_main(&flow).unwrap();
/// ```
pub struct RedisStreamSink<T> {
    server: Server,
    stream: String,
    max_len: Option<usize>,
    _t: PhantomData<fn(T)>,
}

impl<T> std::fmt::Debug for RedisStreamSink<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreamSink")
            .field("at", &self.server.at)
            .field("stream", &self.stream)
            .finish()
    }
}

impl<T> RedisStreamSink<T> {
    /// Adds to `stream` on the server at `url`.
    pub fn new(url: &str, stream: &str) -> Result<Self, RedisError> {
        Ok(RedisStreamSink {
            server: Server::open(url)?,
            stream: stream.to_string(),
            max_len: None,
            _t: PhantomData,
        })
    }

    /// Keeps the stream to about `n` entries (`XADD key MAXLEN ~ n`).
    pub fn max_len(mut self, n: usize) -> Self {
        self.max_len = Some(n);
        self
    }
}

impl<T: ToFields + Data> DynamicSink for RedisStreamSink<T> {
    type Item = T;
    type Partition = RedisStreamSinkPartition<T>;

    fn build(&self, _: &StepId, _: usize, _: usize) -> Result<Self::Partition, ConnectorError> {
        Ok(RedisStreamSinkPartition {
            con: self.server.connect().map_err(into_connector)?,
            server: self.server.clone(),
            stream: self.stream.clone(),
            max_len: self.max_len,
            _t: PhantomData,
        })
    }

    fn delivery(&self) -> Delivery {
        Delivery::AtLeastOnce
    }
}

/// A worker's connection of a [`RedisStreamSink`].
pub struct RedisStreamSinkPartition<T> {
    con: Connection,
    server: Server,
    stream: String,
    max_len: Option<usize>,
    _t: PhantomData<fn(T)>,
}

impl<T: ToFields + 'static> StatelessSinkPartition for RedisStreamSinkPartition<T> {
    type Item = T;

    fn write_batch(&mut self, items: &mut Vec<T>) -> Result<(), ConnectorError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for item in items.drain(..) {
            let cmd = pipe.cmd("XADD").arg(&self.stream);
            if let Some(n) = self.max_len {
                cmd.arg("MAXLEN").arg("~").arg(n);
            }
            cmd.arg("*");
            item.for_each_field(|name, value| {
                cmd.arg(name).arg(value);
            });
            cmd.ignore();
        }
        pipe.query::<()>(&mut self.con)
            .map_err(
                self.server
                    .failed(format!("add entries to stream {:?}", self.stream)),
            )
            .map_err(into_connector)
    }
}
