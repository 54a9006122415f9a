//! `collect_window`: collects each window's values into a `Vec`.

use super::{Args, Form, OpDef, Output, WINDOW_PORTS, stream_method};

/// `win = stream.collect_window(clock, windower, ordered)`, then `win.down`, `win.late` and `win.meta`. Stateful: the
/// windows' state is stored under the binding's id.
pub(super) const DEF: OpDef = OpDef {
    name: "collect_window",
    form: Form::Method,
    args: Args::Exact(3),
    output: Output::Ports(WINDOW_PORTS),
    stateful: true,
    keyed: true,
    emit: stream_method,
};
