//! `join`: joins keyed streams on their keys.

use proc_macro2::TokenStream;
use quote::quote_spanned;

use super::{Args, EmitCtx, Form, OpDef, Output};

/// `joined = join(a, b, ..., insert = JoinInsertMode::Last, emit = JoinEmitMode::Complete)`;
/// the settings are optional and default to Bytewax's (`Last`, `Complete`).
pub(super) const DEF: OpDef = OpDef {
    name: "join",
    form: Form::Free,
    args: Args::Streams {
        min: 2,
        settings: &[
            ("insert", Some("JoinInsertMode::Last")),
            ("emit", Some("JoinEmitMode::Complete")),
        ],
    },
    output: Output::Stream,
    stateful: true,
    keyed: true,
    emit,
};

fn emit(cx: &EmitCtx<'_>) -> TokenStream {
    let (private, flow, step, streams, args) = (cx.private, cx.flow, cx.step, cx.streams, cx.args);
    let method = proc_macro2::Ident::new("join", cx.span);
    quote_spanned! {cx.span=>
        #private::Dataflow::#method(&#flow, #step, [#(#streams),*] #(, #args)*)
    }
}
