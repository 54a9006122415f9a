//! A broker address, and a client whose connection a thread of its own drives.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use rumqttc::{Client, ConnectReturnCode, Event, MqttOptions, Packet};

use crate::MqttError;

/// How long connecting and each wait for the broker may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// Events the connection thread passes on, bounded so that a slow flow slows the reading.
const CHANNEL: usize = 4096;

/// A broker's `host:port`.
#[derive(Clone, Debug)]
pub(crate) struct Broker {
    pub host: String,
    pub port: u16,
    pub at: String,
}

impl Broker {
    pub fn parse(address: &str) -> Result<Broker, MqttError> {
        let (host, port) = address
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| MqttError::Address(address.to_string()))?;
        Ok(Broker {
            host,
            port,
            at: address.to_string(),
        })
    }

    /// Connects as `client_id` and waits for the broker's answer; a thread drives the
    /// connection from then on and passes its events on.
    pub fn connect(&self, client_id: &str, clean_session: bool) -> Result<Connected, MqttError> {
        let mut options = MqttOptions::new(client_id, self.host.clone(), self.port);
        options
            .set_clean_session(clean_session)
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(30));
        let (client, mut connection) = Client::new(options, 1024);
        let (tx, events) = sync_channel(CHANNEL);
        let name = format!("bwx-mqtt-{client_id}");
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || drive(&mut connection, tx))
            .map_err(|e| self.failed(client_id, "start its connection thread", e))?;
        let mut connected = Connected {
            client,
            events,
            thread: Some(thread),
            broker: self.clone(),
            client_id: client_id.to_string(),
        };
        match connected.next(TIMEOUT, "the connection")? {
            Event::Incoming(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => Ok(connected),
            Event::Incoming(Packet::ConnAck(ack)) => Err(MqttError::Connect {
                at: self.at.clone(),
                client: client_id.to_string(),
                source: format!("the broker answered {:?}", ack.code).into(),
            }),
            other => Err(MqttError::Connect {
                at: self.at.clone(),
                client: client_id.to_string(),
                source: format!("the broker answered {other:?} instead of CONNACK").into(),
            }),
        }
    }

    pub fn failed(
        &self,
        client: &str,
        doing: &str,
        e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> MqttError {
        MqttError::Client {
            at: self.at.clone(),
            client: client.to_string(),
            doing: doing.to_string(),
            source: e.into(),
        }
    }
}

/// Drives the connection until it fails, or the client is dropped or disconnects (which
/// ends the connection only after every request before it was written: acknowledgements
/// are not lost to a partition that stops). A connection error ends it (the partition
/// reports it).
fn drive(connection: &mut rumqttc::Connection, tx: SyncSender<Result<Event, rumqttc::ConnectionError>>) {
    for event in connection.iter() {
        let failed = event.is_err();
        // Outgoing events say nothing the partitions need.
        if !matches!(event, Ok(Event::Outgoing(_))) {
            // A partition that went away takes no events, but its requests still go out.
            let _ = tx.send(event);
        }
        if failed {
            return;
        }
    }
}

/// A connected client and its events.
pub(crate) struct Connected {
    pub client: Client,
    pub events: Receiver<Result<Event, rumqttc::ConnectionError>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub broker: Broker,
    pub client_id: String,
}

impl Connected {
    /// Disconnects once every request so far is written, and waits for the connection to
    /// end (up to [`TIMEOUT`]).
    pub fn disconnect(&mut self) {
        if self.client.disconnect().is_err() {
            return;
        }
        let until = Instant::now() + TIMEOUT;
        // Events keep coming until the connection ends; taking them lets it go on.
        while self.thread.as_ref().is_some_and(|t| !t.is_finished()) && Instant::now() < until {
            let _ = self.events.recv_timeout(Duration::from_millis(10));
        }
        if let Some(thread) = self.thread.take().filter(|t| t.is_finished()) {
            let _ = thread.join();
        }
    }

    /// The next event, waiting up to `timeout`.
    pub fn next(&mut self, timeout: Duration, waiting: &str) -> Result<Event, MqttError> {
        match self.events.recv_timeout(timeout) {
            Ok(Ok(event)) => Ok(event),
            Ok(Err(e)) if waiting == "the connection" => Err(MqttError::Connect {
                at: self.broker.at.clone(),
                client: self.client_id.clone(),
                source: Box::new(e),
            }),
            Ok(Err(e)) => Err(self.broker.failed(&self.client_id, "keep its connection", e)),
            Err(RecvTimeoutError::Timeout) => Err(MqttError::Timeout {
                at: self.broker.at.clone(),
                client: self.client_id.clone(),
                waiting: waiting.to_string(),
                seconds: timeout.as_secs(),
            }),
            Err(RecvTimeoutError::Disconnected) => Err(self.broker.failed(
                &self.client_id,
                "keep its connection",
                "the connection thread ended",
            )),
        }
    }

    /// Subscribes to `topic` with QoS 1 and waits for the broker's answer; publications
    /// that arrive meanwhile are kept in `early`.
    pub fn subscribe(&mut self, topic: &str, early: &mut Vec<rumqttc::Publish>) -> Result<(), MqttError> {
        self.client
            .subscribe(topic, rumqttc::QoS::AtLeastOnce)
            .map_err(|e| {
                self.broker
                    .failed(&self.client_id, &format!("subscribe to {topic:?}"), e)
            })?;
        let until = Instant::now() + TIMEOUT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.next(left, &format!("the subscription to {topic:?}"))? {
                Event::Incoming(Packet::SubAck(ack)) => {
                    let refused = ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                    if refused {
                        return Err(MqttError::Refused {
                            at: self.broker.at.clone(),
                            client: self.client_id.clone(),
                            topic: topic.to_string(),
                        });
                    }
                    return Ok(());
                }
                Event::Incoming(Packet::Publish(p)) => early.push(p),
                _ => {}
            }
        }
    }
}
