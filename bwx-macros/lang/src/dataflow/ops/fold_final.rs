//! `fold_final`: folds each key's values into a state at EOF.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.fold_final(builder, folder)`.
pub(super) const DEF: OpDef = OpDef {
    name: "fold_final",
    form: Form::Method,
    args: Args::Exact(2),
    output: Output::Stream,
    stateful: true,
    keyed: true,
    emit: stream_method,
};
