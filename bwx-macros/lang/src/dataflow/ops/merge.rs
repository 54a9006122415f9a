//! `merge`: one stream with the items of several streams of the same type.

use proc_macro2::TokenStream;
use quote::quote_spanned;

use super::EmitCtx;

/// `all = merge(a, b)` becomes `Dataflow::merge(&flow, "all", [&a, &b])`.
pub(super) fn emit(cx: &EmitCtx<'_>) -> TokenStream {
    let (private, flow, step, streams) = (cx.private, cx.flow, cx.step, cx.streams);
    let method = proc_macro2::Ident::new("merge", cx.span);
    // An array: a side of another item type is reported on that side's name.
    quote_spanned! {cx.span=>
        #private::Dataflow::#method(&#flow, #step, [#(#streams),*])
    }
}
