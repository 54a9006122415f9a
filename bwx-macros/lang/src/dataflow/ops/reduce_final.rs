//! `reduce_final`: combines each key's values at EOF.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.reduce_final(reducer)`.
pub(super) const DEF: OpDef = OpDef {
    name: "reduce_final",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: true,
    keyed: true,
    emit: stream_method,
};
