//! `fold_final_with_merge`: folds with a merge of partial states, combined before the exchange.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.fold_final_with_merge(builder, folder, merger)`.
pub(super) const DEF: OpDef = OpDef {
    name: "fold_final_with_merge",
    form: Form::Method,
    args: Args::Exact(3),
    output: Output::Stream,
    stateful: true,
    keyed: true,
    emit: stream_method,
};
