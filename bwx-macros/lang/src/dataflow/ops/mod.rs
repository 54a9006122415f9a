//! The operator table of `dataflow!`, one file per operator (hydro style).
//!
//! Each file declares one [`OpDef`]: the operator's name, how it is called (a method on a
//! stream or a free call), its arguments, its outputs (a stream, named ports, or none),
//! whether it is stateful (so it must end its statement, where its recovery id is the
//! binding) and whether it needs a keyed stream, and the function that emits its builder
//! call. Adding an operator to the builder means adding a file here and a line to [`ALL`].

mod branch;
mod collect;
mod collect_window;
mod count_final;
mod count_window;
mod enrich_cached;
mod filter;
mod filter_map;
mod filter_map_value;
mod filter_value;
mod flat_map;
mod flat_map_batch;
mod flat_map_value;
mod flatten;
mod fold_final;
mod fold_final_with_merge;
mod fold_window;
mod input;
mod inspect;
mod inspect_debug;
mod join;
mod join_window;
mod key_on;
mod key_rm;
mod map;
mod map_value;
mod max_final;
mod max_window;
mod merge;
mod min_final;
mod min_window;
mod output;
mod raises;
mod redistribute;
mod reduce_final;
mod reduce_window;
mod stateful;
mod stateful_batch;
mod stateful_flat_map;
mod stateful_map;
mod window;

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;

/// How an operator is written in a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `stream.name(args)`.
    Method,
    /// `name(args)` at the head of a statement.
    Free,
}

/// The arguments an operator takes (the step id is never written: it is the binding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Args {
    /// Exactly this many Rust expressions.
    Exact(usize),
    /// At least this many upstream streams, then optional named settings.
    Streams {
        /// The fewest streams the operator accepts.
        min: usize,
        /// `name = expr` settings it accepts, in the order the builder takes them, with the
        /// default each one takes (`None`: the setting is required).
        settings: &'static [(&'static str, Option<&'static str>)],
    },
}

/// What an operator produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// One stream.
    Stream,
    /// Several streams, reached as fields of the binding (`split.trues`).
    Ports(&'static [&'static str]),
    /// Nothing: the step ends a branch of the flow (`output`).
    Nothing,
}

/// Everything the emitter of one operator call needs.
pub struct EmitCtx<'a> {
    /// The path of the hidden module, `::bwx::__private` unless `crate = path` was given.
    pub private: &'a TokenStream,
    /// The expression of the upstream stream, for methods (a reference is taken).
    pub upstream: Option<&'a TokenStream>,
    /// Upstream streams of free operators, already as `&stream` expressions.
    pub streams: &'a [TokenStream],
    /// The flow variable.
    pub flow: &'a TokenStream,
    /// The step id string.
    pub step: &'a str,
    /// The user's argument expressions (or named settings, in table order).
    pub args: &'a [TokenStream],
    /// The operator's name (the builder method's).
    pub op: &'static str,
    /// The span of the user's operator name; the call carries it so rustc points there.
    pub span: Span,
}

/// One operator of the table.
pub struct OpDef {
    /// Its name, as the user writes it and as the builder method is called.
    pub name: &'static str,
    /// How it is written.
    pub form: Form,
    /// Its arguments.
    pub args: Args,
    /// What it produces.
    pub output: Output,
    /// Keeps recovery state, so it must end its statement (its id is the binding's).
    pub stateful: bool,
    /// Needs a keyed stream `(K, V)`; rustc enforces it with `KeyedItem`, the table
    /// records it for the graph listing.
    pub keyed: bool,
    /// Emits the builder call.
    pub emit: fn(&EmitCtx<'_>) -> TokenStream,
}

/// Every operator, in the order of the builder's documentation.
pub const ALL: &[&OpDef] = &[
    &input::DEF,
    &output::DEF,
    &merge::DEF,
    &branch::DEF,
    &redistribute::DEF,
    &raises::DEF,
    &map::DEF,
    &filter::DEF,
    &filter_map::DEF,
    &flat_map::DEF,
    &flat_map_batch::DEF,
    &flatten::DEF,
    &inspect::DEF,
    &inspect_debug::DEF,
    &key_on::DEF,
    &key_rm::DEF,
    &map_value::DEF,
    &filter_value::DEF,
    &filter_map_value::DEF,
    &flat_map_value::DEF,
    &enrich_cached::DEF,
    &reduce_final::DEF,
    &count_final::DEF,
    &max_final::DEF,
    &min_final::DEF,
    &fold_final::DEF,
    &fold_final_with_merge::DEF,
    &collect::DEF,
    &stateful::DEF,
    &stateful_batch::DEF,
    &stateful_map::DEF,
    &stateful_flat_map::DEF,
    &join::DEF,
    &window::DEF,
    &fold_window::DEF,
    &reduce_window::DEF,
    &count_window::DEF,
    &collect_window::DEF,
    &max_window::DEF,
    &min_window::DEF,
    &join_window::DEF,
];

/// The ports of every windowing operator: results, late items, closed windows' metadata.
pub const WINDOW_PORTS: &[&str] = &["down", "late", "meta"];

/// The operator called `name` written in `form`.
pub fn lookup(name: &str, form: Form) -> Option<&'static OpDef> {
    ALL.iter().copied().find(|op| op.name == name && op.form == form)
}

/// The operator of either form called `name`.
pub fn lookup_any(name: &str) -> Option<&'static OpDef> {
    ALL.iter().copied().find(|op| op.name == name)
}

/// The closest operator name of `form` to a misspelt `name`, if one is close enough.
pub fn suggest(name: &str, form: Form) -> Option<&'static str> {
    crate::diag::closest(name, ALL.iter().filter(|op| op.form == form).map(|op| op.name))
}

/// `private::Stream::name(&upstream, "step", args...)`: the call of a stream method, in
/// fully qualified form so a closure of the wrong type is reported on the closure.
pub fn stream_method(cx: &EmitCtx<'_>) -> TokenStream {
    let private = cx.private;
    let method = proc_macro2::Ident::new(cx.op, cx.span);
    let upstream = cx.upstream.cloned().unwrap_or_default();
    let step = cx.step;
    let args = cx.args;
    quote_spanned! {cx.span=>
        #private::Stream::#method(&#upstream, #step #(, #args)*)
    }
}

/// Emits the builder call of `op`.
pub fn emit(op: &OpDef, cx: &EmitCtx<'_>) -> TokenStream {
    (op.emit)(cx)
}

/// `tokens` with every span set to `span`. The path of the hidden module is written once
/// for the whole macro; each call gets a copy at the user's operator name, so rustc's span
/// for the call (which joins its first and last tokens) stays on the user's statement.
pub fn respan(tokens: &TokenStream, span: Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|tt| match tt {
            proc_macro2::TokenTree::Group(g) => {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(&g.stream(), span));
                group.set_span(span);
                proc_macro2::TokenTree::Group(group)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}
