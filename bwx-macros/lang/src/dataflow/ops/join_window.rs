//! `join_window`: joins keyed streams, of values of any types, on their keys within each
//! window.

use proc_macro2::TokenStream;
use quote::quote_spanned;

use super::EmitCtx;

/// `win = join_window(a, b, clock = c, windower = w, insert = i, emit = e, ordered = o)`
/// becomes `Dataflow::join_window(&flow, "win", c, w, (&a, &b), i, e, o)`.
pub(super) fn emit(cx: &EmitCtx<'_>) -> TokenStream {
    let (private, flow, step, streams) = (cx.private, cx.flow, cx.step, cx.streams);
    let method = proc_macro2::Ident::new("join_window", cx.span);
    // The builder takes clock and windower before the sides, the other settings after.
    let (timing, rest) = cx.args.split_at(cx.args.len().min(2));
    quote_spanned! {cx.span=>
        #private::Dataflow::#method(&#flow, #step #(, #timing)*, (#(#streams,)*) #(, #rest)*)
    }
}
