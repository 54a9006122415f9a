//! `max_final`: the greatest value of each key at EOF.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.max_final(by)`.
pub(super) const DEF: OpDef = OpDef {
    name: "max_final",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: true,
    keyed: true,
    emit: stream_method,
};
