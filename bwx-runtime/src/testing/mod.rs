//! Helpers to test flows: a scripted source, a collecting sink, an in-memory recovery store,
//! local multi-process runs ([`LocalCluster`]), and the [`conformance`] kit for connectors.

mod cluster;
#[cfg(feature = "sqlite")]
pub mod conformance;
mod sink;
mod source;
mod store;

pub use cluster::{ClusterMember, LocalCluster, ProcessOutcome};
pub use sink::TestingSink;
pub use source::{TestingEvent, TestingPartition, TestingPartitionState, TestingSource};
pub use store::MemoryStore;
