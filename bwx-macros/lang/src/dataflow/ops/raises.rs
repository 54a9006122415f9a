//! `raises`: stops the flow with an error naming the step if any item arrives.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.raises()`.
pub(super) const DEF: OpDef = OpDef {
    name: "raises",
    form: Form::Method,
    args: Args::Exact(0),
    output: Output::Nothing,
    stateful: false,
    keyed: false,
    emit: stream_method,
};
