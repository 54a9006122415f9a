//! [`MqttSink`]: QoS 1 publications, acknowledged by the broker before the epoch is durable.

use std::marker::PhantomData;
use std::sync::mpsc::TryRecvError;
use std::time::Instant;

use bwx_runtime::inputs::ConnectorError;
use bwx_runtime::outputs::{Delivery, DynamicSink, StatelessSinkPartition};
use bwx_runtime::{Data, StepId};
use rumqttc::{Event, Packet, QoS};

use crate::MqttError;
use crate::broker::{Broker, Connected, TIMEOUT};
use crate::error::into_connector;

/// Publishes every item's bytes to a topic with QoS 1, from every worker (client id
/// `<prefix>-w<worker>`).
///
/// A batch is published without waiting; the broker's acknowledgements (PUBACK) are
/// awaited when the epoch closes (`pre_commit`), before the epoch's snapshot is stored, so
/// a resumed flow never misses a message: at-least-once, the epochs after the last durable
/// one are published again. MQTT keeps messages only for subscribers that exist: subscribe
/// (with a persistent session) before the flow publishes.
///
/// ```no_run
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::testing::TestingSource;
/// use bwx_mqtt::MqttSink;
///
/// let flow = Dataflow::new("write");
/// flow.input("inp", TestingSource::new(vec!["on".to_string(), "off".to_string()]))
///     .output("out", MqttSink::new("127.0.0.1:1883", "lamp-writer", "lamp/set").unwrap());
/// bwx_runtime::run_main(&flow).unwrap();
/// ```
#[derive(Debug)]
pub struct MqttSink<T> {
    broker: Broker,
    prefix: String,
    topic: String,
    _t: PhantomData<fn(T)>,
}

impl<T> MqttSink<T> {
    /// Publishes to `topic` on the broker at `address` (`host:port`).
    pub fn new(address: &str, client_prefix: &str, topic: &str) -> Result<Self, MqttError> {
        Ok(MqttSink {
            broker: Broker::parse(address)?,
            prefix: client_prefix.to_string(),
            topic: topic.to_string(),
            _t: PhantomData,
        })
    }
}

impl<T: AsRef<[u8]> + Data> DynamicSink for MqttSink<T> {
    type Item = T;
    type Partition = MqttSinkPartition<T>;

    fn build(&self, _: &StepId, worker: usize, _: usize) -> Result<Self::Partition, ConnectorError> {
        let client_id = format!("{}-w{worker}", self.prefix);
        Ok(MqttSinkPartition {
            conn: self.broker.connect(&client_id, true).map_err(into_connector)?,
            topic: self.topic.clone(),
            published: 0,
            acked: 0,
            _t: PhantomData,
        })
    }

    fn delivery(&self) -> Delivery {
        Delivery::AtLeastOnce
    }
}

/// A worker's client of an [`MqttSink`].
pub struct MqttSinkPartition<T> {
    conn: Connected,
    topic: String,
    published: u64,
    acked: u64,
    _t: PhantomData<fn(T)>,
}

impl<T> MqttSinkPartition<T> {
    fn count(&mut self, event: Result<Event, rumqttc::ConnectionError>) -> Result<(), MqttError> {
        match event {
            Ok(Event::Incoming(Packet::PubAck(_))) => self.acked += 1,
            Ok(_) => {}
            Err(e) => {
                return Err(self
                    .conn
                    .broker
                    .failed(&self.conn.client_id, "keep its connection", e));
            }
        }
        Ok(())
    }

    /// Counts the acknowledgements that came, without waiting.
    fn drain(&mut self) -> Result<(), MqttError> {
        loop {
            match self.conn.events.try_recv() {
                Ok(event) => self.count(event)?,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => {
                    return Err(self.conn.broker.failed(
                        &self.conn.client_id,
                        "keep its connection",
                        "the connection thread ended",
                    ));
                }
            }
        }
    }

    fn publish(&mut self, items: &mut Vec<T>) -> Result<(), MqttError>
    where
        T: AsRef<[u8]>,
    {
        for item in items.drain(..) {
            self.conn
                .client
                .publish(
                    self.topic.as_str(),
                    QoS::AtLeastOnce,
                    false,
                    item.as_ref().to_vec(),
                )
                .map_err(|e| {
                    self.conn
                        .broker
                        .failed(&self.conn.client_id, &format!("publish to {:?}", self.topic), e)
                })?;
            self.published += 1;
            // The connection thread waits while its events are not taken.
            self.drain()?;
        }
        Ok(())
    }

    fn wait_for_acks(&mut self) -> Result<(), MqttError> {
        let until = Instant::now() + TIMEOUT;
        while self.acked < self.published {
            let left = until.saturating_duration_since(Instant::now());
            let waiting = format!("{} publications to {:?}", self.published - self.acked, self.topic);
            let event = self.conn.next(left, &waiting)?;
            self.count(Ok(event))?;
        }
        Ok(())
    }
}

impl<T: AsRef<[u8]> + 'static> StatelessSinkPartition for MqttSinkPartition<T> {
    type Item = T;

    fn write_batch(&mut self, items: &mut Vec<T>) -> Result<(), ConnectorError> {
        self.publish(items).map_err(into_connector)
    }

    fn pre_commit(&mut self, _epoch: u64) -> Result<(), ConnectorError> {
        self.wait_for_acks().map_err(into_connector)
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        self.conn.disconnect();
        Ok(())
    }
}
