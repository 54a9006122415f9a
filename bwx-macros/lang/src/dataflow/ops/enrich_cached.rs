//! `enrich_cached`: maps items with a per-worker TTL cache (no recovery state).

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.enrich_cached(getter, mapper, ttl)`.
pub(super) const DEF: OpDef = OpDef {
    name: "enrich_cached",
    form: Form::Method,
    args: Args::Exact(3),
    output: Output::Stream,
    stateful: false,
    keyed: false,
    emit: stream_method,
};
