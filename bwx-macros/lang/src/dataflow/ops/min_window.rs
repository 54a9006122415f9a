//! `min_window`: the value with the smallest `by(value)` in each window.

use super::{Args, Form, OpDef, Output, WINDOW_PORTS, stream_method};

/// `win = stream.min_window(clock, windower, by)`, then `win.down`, `win.late` and `win.meta`. Stateful: the
/// windows' state is stored under the binding's id.
pub(super) const DEF: OpDef = OpDef {
    name: "min_window",
    form: Form::Method,
    args: Args::Exact(3),
    output: Output::Ports(WINDOW_PORTS),
    stateful: true,
    keyed: true,
    emit: stream_method,
};
