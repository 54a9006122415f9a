//! [`MqttSource`]: QoS 1 subscriptions over persistent sessions, one partition per topic
//! filter, acknowledged once durable.

use std::collections::VecDeque;
use std::sync::mpsc::TryRecvError;
use std::time::{Duration, SystemTime};

use bwx_runtime::inputs::{BatchStatus, ConnectorError};
use rumqttc::{Event, Packet, Publish, QoS};

use crate::broker::{Broker, Connected};
use crate::error::into_connector;
use crate::{MqttError, MqttMessage};

/// Subscribes to MQTT topic filters with QoS 1, one partition per filter, each through a
/// persistent session (clean session off) of its own client id, `<prefix>-<index>`.
///
/// The broker keeps a session's subscription and queues its messages while nobody is
/// connected; a message is acknowledged (PUBACK) only once the epoch that read it is
/// durable (the partition's `commit`), so after a crash the broker delivers the
/// unacknowledged ones again: at-least-once, in order per filter, with repeats only of the
/// epochs after the last durable one. A session must exist before messages are published:
/// call [`create_sessions`](Self::create_sessions) once when deploying (a flow's first run
/// creates them too, but misses what was published before).
///
/// The broker delivers a limited number of unacknowledged messages per session
/// (Mosquitto's `max_inflight_messages`, 20 by default): at most that many are read per
/// epoch and durability round, so raise it on the broker for throughput.
///
/// The source tails: it ends only when the flow is stopped. There is no resource to check
/// when it starts, but an unreachable broker stops it then, naming the address.
///
/// ```no_run
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::testing::TestingSink;
/// use bwx_mqtt::MqttSource;
///
/// let source = MqttSource::new("127.0.0.1:1883", "plant-7", ["sensors/+/temperature"]).unwrap();
/// source.create_sessions().unwrap();
/// let flow = Dataflow::new("read");
/// let out = TestingSink::new();
/// flow.input("inp", source).map("payload", |m| m.payload).output("out", out.clone());
/// ```
#[derive(Clone, Debug)]
pub struct MqttSource {
    broker: Broker,
    prefix: String,
    topics: Vec<String>,
    batch: usize,
    poll: Duration,
}

impl MqttSource {
    /// Subscribes to `topics` on the broker at `address` (`host:port`) with the client ids
    /// `<client_prefix>-0`, `<client_prefix>-1`, ... (keep them when resuming: the sessions
    /// hold the messages).
    pub fn new<I, S>(address: &str, client_prefix: &str, topics: I) -> Result<Self, MqttError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Ok(MqttSource {
            broker: Broker::parse(address)?,
            prefix: client_prefix.to_string(),
            topics: topics.into_iter().map(Into::into).collect(),
            batch: 1000,
            poll: Duration::from_millis(20),
        })
    }

    /// Messages emitted per poll (at least 1; default 1000).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// How long a partition with nothing new waits before it looks again (default 20 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll = interval;
        self
    }

    fn client_id(&self, topic: &str) -> Option<String> {
        let index = self.topics.iter().position(|t| t == topic)?;
        Some(format!("{}-{index}", self.prefix))
    }

    /// Creates every partition's session on the broker (connects, subscribes, leaves), so
    /// that the broker queues messages for the flow from now on.
    pub fn create_sessions(&self) -> Result<(), MqttError> {
        for (index, topic) in self.topics.iter().enumerate() {
            let mut connected = self.broker.connect(&format!("{}-{index}", self.prefix), false)?;
            // Messages already queued stay queued: they are not acknowledged here.
            connected.subscribe(topic, &mut Vec::new())?;
            connected.disconnect();
        }
        Ok(())
    }
}

