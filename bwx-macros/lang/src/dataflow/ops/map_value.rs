//! `map_value`: maps the values of a keyed stream.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.map_value(f)`.
pub(super) const DEF: OpDef = OpDef {
    name: "map_value",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: false,
    keyed: true,
    emit: stream_method,
};
