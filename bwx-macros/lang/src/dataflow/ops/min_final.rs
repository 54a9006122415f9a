//! `min_final`: the least value of each key at EOF.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.min_final(by)`.
pub(super) const DEF: OpDef = OpDef {
    name: "min_final",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: true,
    keyed: true,
    emit: stream_method,
};
