//! `branch`: splits a stream in two by a predicate; ports `trues` and `falses`.

use super::{Args, Form, OpDef, Output, stream_method};

/// `split = stream.branch(predicate)`, then `split.trues` and `split.falses`.
pub(super) const DEF: OpDef = OpDef {
    name: "branch",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Ports(&["trues", "falses"]),
    stateful: false,
    keyed: false,
    emit: stream_method,
};
