//! `collect`: collects each key's values into batches by time or size.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.collect(timeout, max_size)`.
pub(super) const DEF: OpDef = OpDef {
    name: "collect",
    form: Form::Method,
    args: Args::Exact(2),
    output: Output::Stream,
    stateful: true,
    keyed: true,
    emit: stream_method,
};
