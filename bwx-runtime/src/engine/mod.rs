//! The only part of bwx that talks to timely-dataflow.
//!
//! Each worker instantiates a [`crate::Dataflow`] by running every step's build function
//! against a [`BuildCtx`], which owns the timely scope and a table of the timely streams
//! made so far. Per-item work happens in the monomorphised operators of the submodules.
//!
//! The data path in one walk: a source ([`source`]) reads partitions and decides epochs;
//! stateless steps ([`stateless`]) transform items in place; a keyed step ([`stateful`])
//! exchanges items to the worker that owns their key and keeps each key's state in a
//! store ([`per_key`], or the per-worker windows); a sink ([`sink`]) writes, pre-commits
//! and commits. Every stateful operator goes through one epoch life cycle ([`epochs`]):
//! its snapshots go to [`durability`], which writes them to the recovery store and sends
//! the durable frontier back to the sinks.

mod config;
mod control;
mod ctx;
mod durability;
mod epochs;
pub(crate) mod failure;
mod keyed_store;
mod per_key;
mod resume;
pub(crate) mod run;
pub(crate) mod sink;
pub(crate) mod source;
pub(crate) mod stateful;
pub(crate) mod stateless;

pub(crate) use config::ExecConfig;
pub(crate) use control::Control;
pub(crate) use ctx::{BuildCtx, TStream};
#[cfg(test)]
pub(crate) use per_key::PerKey;
pub(crate) use per_key::{EOF_CHUNK, Timers};
