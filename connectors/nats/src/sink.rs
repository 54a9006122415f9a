//! [`JetStreamSink`]: messages published to JetStream, acknowledged before the epoch is.

use std::marker::PhantomData;

use async_nats::jetstream::Context;
use async_nats::jetstream::context::PublishAckFuture;
use bwx_runtime::inputs::ConnectorError;
use bwx_runtime::outputs::{Delivery, DynamicSink, StatelessSinkPartition};
use bwx_runtime::{Data, StepId};

use crate::NatsError;
use crate::error::into_connector;
use crate::server::Server;

/// Publishes every item's bytes to a subject captured by a JetStream stream, from every
/// worker.
///
/// A batch is published without waiting; the server's acknowledgements (the message is
/// stored in the stream) are awaited when the epoch closes (`pre_commit`), before the
/// epoch's snapshot is stored, so a resumed flow never misses a message: at-least-once,
/// the epochs after the last durable one are published again. A subject that no stream
/// captures is an error (no acknowledgement comes), naming the subject.
///
/// ```no_run
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::testing::TestingSource;
/// use bwx_nats::JetStreamSink;
///
/// let flow = Dataflow::new("write");
/// flow.input("inp", TestingSource::new(vec!["a".to_string(), "b".to_string()]))
///     .output("out", JetStreamSink::new("nats://127.0.0.1:4222", "orders.new").unwrap());
/// bwx_runtime::run_main(&flow).unwrap();
/// ```
#[derive(Debug)]
pub struct JetStreamSink<T> {
    server: Server,
    subject: String,
    _t: PhantomData<fn(T)>,
}

impl<T> JetStreamSink<T> {
    /// Publishes to `subject` on the server at `url`.
    pub fn new(url: &str, subject: &str) -> Result<Self, NatsError> {
        Ok(JetStreamSink {
            server: Server::new(url)?,
            subject: subject.to_string(),
            _t: PhantomData,
        })
    }
}

impl<T: AsRef<[u8]> + Data> DynamicSink for JetStreamSink<T> {
    type Item = T;
    type Partition = JetStreamSinkPartition<T>;

    fn build(&self, _: &StepId, _: usize, _: usize) -> Result<Self::Partition, ConnectorError> {
        Ok(JetStreamSinkPartition {
            js: self.server.connect().map_err(into_connector)?,
            server: self.server.clone(),
            subject: self.subject.clone(),
            pending: Vec::new(),
            _t: PhantomData,
        })
    }

    fn delivery(&self) -> Delivery {
        Delivery::AtLeastOnce
    }
}

/// Acknowledgements a partition lets wait before it awaits them, below the client's
/// in-flight limit (5,000 by default in `async-nats`), which it would otherwise reach in an
/// epoch that publishes more and wait for forever.
const MAX_PENDING: usize = 1000;

/// A worker's connection of a [`JetStreamSink`].
pub struct JetStreamSinkPartition<T> {
    js: Context,
    server: Server,
    subject: String,
    /// Acknowledgements of the open epoch not yet received.
    pending: Vec<PublishAckFuture>,
    _t: PhantomData<fn(T)>,
}

impl<T> JetStreamSinkPartition<T> {
    fn doing(&self) -> String {
        format!("publish to subject {:?}", self.subject)
    }
}

impl<T: AsRef<[u8]> + 'static> StatelessSinkPartition for JetStreamSinkPartition<T> {
    type Item = T;

    fn write_batch(&mut self, items: &mut Vec<T>) -> Result<(), ConnectorError> {
        let (js, subject, server) = (&self.js, &self.subject, &self.server);
        let pending = &mut self.pending;
        let sent = server.block_on(async {
            for item in items.drain(..) {
                // The client holds one of its in-flight permits per acknowledgement not yet
                // received and blocks publishing when they run out: wait for the ones
                // pending before an epoch publishes that many.
                if pending.len() == MAX_PENDING {
                    for ack in pending.drain(..) {
                        ack.await?;
                    }
                }
                let payload = bytes::Bytes::copy_from_slice(item.as_ref());
                pending.push(js.publish(subject.clone(), payload).await?);
            }
            Ok::<_, async_nats::jetstream::context::PublishError>(())
        });
        sent.map_err(self.server.failed(self.doing()))
            .map_err(into_connector)
    }

    fn pre_commit(&mut self, _epoch: u64) -> Result<(), ConnectorError> {
        let pending = std::mem::take(&mut self.pending);
        let acks = self.server.block_on(async {
            for ack in pending {
                ack.await?;
            }
            Ok::<_, async_nats::jetstream::context::PublishError>(())
        });
        acks.map_err(self.server.failed(self.doing()))
            .map_err(into_connector)
    }
}
