//! `reduce_window`: reduces each window's values with a function.

use super::{Args, Form, OpDef, Output, WINDOW_PORTS, stream_method};

/// `win = stream.reduce_window(clock, windower, reducer)`, then `win.down`, `win.late` and `win.meta`. Stateful: the
/// windows' state is stored under the binding's id.
pub(super) const DEF: OpDef = OpDef {
    name: "reduce_window",
    form: Form::Method,
    args: Args::Exact(3),
    output: Output::Ports(WINDOW_PORTS),
    stateful: true,
    keyed: true,
    emit: stream_method,
};
