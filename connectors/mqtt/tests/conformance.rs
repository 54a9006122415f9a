//! The MQTT connectors on the conformance kit, against a real broker.
//!
//! They run when `BWX_MQTT_ADDR` is a broker's `host:port` (as `.ci/run` sets it; by hand:
//! `scripts/servers.sh start && eval "$(scripts/servers.sh env)"`), and otherwise skip,
//! saying so, unless `BWX_REQUIRE_SERVERS` is set (as `.ci/run` sets it): then they fail.

use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use bwx_mqtt::{MqttMessage, MqttSink, MqttSource};
use bwx_runtime::inputs::{ConnectorError, StatefulSourcePartition};
use bwx_runtime::operators::{DynamicKind, FixedKind};
use bwx_runtime::outputs::Delivery;
use bwx_runtime::testing::conformance::{Case, Ending, SinkKit, SinkSystem, SourceKit, SourceSystem};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

fn address() -> Option<String> {
    bwx_runtime::testing::conformance::server_address("BWX_MQTT_ADDR")
}

const NOWHERE: &str = "127.0.0.1:1";

/// A plain client of the broker, its events on a channel.
fn client(addr: &str, id: &str, clean: bool) -> (Client, Receiver<Event>) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut options = MqttOptions::new(id, host, port.parse().unwrap());
    options
        .set_clean_session(clean)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = Client::new(options, 1024);
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for event in connection.iter() {
            let Ok(event) = event else { return };
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    (client, rx)
}

/// Publishes with QoS 1 and waits for every acknowledgement.
fn publish(
    addr: &str,
    id: &str,
    topic: &str,
    payloads: impl IntoIterator<Item = String>,
) -> Result<(), ConnectorError> {
    let (client, events) = client(addr, id, true);
    let mut sent = 0;
    for p in payloads {
        client.publish(topic, QoS::AtLeastOnce, false, p.into_bytes())?;
        sent += 1;
    }
    let mut acked = 0;
    while acked < sent {
        match events.recv_timeout(Duration::from_secs(10)) {
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => {
                return Err(format!("no acknowledgement for {} publications: {e}", sent - acked).into());
            }
        }
    }
    client.disconnect()?;
    Ok(())
}

/// Three topics `<case>/<p>`, each read through the session `<case>-<p>`.
struct Topics {
    addr: String,
}

impl SourceSystem for Topics {
    type Kind = FixedKind;
    type Source = MqttSource;

    fn describe(&self) -> String {
        "MqttSource".into()
    }
    fn partitions(&self) -> usize {
        3
    }
    fn ending(&self) -> Ending {
        Ending::Tails
    }
    fn guarantee(&self) -> Delivery {
        Delivery::AtLeastOnce
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        // The broker queues messages only for sessions that exist.
        Ok(self.source(case)?.create_sessions()?)
    }
    fn append(&self, case: &Case, part: usize, records: &[u64]) -> Result<(), ConnectorError> {
        let topic = format!("{}/{part}", case.name());
        publish(
            &self.addr,
            &format!("{}-pub", case.name()),
            &topic,
            records.iter().map(u64::to_string),
        )
    }
    fn source(&self, case: &Case) -> Result<MqttSource, ConnectorError> {
        let topics = (0..3).map(|p| format!("{}/{p}", case.name()));
        Ok(MqttSource::new(&self.addr, case.name(), topics)?
            .batch_size(2)
            .poll_interval(Duration::from_millis(5)))
    }
    fn record(&self, message: &MqttMessage) -> Option<u64> {
        std::str::from_utf8(&message.payload).ok()?.parse().ok()
    }
    fn unreachable(&self, case: &Case) -> Option<Result<MqttSource, ConnectorError>> {
        Some(MqttSource::new(NOWHERE, case.name(), [format!("{}/0", case.name())]).map_err(Into::into))
    }
}

#[test]
fn mqtt_source_conforms() {
    let Some(addr) = address() else { return };
    SourceKit::new(Topics { addr }, "mqtt_source_conforms")
        .run()
        .assert_passed();
}

/// The topic `<case>/out`, read back through the persistent session `<case>-reader`.
struct Out {
    addr: String,
}

impl SinkSystem for Out {
    type Kind = DynamicKind;
    type Item = String;
    type Sink = MqttSink<String>;

    fn describe(&self) -> String {
        "MqttSink".into()
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        // MQTT keeps messages only for subscribers that exist: the reader's session.
        MqttSource::new(
            &self.addr,
            &format!("{}-reader", case.name()),
            [format!("{}/out", case.name())],
        )?
        .create_sessions()?;
        Ok(())
    }
    fn sink(&self, case: &Case) -> Result<Self::Sink, ConnectorError> {
        Ok(MqttSink::new(
            &self.addr,
            case.name(),
            &format!("{}/out", case.name()),
        )?)
    }
    fn item(&self, record: u64) -> String {
        record.to_string()
    }
    fn read_back(&self, case: &Case) -> Result<Vec<u64>, ConnectorError> {
        // Everything queued in the reader's session, until it stays quiet.
        let (client, events) = client(&self.addr, &format!("{}-reader-0", case.name()), false);
        let mut out = Vec::new();
        loop {
            match events.recv_timeout(Duration::from_millis(500)) {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    out.push(std::str::from_utf8(&p.payload)?.parse()?);
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => break,
                Err(e) => return Err(e.into()),
            }
        }
        client.disconnect()?;
        Ok(out)
    }
    fn unreachable(&self, case: &Case) -> Option<Result<Self::Sink, ConnectorError>> {
        Some(MqttSink::new(NOWHERE, case.name(), "x").map_err(Into::into))
    }
}

#[test]
fn mqtt_sink_conforms() {
    let Some(addr) = address() else { return };
    SinkKit::new(Out { addr }, "mqtt_sink_conforms")
        .run()
        .assert_passed();
}

#[test]
fn the_source_acknowledges_only_what_became_durable() {
    let Some(addr) = address() else { return };
    use bwx_runtime::inputs::FixedPartitionedSource;
    let id = format!("acks-{}", std::process::id());
    let topic = format!("{id}/t");
    let source = MqttSource::new(&addr, &id, [topic.clone()])
        .unwrap()
        .batch_size(10);
    source.create_sessions().unwrap();
    publish(
        &addr,
        &format!("{id}-pub"),
        &topic,
        (1..=4).map(|i| i.to_string()),
    )
    .unwrap();
    let step: bwx_runtime::StepId = serde_json::from_str("\"f.inp\"").unwrap();
    let read = |part: &mut bwx_mqtt::MqttPartition, n: usize| {
        let mut got = Vec::new();
        for _ in 0..200 {
            part.next_batch(&mut got).unwrap();
            if got.len() >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        got.iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect::<Vec<_>>()
    };
    let mut part = source.build_part(&step, &topic, None).unwrap();
    assert_eq!(read(&mut part, 4), ["1", "2", "3", "4"]);
    // Only the first two are durable when the process dies.
    let mut durable = part.snapshot();
    durable.received = 2;
    part.commit(&durable).unwrap();
    // Stopped: what is not acknowledged stays in the session.
    part.close().unwrap();
    drop(part);
    // The broker delivers the two that were not acknowledged again.
    let mut resumed = source.build_part(&step, &topic, Some(durable)).unwrap();
    assert_eq!(read(&mut resumed, 2), ["3", "4"]);
}
