//! Helpers to test flows: a scripted source, a collecting sink, and local multi-process
//! runs ([`LocalCluster`]).

mod cluster;
mod sink;
mod source;
mod store;

pub use cluster::{ClusterMember, LocalCluster, ProcessOutcome};
pub use sink::TestingSink;
pub use source::{TestingEvent, TestingPartition, TestingPartitionState, TestingSource};
pub use store::MemoryStore;
