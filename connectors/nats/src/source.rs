//! [`JetStreamSource`]: one partition per stream, resumable from the last sequence read,
//! acknowledged once durable.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::pull::Config;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::message::Acker;
use bwx_runtime::StepId;
use bwx_runtime::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::into_connector;
use crate::server::Server;
use crate::{JetStreamMessage, NatsError};

/// Reads JetStream streams, one partition per stream, each resumable from the sequence of
/// the last message read (its recovery state), and acknowledges what became durable.
///
/// Every partition reads through a durable pull consumer `<prefix>-<stream>` (prefix
/// `bwx` unless told), which it creates when it opens: to start after the stored sequence
/// (or at the start of the stream on a fresh run) it deletes an older consumer of that name
/// first. The consumer acknowledges with `AckPolicy::All`: acknowledging a message
/// acknowledges those before it, so one acknowledgement per epoch is enough. Messages
/// delivered again (after the acknowledgement wait) are recognized by their sequence and
/// skipped: the output is exactly-once whatever the acknowledgements do.
///
/// Acknowledgements wait until the epoch that read a message is durable
/// ([`StatefulSourcePartition::commit`]); a crash before it gets the messages again. A
/// stored position whose next messages are no longer in the stream (acknowledged in a
/// work-queue stream, removed by the stream's limits, or a restored backup of the recovery
/// store older than them) is refused with an error ([`NatsError::MessagesGone`]). Use
/// streams with the limits or work-queue retention policy: deleting the consumer of an
/// interest-policy stream drops messages no other consumer wants.
///
/// By default a stream is tailed: a partition with nothing new asks again every
/// [`poll_interval`](Self::poll_interval) and never ends; with `tail(false)` it ends when
/// it has read what was there. A stream that does not exist stops the flow before it
/// starts, naming it.
///
/// ```no_run
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::testing::TestingSink;
/// use bwx_nats::JetStreamSource;
///
/// let source = JetStreamSource::new("nats://127.0.0.1:4222", ["ORDERS"]).unwrap();
/// let flow = Dataflow::new("read");
/// let out = TestingSink::new();
/// flow.input("inp", source).map("payload", |m| m.payload).output("out", out.clone());
/// ```
#[derive(Debug)]
pub struct JetStreamSource {
    server: Server,
    streams: Vec<String>,
    prefix: String,
    batch: usize,
    tail: bool,
    poll: Duration,
    ack_wait: Duration,
}

impl JetStreamSource {
    /// Reads `streams` on the server at `url` (`nats://host:port`).
    pub fn new<I, S>(url: &str, streams: I) -> Result<Self, NatsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Ok(JetStreamSource {
            server: Server::new(url)?,
            streams: streams.into_iter().map(Into::into).collect(),
            prefix: "bwx".into(),
            batch: 1000,
            tail: true,
            poll: Duration::from_millis(100),
            ack_wait: Duration::from_secs(600),
        })
    }

    /// Names the durable consumers `<prefix>-<stream>` (default `bwx`). Two flows reading
    /// one stream need different prefixes.
    pub fn consumer_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    /// Messages read per poll (at least 1; default 1000).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Whether to keep reading new messages (default) or end after the last one.
    pub fn tail(mut self, tail: bool) -> Self {
        self.tail = tail;
        self
    }

    /// How long a tailing partition waits after it found nothing new (default 100 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll = interval;
        self
    }

    /// How long the server waits for an acknowledgement before it delivers a message again
    /// (default 10 minutes); keep it longer than an epoch takes to become durable.
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }
}

/// A stream's recovery state: the sequence of the last message read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JetStreamPosition {
    /// The stream sequence of the last message read, 0 before the first.
    pub last_sequence: u64,
}

impl FixedPartitionedSource for JetStreamSource {
    type Item = JetStreamMessage;
    type State = JetStreamPosition;
    type Partition = JetStreamPartition;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        let js = self.server.connect().map_err(into_connector)?;
        for stream in &self.streams {
            self.server
                .block_on(js.get_stream(stream))
                .map_err(self.server.failed(format!("find stream {stream:?}")))
                .map_err(into_connector)?;
        }
        Ok(self.streams.clone())
    }

    fn build_part(
        &self,
        _: &StepId,
        for_part: &str,
        resume: Option<JetStreamPosition>,
    ) -> Result<JetStreamPartition, ConnectorError> {
        self.open(for_part, resume.unwrap_or_default())
            .map_err(into_connector)
    }
}

