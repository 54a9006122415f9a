//! `join`: joins keyed streams, of values of any types, on their keys.

use proc_macro2::TokenStream;
use quote::quote_spanned;

use super::EmitCtx;

/// `joined = join(a, b, insert = i, emit = e)` becomes
/// `Dataflow::join(&flow, "joined", (&a, &b), i, e)`: the sides are a tuple, so each may
/// have its own value type.
pub(super) fn emit(cx: &EmitCtx<'_>) -> TokenStream {
    let (private, flow, step, streams, args) = (cx.private, cx.flow, cx.step, cx.streams, cx.args);
    let method = proc_macro2::Ident::new("join", cx.span);
    quote_spanned! {cx.span=>
        #private::Dataflow::#method(&#flow, #step, (#(#streams,)*) #(, #args)*)
    }
}
