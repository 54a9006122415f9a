//! `fold_window`: folds each window's values into an accumulator.

use super::{Args, Form, OpDef, Output, WINDOW_PORTS, stream_method};

/// `win = stream.fold_window(clock, windower, init, folder, merger, ordered)`, then `win.down`, `win.late` and `win.meta`. Stateful: the
/// windows' state is stored under the binding's id.
pub(super) const DEF: OpDef = OpDef {
    name: "fold_window",
    form: Form::Method,
    args: Args::Exact(6),
    output: Output::Ports(WINDOW_PORTS),
    stateful: true,
    keyed: true,
    emit: stream_method,
};
