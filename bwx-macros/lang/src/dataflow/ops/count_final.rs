//! `count_final`: counts items by a key function at EOF.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.count_final(key_fn)`.
pub(super) const DEF: OpDef = OpDef {
    name: "count_final",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: true,
    keyed: false,
    emit: stream_method,
};
