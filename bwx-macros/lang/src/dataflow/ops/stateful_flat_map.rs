//! `stateful_flat_map`: maps values to many with a per-key state.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.stateful_flat_map(mapper)`.
pub(super) const DEF: OpDef = OpDef {
    name: "stateful_flat_map",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: true,
    keyed: true,
    emit: stream_method,
};
