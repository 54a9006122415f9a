//! The only part of bwx that talks to timely-dataflow.
//!
//! Each worker instantiates a [`crate::Dataflow`] by running every step's build function
//! against a [`BuildCtx`], which owns the timely scope and a table of the timely streams
//! made so far. Per-item work happens in the monomorphised operators of the submodules.

mod control;
mod ctx;
pub(crate) mod failure;
mod per_key;
pub(crate) mod run;
pub(crate) mod sink;
pub(crate) mod source;
pub(crate) mod stateful;
pub(crate) mod stateless;

pub(crate) use control::Control;
pub(crate) use ctx::{BuildCtx, TStream};
#[cfg(test)]
pub(crate) use per_key::PerKey;
pub(crate) use per_key::{EOF_CHUNK, Timers};
