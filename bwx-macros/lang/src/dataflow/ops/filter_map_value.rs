//! `filter_map_value`: maps values and keeps the `Some` results.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.filter_map_value(f)`.
pub(super) const DEF: OpDef = OpDef {
    name: "filter_map_value",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: false,
    keyed: true,
    emit: stream_method,
};
