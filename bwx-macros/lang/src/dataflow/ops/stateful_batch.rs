//! `stateful_batch`: per-key logic over batches (`StatefulBatchLogic`).

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.stateful_batch(builder)`.
pub(super) const DEF: OpDef = OpDef {
    name: "stateful_batch",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: true,
    keyed: true,
    emit: stream_method,
};
