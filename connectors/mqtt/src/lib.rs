//! MQTT for bwx: [`MqttSource`] subscribes with QoS 1 over persistent sessions, one
//! partition per topic filter, acknowledging messages once their epoch is durable;
//! [`MqttSink`] publishes with QoS 1 and waits for the broker's acknowledgements before an
//! epoch's snapshot is stored.
//!
//! | connector | kind | partitions | recovery state | delivery |
//! | --- | --- | --- | --- | --- |
//! | [`MqttSource`] | fixed-partitioned source of [`MqttMessage`] | one per topic filter (a session each) | messages received (the position is the broker's session) | at-least-once (PUBACK after the epoch is durable) |
//! | [`MqttSink`] | dynamic sink of bytes | one client per worker | none | at-least-once (PUBACKs awaited at the epoch's close) |
//!
//! The client is `rumqttc` (MQTT 3.1.1, plain TCP), its connection driven by a thread per
//! partition. Both connectors pass the conformance kit against a real broker: see
//! `tests/conformance.rs`, which reads the broker from `BWX_MQTT_ADDR` (`host:port`;
//! `scripts/servers.sh` starts Mosquitto).
//!
//! The source is written with `#[source]`: its `commit` method acknowledges, and the
//! engine calls it (as
//! [`StatefulSourcePartition::commit`](bwx_runtime::inputs::StatefulSourcePartition::commit))
//! with a position once the epoch that stored it is durable.

mod broker;
mod error;
mod message;
mod sink;
mod source;

pub use error::MqttError;
pub use message::MqttMessage;
pub use sink::{MqttSink, MqttSinkPartition};
pub use source::{MqttPartition, MqttPartitionState, MqttSource};

/// The `rumqttc` crate this one is built on, for its types.
pub use rumqttc;