/// One topic filter of an [`MqttSource`]. Its recovery state ([`MqttPartitionState`]) is
/// how many messages it has received: the position itself is the broker's, in the session.
#[bwx_macros::source(crate = bwx_runtime)]
pub struct MqttPartition {
    conn: Connected,
    /// Messages received so far.
    #[state]
    received: u64,
    /// QoS 1 messages emitted and not acknowledged, with their number.
    unacked: VecDeque<(u64, Publish)>,
    /// Messages that came before the subscription was confirmed.
    early: VecDeque<Publish>,
    batch: usize,
    poll: Duration,
    awake: Option<SystemTime>,
}

#[bwx_macros::source(crate = bwx_runtime)]
impl MqttPartition {
    fn list_parts(source: &MqttSource) -> Result<Vec<String>, ConnectorError> {
        // An unreachable broker stops the flow before it starts.
        let broker = &source.broker;
        std::net::TcpStream::connect((broker.host.as_str(), broker.port))
            .map_err(|e| MqttError::Connect {
                at: broker.at.clone(),
                client: "-".into(),
                source: Box::new(e),
            })
            .map_err(into_connector)?;
        Ok(source.topics.clone())
    }

    fn open(
        source: &MqttSource,
        part: &str,
        resume: Option<MqttPartitionState>,
    ) -> Result<Self, ConnectorError> {
        let client_id = source
            .client_id(part)
            .ok_or_else(|| format!("{part:?} is not a topic of this source"))?;
        let mut connected = source.broker.connect(&client_id, false).map_err(into_connector)?;
        let mut early = Vec::new();
        connected.subscribe(part, &mut early).map_err(into_connector)?;
        Ok(MqttPartition {
            conn: connected,
            received: resume.map_or(0, |r| r.received),
            unacked: VecDeque::new(),
            early: early.into(),
            batch: source.batch,
            poll: source.poll,
            awake: None,
        })
    }

    fn next_batch(&mut self, batch: &mut Vec<MqttMessage>) -> Result<BatchStatus, ConnectorError> {
        self.read(batch).map_err(into_connector)
    }

    fn next_awake(&self) -> Option<SystemTime> {
        self.awake
    }

    /// The messages up to the durable count are acknowledged (PUBACK): the broker drops
    /// them from the session. What was read after it stays there for the next run.
    fn commit(&mut self, durable: &MqttPartitionState) -> Result<(), ConnectorError> {
        self.acknowledge(durable.received).map_err(into_connector)
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        // What is not acknowledged stays in the session for the next run.
        self.conn.disconnect();
        Ok(())
    }
}

impl MqttPartition {
    fn read(&mut self, batch: &mut Vec<MqttMessage>) -> Result<BatchStatus, MqttError> {
        while batch.len() < self.batch {
            let publish = match self.early.pop_front() {
                Some(p) => p,
                None => match self.conn.events.try_recv() {
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => p,
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => {
                        return Err(self
                            .conn
                            .broker
                            .failed(&self.conn.client_id, "keep its connection", e));
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        return Err(self.conn.broker.failed(
                            &self.conn.client_id,
                            "keep its connection",
                            "the connection thread ended",
                        ));
                    }
                },
            };
            self.received += 1;
            batch.push(MqttMessage {
                topic: publish.topic.clone(),
                payload: publish.payload.to_vec(),
            });
            if publish.qos != QoS::AtMostOnce {
                self.unacked.push_back((self.received, publish));
            }
        }
        self.awake = batch.is_empty().then(|| SystemTime::now() + self.poll);
        Ok(BatchStatus::Active)
    }

    /// Acknowledges the messages numbered up to `through`.
    fn acknowledge(&mut self, through: u64) -> Result<(), MqttError> {
        while let Some((n, _)) = self.unacked.front()
            && *n <= through
        {
            if let Some((_, publish)) = self.unacked.pop_front() {
                self.conn.client.ack(&publish).map_err(|e| {
                    self.conn
                        .broker
                        .failed(&self.conn.client_id, "acknowledge a message", e)
                })?;
            }
        }
        Ok(())
    }
}
