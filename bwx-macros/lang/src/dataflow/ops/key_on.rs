//! `key_on`: keys each item, giving a keyed stream `(K, item)`.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.key_on(key_fn)`.
pub(super) const DEF: OpDef = OpDef {
    name: "key_on",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: false,
    keyed: false,
    emit: stream_method,
};
