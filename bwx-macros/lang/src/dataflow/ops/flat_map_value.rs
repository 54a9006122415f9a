//! `flat_map_value`: maps each value to any number of values under its key.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.flat_map_value(f)`.
pub(super) const DEF: OpDef = OpDef {
    name: "flat_map_value",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: false,
    keyed: true,
    emit: stream_method,
};
