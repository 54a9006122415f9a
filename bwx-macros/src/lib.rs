//! Procedural macros of bwx: `dataflow!`, `#[source]` and `#[sink]`. Thin glue: the
//! language lives in `bwx-macros-lang`. Use them through the `bwx` facade.

use proc_macro::TokenStream;

/// Builds a `Dataflow` from statements `binding = stream.operator(args);`; see the `bwx`
/// crate's documentation of `dataflow!`.
#[proc_macro]
pub fn dataflow(input: TokenStream) -> TokenStream {
    bwx_macros_lang::dataflow::expand(input.into()).into()
}
