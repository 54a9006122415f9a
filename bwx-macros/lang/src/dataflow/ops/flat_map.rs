//! `flat_map`: maps each item to any number of items.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.flat_map(f)`.
pub(super) const DEF: OpDef = OpDef {
    name: "flat_map",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: false,
    keyed: false,
    emit: stream_method,
};
