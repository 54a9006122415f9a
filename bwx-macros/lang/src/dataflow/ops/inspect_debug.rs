//! `inspect_debug`: looks at each item with its step id, epoch and worker.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.inspect_debug(f)`.
pub(super) const DEF: OpDef = OpDef {
    name: "inspect_debug",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: false,
    keyed: false,
    emit: stream_method,
};
