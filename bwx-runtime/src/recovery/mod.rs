//! Recovery: snapshots of state, and resuming a flow where it stopped.
//!
//! With recovery off (the default) no operator tracks touched keys or produces snapshots.
//! With a [`RecoveryStore`] configured, every stateful step, every fixed-partitioned
//! source and sink, and every sink partition takes part in each epoch's life cycle
//! (`engine::epochs`): when an epoch closes on a worker, its operators emit one
//! [`Snapshot`] per key or partition the epoch changed; each snapshot travels to the worker
//! that owns its recovery partition ([`RecoveryStore::partition_of`], partition `p` is
//! owned by worker `p % workers`), which writes it off the worker thread through a
//! [`PartitionWriter`] and records, in the same transaction, that the partition holds every
//! snapshot of the epochs before the new frontier. The least frontier over all partitions
//! is the cluster's durable frontier: it comes back to every worker through the dataflow,
//! and sinks commit the epochs before it.
//!
//! [`SqliteRecovery`] stores snapshots in a directory of SQLite partition files made by
//! [`init_dir`] (`recovery init DIR N`). A resumed execution starts at the least frontier
//! recorded in any partition, with the state of every key as of that epoch re-routed to
//! the workers that now own it, so the worker count may change between executions.
//! [`inspect()`] reports what a directory holds.
//!
//! # Guarantees
//! - State and source positions are exactly-once: a resume replays the input after the
//!   stored positions into the stored state.
//! - Sinks are two-phase ([`crate::outputs`]): a sink partition that truncates to its stored
//!   position on resume (file sinks) or commits transactions on `commit` is exactly-once;
//!   every other sink is at-least-once: the output of the epochs after the resume epoch is
//!   written again.
//! - Every partition records its own progress, so partitions backed up at different moments
//!   within the backup interval still resume at an epoch they all hold; a set that cannot
//!   (backups further apart, a partition of another store or flow, a missing partition) is
//!   refused with an error naming the partitions.
//! - Stop a flow with SIGINT or SIGTERM ([`crate::RunConfig::stop_on_signals`]): inputs stop,
//!   a final snapshot is written and the run returns `Ok`. A `kill -9` loses at most the
//!   epochs after the last durable one, which are replayed.
//!
//! # Several processes and hosts
//! Every process opens the partitions in its own recovery directory. On one host, or on
//! storage every process shares, that is the whole set, and the processes spread the
//! partitions among themselves; on hosts with their own disks each keeps some partitions
//! ([`init_parts`] creates them with one store id for all hosts). Before the flow starts the
//! processes exchange what their partitions hold and agree on the resume epoch: the set must
//! be complete, of one store and flow, and a partition found on two hosts with different
//! contents is refused naming both. Each process then loads only the partitions it holds,
//! and every stored state travels over the dataflow to the worker that resumes it (a key's
//! to its owner, undecoded on the way). To add or remove hosts, stop the flow, move
//! partition files between the hosts' directories (any partition may live on any host), and
//! restart: partitions do not belong to a worker count.
//!
//! # Crash testing
//! With the `failpoints` cargo feature, `BWX_FAILPOINT=NAME[:N]` makes a process kill itself
//! with SIGKILL the `N`-th time it reaches a named point of the recovery code; the crash
//! harness uses it. Without the feature (users' flows) the points compile to nothing.

mod backend;
pub mod codec;
mod error;
#[cfg(feature = "sqlite")]
mod failpoint;
#[cfg(feature = "sqlite")]
pub mod inspect;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "sqlite")]
pub use backend::SqliteBackend;
pub use backend::{RecoveryBackend, RecoveryOptions};
pub use error::RecoveryError;
#[cfg(feature = "sqlite")]
pub use inspect::inspect;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteRecovery, init_dir, init_parts, new_store_id, parse_parts, store_id_of};

use std::collections::HashMap;
use std::hash::Hasher;

use serde::{Deserialize, Serialize};
use twox_hash::XxHash64;

use crate::step_id::StepId;

/// Where a stored state goes when a flow resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Route {
    /// A source or sink partition: to the worker that reads or writes it.
    Partition,
    /// A key's state: to the worker that owns the key ([`crate::worker_for_key`] of this
    /// routing hash), so that no other worker decodes it.
    Key(u64),
    /// A key's state every worker sees: its owner resumes it, the others learn from it
    /// what all keys share (per-worker windows take their watermark from it).
    KeyForAll(u64),
}

/// The state of one key of one step at the close of an epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The dotted step id.
    pub step_id: StepId,
    /// The encoded key ([`codec::encode_key`]); for sources and sinks, the partition name
    /// ([`codec::part_key`]).
    pub key: Vec<u8>,
    /// Where the state goes on resume.
    pub route: Route,
    /// The epoch that closed.
    pub epoch: u64,
    /// The encoded state ([`codec::encode`]), or `None` when the key's state was discarded.
    pub state: Option<Vec<u8>>,
}

