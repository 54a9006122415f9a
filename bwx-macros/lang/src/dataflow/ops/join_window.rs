//! `join_window`: joins keyed streams on their keys within each window.

use proc_macro2::TokenStream;
use quote::quote_spanned;

use super::{Args, EmitCtx, Form, OpDef, Output, WINDOW_PORTS};

/// `win = join_window(a, b, ..., clock = c, windower = w, insert = .., emit = .., ordered = ..)`,
/// then `win.down`, `win.late` and `win.meta`. `clock` and `windower` are required; the
/// other settings default to Bytewax's (`Last`, `Final`, ordered).
pub(super) const DEF: OpDef = OpDef {
    name: "join_window",
    form: Form::Free,
    args: Args::Streams {
        min: 2,
        settings: &[
            ("clock", None),
            ("windower", None),
            ("insert", Some("JoinInsertMode::Last")),
            ("emit", Some("JoinEmitMode::Final")),
            ("ordered", Some("true")),
        ],
    },
    output: Output::Ports(WINDOW_PORTS),
    stateful: true,
    keyed: true,
    emit,
};

fn emit(cx: &EmitCtx<'_>) -> TokenStream {
    let (private, flow, step, streams) = (cx.private, cx.flow, cx.step, cx.streams);
    let method = proc_macro2::Ident::new("join_window", cx.span);
    // The builder takes clock and windower before the sides, the other settings after.
    let (timing, rest) = cx.args.split_at(cx.args.len().min(2));
    quote_spanned! {cx.span=>
        #private::Dataflow::#method(&#flow, #step #(, #timing)*, [#(#streams),*] #(, #rest)*)
    }
}
