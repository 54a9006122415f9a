//! `map`: one item in, one item out.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.map(f)`.
pub(super) const DEF: OpDef = OpDef {
    name: "map",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: false,
    keyed: false,
    emit: stream_method,
};
