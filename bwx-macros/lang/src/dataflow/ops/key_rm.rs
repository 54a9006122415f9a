//! `key_rm`: drops the keys of a keyed stream.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.key_rm()`.
pub(super) const DEF: OpDef = OpDef {
    name: "key_rm",
    form: Form::Method,
    args: Args::Exact(0),
    output: Output::Stream,
    stateful: false,
    keyed: true,
    emit: stream_method,
};
