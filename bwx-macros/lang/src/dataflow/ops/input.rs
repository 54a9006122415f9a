//! `input`: reads a source; the first step of every branch of a flow.

use proc_macro2::TokenStream;
use quote::quote_spanned;

use super::{Args, EmitCtx, Form, OpDef, Output};

/// `lines = input(source)`. Stateful: partition positions are stored under the binding's id.
pub(super) const DEF: OpDef = OpDef {
    name: "input",
    form: Form::Free,
    args: Args::Exact(1),
    output: Output::Stream,
    stateful: true,
    keyed: false,
    emit,
};

fn emit(cx: &EmitCtx<'_>) -> TokenStream {
    let (private, flow, step, args) = (cx.private, cx.flow, cx.step, cx.args);
    let method = proc_macro2::Ident::new("input", cx.span);
    quote_spanned! {cx.span=>
        #private::Dataflow::#method(&#flow, #step #(, #args)*)
    }
}
