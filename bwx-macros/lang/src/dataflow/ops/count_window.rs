//! `count_window`: counts the items of each key per window (keys by `key_fn`, so the stream need not be keyed).

use super::{Args, Form, OpDef, Output, WINDOW_PORTS, stream_method};

/// `win = stream.count_window(clock, windower, key_fn)`, then `win.down`, `win.late` and `win.meta`. Stateful: the
/// windows' state is stored under the binding's id.
pub(super) const DEF: OpDef = OpDef {
    name: "count_window",
    form: Form::Method,
    args: Args::Exact(3),
    output: Output::Ports(WINDOW_PORTS),
    stateful: true,
    keyed: false,
    emit: stream_method,
};
