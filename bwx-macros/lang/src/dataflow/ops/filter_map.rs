//! `filter_map`: maps and keeps the `Some` results.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.filter_map(f)`.
pub(super) const DEF: OpDef = OpDef {
    name: "filter_map",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: false,
    keyed: false,
    emit: stream_method,
};
