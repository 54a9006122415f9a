//! `input`: reads a source; the first step of every branch of a flow.

use proc_macro2::TokenStream;
use quote::quote_spanned;

use super::EmitCtx;

/// `lines = input(source)` becomes `Dataflow::input(&flow, "lines", source)`.
pub(super) fn emit(cx: &EmitCtx<'_>) -> TokenStream {
    let (private, flow, step, args) = (cx.private, cx.flow, cx.step, cx.args);
    let method = proc_macro2::Ident::new("input", cx.span);
    quote_spanned! {cx.span=>
        #private::Dataflow::#method(&#flow, #step #(, #args)*)
    }
}
