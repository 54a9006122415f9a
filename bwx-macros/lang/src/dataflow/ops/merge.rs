//! `merge`: one stream with the items of several streams of the same type.

use proc_macro2::TokenStream;
use quote::quote_spanned;

use super::{Args, EmitCtx, Form, OpDef, Output};

/// `all = merge(a, b, ...)`.
pub(super) const DEF: OpDef = OpDef {
    name: "merge",
    form: Form::Free,
    args: Args::Streams {
        min: 1,
        settings: &[],
    },
    output: Output::Stream,
    stateful: false,
    keyed: false,
    emit,
};

fn emit(cx: &EmitCtx<'_>) -> TokenStream {
    let (private, flow, step, streams) = (cx.private, cx.flow, cx.step, cx.streams);
    let method = proc_macro2::Ident::new("merge", cx.span);
    // An array: a side of another item type is reported on that side's name.
    quote_spanned! {cx.span=>
        #private::Dataflow::#method(&#flow, #step, [#(#streams),*])
    }
}
