//! Procedural macros of bwx: `dataflow!`, `#[source]`, `#[sink]` and `#[operator]`. Thin glue: the
//! language lives in `bwx-macros-lang`. Use them through the `bwx` facade.

use proc_macro::TokenStream;

/// Builds a `Dataflow` from statements `binding = stream.operator(args);`; see the `bwx`
/// crate's documentation of `dataflow!`.
#[proc_macro]
pub fn dataflow(input: TokenStream) -> TokenStream {
    bwx_macros_lang::dataflow::expand(input.into()).into()
}

/// Generates the connector traits of a fixed-partitioned source from a partition struct
/// (with `#[state]` fields) and its impl block (`list_parts`, `open`, `next_batch`,
/// `next_awake`, `snapshot`, `commit`, `close`). Put it on both. See the `bwx` crate's documentation.
#[proc_macro_attribute]
pub fn source(attr: TokenStream, item: TokenStream) -> TokenStream {
    use bwx_macros_lang::connector::{Kind, expand};
    expand(Kind::Source, attr.into(), item.into()).into()
}

/// Generates the connector traits of a fixed-partitioned sink from a partition struct
/// (with `#[state]` fields) and its impl block (`list_parts`, `part_fn`, `open`,
/// `write_batch`, `close`). Put it on both. See the `bwx` crate's documentation.
#[proc_macro_attribute]
pub fn sink(attr: TokenStream, item: TokenStream) -> TokenStream {
    use bwx_macros_lang::connector::{Kind, expand};
    expand(Kind::Sink, attr.into(), item.into()).into()
}

/// Makes a function of streams a composite operator with nested step ids; see the `bwx`
/// crate's documentation of `operator`.
#[proc_macro_attribute]
pub fn operator(attr: TokenStream, item: TokenStream) -> TokenStream {
    bwx_macros_lang::operator::expand(attr.into(), item.into()).into()
}
