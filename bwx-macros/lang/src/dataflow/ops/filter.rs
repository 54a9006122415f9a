//! `filter`: keeps the items the predicate accepts.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.filter(predicate)`.
pub(super) const DEF: OpDef = OpDef {
    name: "filter",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: false,
    keyed: false,
    emit: stream_method,
};