impl JetStreamSource {
    fn open(&self, stream_name: &str, position: JetStreamPosition) -> Result<JetStreamPartition, NatsError> {
        let server = &self.server;
        let js = server.connect()?;
        let name = format!("{}-{stream_name}", self.prefix);
        let consumer = server.block_on(async {
            let stream = js
                .get_stream(stream_name)
                .await
                .map_err(server.failed(format!("find stream {stream_name:?}")))?;
            let state = stream
                .get_info()
                .await
                .map_err(server.failed(format!("read the state of stream {stream_name:?}")))?
                .state;
            if position.last_sequence > 0 && state.first_sequence > position.last_sequence + 1 {
                return Err(NatsError::MessagesGone {
                    stream: stream_name.to_string(),
                    first: state.first_sequence,
                    resumed: position.last_sequence,
                });
            }
            if stream.consumer_info(&name).await.is_ok() {
                stream
                    .delete_consumer(&name)
                    .await
                    .map_err(server.failed(format!("delete consumer {name:?}")))?;
            }
            let deliver_policy = match position.last_sequence {
                0 => DeliverPolicy::All,
                last => DeliverPolicy::ByStartSequence {
                    start_sequence: last + 1,
                },
            };
            stream
                .create_consumer(Config {
                    durable_name: Some(name.clone()),
                    deliver_policy,
                    ack_policy: AckPolicy::All,
                    ack_wait: self.ack_wait,
                    // Unacknowledged messages must not stop delivery while epochs wait to
                    // become durable.
                    max_ack_pending: -1,
                    ..Default::default()
                })
                .await
                .map_err(server.failed(format!("create consumer {name:?} of stream {stream_name:?}")))
        })?;
        Ok(JetStreamPartition {
            server: server.clone(),
            consumer,
            stream: stream_name.to_string(),
            position,
            unacked: VecDeque::new(),
            batch: self.batch,
            tail: self.tail,
            poll: self.poll,
            awake: None,
        })
    }
}

/// At most this many acknowledgements wait for their epoch; older ones are dropped, since
/// acknowledging a later message acknowledges them too.
const MAX_UNACKED: usize = 1024;

/// One stream of a [`JetStreamSource`].
pub struct JetStreamPartition {
    server: Server,
    consumer: PullConsumer,
    stream: String,
    position: JetStreamPosition,
    /// The last message of each batch read and not yet acknowledged: (sequence, acker).
    unacked: VecDeque<(u64, Acker)>,
    batch: usize,
    tail: bool,
    poll: Duration,
    awake: Option<SystemTime>,
}

impl JetStreamPartition {
    fn read(&mut self, batch: &mut Vec<JetStreamMessage>) -> Result<BatchStatus, NatsError> {
        let server = &self.server;
        let doing = || format!("read stream {:?}", self.stream);
        let messages = server.block_on(async {
            let mut fetched = self
                .consumer
                .fetch()
                .max_messages(self.batch)
                .messages()
                .await
                .map_err(server.failed(doing()))?;
            let mut out = Vec::new();
            while let Some(message) = fetched.next().await {
                out.push(message.map_err(server.failed(doing()))?);
            }
            Ok::<_, NatsError>(out)
        })?;
        let fetched = messages.len();
        let mut last = None;
        for message in messages {
            let sequence = message.info().map_err(server.failed(doing()))?.stream_sequence;
            // Delivered again after the acknowledgement wait: already read.
            if sequence <= self.position.last_sequence {
                continue;
            }
            let (message, acker) = message.split();
            self.position.last_sequence = sequence;
            batch.push(JetStreamMessage {
                stream: self.stream.clone(),
                subject: message.subject.to_string(),
                sequence,
                payload: message.payload.to_vec(),
            });
            last = Some((sequence, acker));
        }
        if let Some(last) = last {
            if self.unacked.len() == MAX_UNACKED {
                self.unacked.pop_front();
            }
            self.unacked.push_back(last);
        }
        if fetched == self.batch {
            self.awake = None;
            Ok(BatchStatus::Active)
        } else if !self.tail {
            Ok(BatchStatus::Eof)
        } else {
            self.awake = Some(SystemTime::now() + self.poll);
            Ok(BatchStatus::Active)
        }
    }

    /// Acknowledges every message up to `durable`'s sequence.
    fn acknowledge(&mut self, durable: &JetStreamPosition) -> Result<(), NatsError> {
        let mut newest = None;
        while let Some((sequence, _)) = self.unacked.front()
            && *sequence <= durable.last_sequence
        {
            newest = self.unacked.pop_front();
        }
        if let Some((sequence, acker)) = newest {
            self.server
                .block_on(acker.double_ack_with(AckKind::Ack))
                .map_err(self.server.failed(format!(
                    "acknowledge stream {:?} up to sequence {sequence}",
                    self.stream
                )))?;
        }
        Ok(())
    }
}

impl StatefulSourcePartition for JetStreamPartition {
    type Item = JetStreamMessage;
    type State = JetStreamPosition;

    fn next_batch(&mut self, batch: &mut Vec<JetStreamMessage>) -> Result<BatchStatus, ConnectorError> {
        self.read(batch).map_err(into_connector)
    }

    fn next_awake(&self) -> Option<SystemTime> {
        self.awake
    }

    fn snapshot(&self) -> JetStreamPosition {
        self.position
    }

    fn commit(&mut self, durable: &JetStreamPosition) -> Result<(), ConnectorError> {
        self.acknowledge(durable).map_err(into_connector)
    }
}
