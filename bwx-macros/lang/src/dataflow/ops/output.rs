//! `output`: writes the stream to a sink; the step ends its branch of the flow.

use super::{Args, Form, OpDef, Output, stream_method};

/// `stream.output(sink)`. Stateful: a partitioned sink stores its position under the
/// binding's id.
pub(super) const DEF: OpDef = OpDef {
    name: "output",
    form: Form::Method,
    args: Args::Exact(1),
    output: Output::Nothing,
    stateful: true,
    keyed: false,
    emit: stream_method,
};
