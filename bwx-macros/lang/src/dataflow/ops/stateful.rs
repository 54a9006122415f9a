//! `stateful`: per-key logic built from the resume state (`StatefulLogic`).

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.stateful(builder)`.
pub(super) const DEF: OpDef = OpDef {
    name: "stateful",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: true,
    keyed: true,
    emit: stream_method,
};
