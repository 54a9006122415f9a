//! `redistribute`: spreads items evenly over the workers.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.redistribute()`.
pub(super) const DEF: OpDef = OpDef {
    name: "redistribute",
    form: Form::Method,
    args: Args::Exact(0),
    output: Output::Stream,
    stateful: false,
    keyed: false,
    emit: stream_method,
};
