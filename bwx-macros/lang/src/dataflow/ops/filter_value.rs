//! `filter_value`: filters a keyed stream by value.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.filter_value(predicate)`.
pub(super) const DEF: OpDef = OpDef {
    name: "filter_value",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: false,
    keyed: true,
    emit: stream_method,
};
