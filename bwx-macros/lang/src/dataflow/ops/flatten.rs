//! `flatten`: emits the elements of iterable items.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.flatten()`.
pub(super) const DEF: OpDef = OpDef {
    name: "flatten",
    form: Form::Method,
    args: Args::Exact(0),
    output: Output::Stream,
    stateful: false,
    keyed: false,
    emit: stream_method,
};
