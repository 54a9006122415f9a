//! `inspect`: looks at each item, passing it on unchanged.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.inspect(f)`.
pub(super) const DEF: OpDef = OpDef {
    name: "inspect",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: false,
    keyed: false,
    emit: stream_method,
};
