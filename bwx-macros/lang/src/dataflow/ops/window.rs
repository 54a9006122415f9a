//! `window`: windows a keyed stream with the user's own `WindowLogic`.

use super::{Args, Form, OpDef, Output, WINDOW_PORTS, stream_method};

/// `win = stream.window(clock, windower, builder, ordered)`, then `win.down`, `win.late` and `win.meta`. Stateful: the
/// windows' state is stored under the binding's id.
pub(super) const DEF: OpDef = OpDef {
    name: "window",
    form: Form::Method,
    args: Args::Exact(4),
    output: Output::Ports(WINDOW_PORTS),
    stateful: true,
    keyed: true,
    emit: stream_method,
};
