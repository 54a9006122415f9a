//! `flat_map_batch`: maps a whole batch at once.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.flat_map_batch(f)`.
pub(super) const DEF: OpDef = OpDef {
    name: "flat_map_batch",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: false,
    keyed: false,
    emit: stream_method,
};