/// A stored state, as a resumed step receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Where it was routed by.
    pub route: Route,
    /// The encoded state ([`codec::encode`]).
    pub state: Vec<u8>,
}

/// One step's stored states on one worker: encoded key (or partition name) → state.
pub type StoredStates = HashMap<Vec<u8>, Stored>;

/// The epoch a flow's first execution starts at, as in Bytewax: a store that holds nothing
/// resumes here.
pub const FIRST_EPOCH: u64 = 1;

/// Where an execution starts, as the cluster agreed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ResumePoint {
    /// The number of this execution (0 for the first).
    pub execution: u64,
    /// The epoch it starts at: every partition holds the state of the epochs before it.
    pub epoch: u64,
}

/// What the processes of a cluster agreed on before a flow starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePlan {
    /// Where the execution starts.
    pub point: ResumePoint,
    /// For every partition, the process that holds it: the one that loads its state and
    /// writes it.
    pub holders: Vec<usize>,
}

/// How far a partition is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The partition holds every snapshot of the epochs before this one.
    Until(u64),
    /// The execution finished (every input ended, or it stopped gracefully): the
    /// partition holds every snapshot it will ever get from it. The epochs before `until`
    /// had closed everywhere before.
    Complete {
        /// The last frontier before the end.
        until: u64,
    },
}

/// A recovery store: where each epoch's snapshots become durable, and where a resumed
/// execution's state comes from. Every process opens its own (over the partitions it can
/// reach: all of them on shared storage, its own on a host's disk) before the flow is
/// built; the engine then has the processes agree on a [`ResumePlan`], loads each
/// partition's state in the process that holds it, routes every state to the worker that
/// needs it over the dataflow, and has each partition written by one worker of its holder
/// through a [`PartitionWriter`], on a thread of its own.
pub trait RecoveryStore: Send + Sync + 'static {
    /// How many partitions the set has.
    fn partitions(&self) -> usize;

    /// The partition that stores `key` of `step`; the same in every process.
    fn partition_of(&self, step: &StepId, key: &[u8]) -> usize {
        partition_of(step.as_str(), key, self.partitions())
    }

    /// What the partitions this process reaches say about themselves, for [`plan`](Self::plan).
    fn local_summary(&self) -> Result<Vec<u8>, RecoveryError>;

    /// The plan from every process's summary (`summaries[p]` from process `p`): the same
    /// in every process. An incomplete or inconsistent set (a missing partition, one held
    /// differently by two processes, one of another store) is an error naming it.
    fn plan(&self, summaries: &[Vec<u8>]) -> Result<ResumePlan, RecoveryError>;

    /// The stored state at the plan's resume epoch of the partitions `process` holds.
    fn load(&self, plan: &ResumePlan, process: usize) -> Result<Vec<Snapshot>, RecoveryError>;

    /// Opens the writer of partitions `parts` for this execution of `workers` workers.
    fn open_writer(
        &self,
        plan: &ResumePlan,
        parts: Vec<usize>,
        workers: usize,
    ) -> Result<Box<dyn PartitionWriter>, RecoveryError>;
}

/// Writes some partitions of a store; runs on a thread of its own, one per worker that
/// owns partitions.
pub trait PartitionWriter: Send + 'static {
    /// Makes `rows` (every snapshot of the writer's partitions up to the new progress not
    /// written before) durable, then records `progress` in each partition, atomically with
    /// its rows. Rows of several epochs may come at once; every one must be kept, since a
    /// resume may start at any epoch that every partition holds.
    fn write(&mut self, rows: Vec<Snapshot>, progress: Progress) -> Result<(), RecoveryError>;

    /// The cluster's durable frontier (the least over all partitions) is now `frontier`:
    /// snapshots that no resume can need any more may be collected.
    fn durable(&mut self, frontier: u64) -> Result<(), RecoveryError>;

    /// Whether garbage is left to collect: [`collect_garbage`](Self::collect_garbage)
    /// runs while the writer has nothing to write.
    fn has_garbage(&self) -> bool {
        false
    }

    /// Collects some garbage (one bounded step, so that writes do not wait long).
    fn collect_garbage(&mut self) -> Result<(), RecoveryError> {
        Ok(())
    }
}

/// The stable hash that routes a snapshot to a partition: `route_hash(&(step, key))` with
/// the key's encoded bytes, computed without allocating the tuple.
pub(crate) fn partition_of(step: &str, key: &[u8], parts: usize) -> usize {
    let mut h = XxHash64::with_seed(0);
    h.write(step.as_bytes());
    h.write(&(step.len() as u64).to_le_bytes());
    h.write(key);
    h.write(&(key.len() as u64).to_le_bytes());
    (h.finish() % parts.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_routing_is_the_route_hash_of_step_and_key() {
        let (step, key) = ("f.sum".to_string(), vec![1u8, 2, 3]);
        let expected = (crate::route_hash(&(step.clone(), key.clone())) % 7) as usize;
        assert_eq!(partition_of(&step, &key, 7), expected);
    }
}
