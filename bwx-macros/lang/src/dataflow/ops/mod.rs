//! The operator table of `dataflow!`: one row per builder operator ([`ALL`]).
//!
//! A row says how the operator is written (a method on a stream or a free call), its
//! arguments, its outputs (a stream, named ports, or none), whether it is stateful (so it
//! must end its statement, where its recovery id is the binding), whether it needs a
//! keyed stream, whether it counts as an output of the flow, and the function that emits
//! its builder call. Most operators are stream methods emitted by [`stream_method`]; the
//! free operators with their own emitters have a file each. Adding an operator to the
//! builder means adding a row here; the `every_builder_operator` test fails until then.

mod input;
mod join;
mod join_window;
mod merge;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

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
        /// The most streams the operator accepts.
        max: usize,
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
    /// The function of the hidden module the upstream goes through first, for keyed
    /// operators (`keyed` or `keyed_exchanged`): one check, one error on the stream.
    pub upstream_check: Option<&'static str>,
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
    /// Counts as an output of the flow although it passes its stream on (`inspect`, as in
    /// Bytewax); its binding may go unused.
    pub counts_as_output: bool,
    /// Emits the builder call.
    pub emit: fn(&EmitCtx<'_>) -> TokenStream,
}

impl OpDef {
    /// A stream method with `args` arguments and one output stream, emitted by
    /// [`stream_method`]; the other properties are set by the builders below.
    const fn method(name: &'static str, args: usize) -> OpDef {
        OpDef {
            name,
            form: Form::Method,
            args: Args::Exact(args),
            output: Output::Stream,
            stateful: false,
            keyed: false,
            counts_as_output: false,
            emit: stream_method,
        }
    }

    /// A free operator with its own emitter.
    const fn free(name: &'static str, args: Args, emit: fn(&EmitCtx<'_>) -> TokenStream) -> OpDef {
        OpDef {
            form: Form::Free,
            args,
            emit,
            ..OpDef::method(name, 0)
        }
    }

    const fn stateful(self) -> OpDef {
        OpDef {
            stateful: true,
            ..self
        }
    }

    const fn keyed(self) -> OpDef {
        OpDef { keyed: true, ..self }
    }

    /// Stateful and keyed: the usual per-key operator.
    const fn per_key(self) -> OpDef {
        self.stateful().keyed()
    }

    const fn ports(self, ports: &'static [&'static str]) -> OpDef {
        OpDef {
            output: Output::Ports(ports),
            ..self
        }
    }

    /// Ends its branch: no output stream.
    const fn ends(self) -> OpDef {
        OpDef {
            output: Output::Nothing,
            ..self
        }
    }

    const fn counts_as_output(self) -> OpDef {
        OpDef {
            counts_as_output: true,
            ..self
        }
    }
}

/// The ports of every windowing operator: results, late items, closed windows' metadata.
pub const WINDOW_PORTS: &[&str] = &["down", "late", "meta"];

/// The settings of `join`, defaults as in Bytewax.
const JOIN_SETTINGS: &[(&str, Option<&str>)] = &[
    ("insert", Some("JoinInsertMode::Last")),
    ("emit", Some("JoinEmitMode::Complete")),
];

/// The settings of `join_window`: `clock` and `windower` are required (the builder takes
/// them before the sides), the others default as in Bytewax.
const JOIN_WINDOW_SETTINGS: &[(&str, Option<&str>)] = &[
    ("clock", None),
    ("windower", None),
    ("insert", Some("JoinInsertMode::Last")),
    ("emit", Some("JoinEmitMode::Final")),
    ("ordered", Some("true")),
];

/// Every operator, in the order of the builder's documentation. The arguments of a method
/// are those of the builder method after the step id (which is the binding).
pub const ALL: &[OpDef] = &[
    // The shape of the flow. `input` and `output` are stateful: partition positions are
    // stored under the binding's id.
    OpDef::free("input", Args::Exact(1), input::emit).stateful(),
    OpDef::method("output", 1).ends().stateful(),
    OpDef::free(
        "merge",
        Args::Streams {
            min: 1,
            max: usize::MAX,
            settings: &[],
        },
        merge::emit,
    ),
    OpDef::method("branch", 1).ports(&["trues", "falses"]),
    OpDef::method("redistribute", 0),
    OpDef::method("raises", 0).ends(),
    // Stateless, item by item.
    OpDef::method("map", 1),
    OpDef::method("filter", 1),
    OpDef::method("filter_map", 1),
    OpDef::method("flat_map", 1),
    OpDef::method("flat_map_batch", 1),
    OpDef::method("flatten", 0),
    OpDef::method("inspect", 1).counts_as_output(),
    OpDef::method("inspect_debug", 1).counts_as_output(),
    // Keys.
    OpDef::method("key_on", 1),
    OpDef::method("key_rm", 0).keyed(),
    OpDef::method("map_value", 1).keyed(),
    OpDef::method("filter_value", 1).keyed(),
    OpDef::method("filter_map_value", 1).keyed(),
    OpDef::method("flat_map_value", 1).keyed(),
    // Stateful. `enrich_cached` keeps a per-worker cache and no recovery state;
    // `count_final` keys by its function, so its stream need not be keyed.
    OpDef::method("enrich_cached", 3),
    OpDef::method("reduce_final", 1).per_key(),
    OpDef::method("count_final", 1).stateful(),
    OpDef::method("max_final", 1).per_key(),
    OpDef::method("min_final", 1).per_key(),
    OpDef::method("fold_final", 2).per_key(),
    OpDef::method("fold_final_with_merge", 3).per_key(),
    OpDef::method("collect", 2).per_key(),
    OpDef::method("stateful", 1).per_key(),
    OpDef::method("stateful_batch", 1).per_key(),
    OpDef::method("stateful_map", 1).per_key(),
    OpDef::method("stateful_flat_map", 1).per_key(),
    OpDef::free(
        "join",
        Args::Streams {
            min: 2,
            max: 6,
            settings: JOIN_SETTINGS,
        },
        join::emit,
    )
    .per_key(),
    // Windowing: `win = stream.fold_window(..)`, then `win.down`, `win.late`, `win.meta`.
    OpDef::method("window", 4).per_key().ports(WINDOW_PORTS),
    OpDef::method("fold_window", 6).per_key().ports(WINDOW_PORTS),
    OpDef::method("reduce_window", 3).per_key().ports(WINDOW_PORTS),
    OpDef::method("count_window", 3).stateful().ports(WINDOW_PORTS),
    OpDef::method("collect_window", 3).per_key().ports(WINDOW_PORTS),
    OpDef::method("max_window", 3).per_key().ports(WINDOW_PORTS),
    OpDef::method("min_window", 3).per_key().ports(WINDOW_PORTS),
    OpDef::free(
        "join_window",
        Args::Streams {
            min: 2,
            max: 6,
            settings: JOIN_WINDOW_SETTINGS,
        },
        join_window::emit,
    )
    .per_key()
    .ports(WINDOW_PORTS),
];

/// The operator called `name` written in `form`.
pub fn lookup(name: &str, form: Form) -> Option<&'static OpDef> {
    ALL.iter().find(|op| op.name == name && op.form == form)
}

/// The operator of either form called `name`.
pub fn lookup_any(name: &str) -> Option<&'static OpDef> {
    ALL.iter().find(|op| op.name == name)
}

/// Operators under their names in older Bytewax versions, and what they are called here.
const RENAMED: &[(&str, &str)] = &[
    ("reduce", "reduce_final"),
    ("reduce_epoch", "reduce_final"),
    ("fold", "fold_final"),
    ("fold_epoch", "fold_final"),
    ("count", "count_final"),
    ("max", "max_final"),
    ("min", "min_final"),
    ("capture", "output"),
    ("inspect_epoch", "inspect_debug"),
];

/// The operator of `form` a misspelt (or Bytewax's older) `name` probably means.
pub fn suggest(name: &str, form: Form) -> Option<&'static str> {
    if let Some((_, now)) = RENAMED.iter().find(|(old, _)| *old == name)
        && lookup(now, form).is_some()
    {
        return Some(now);
    }
    crate::diag::closest(name, ALL.iter().filter(|op| op.form == form).map(|op| op.name))
}

/// `private::Stream::name(&upstream, "step", args...)`: the call of a stream method, in
/// fully qualified form so a closure of the wrong type is reported on the closure.
pub fn stream_method(cx: &EmitCtx<'_>) -> TokenStream {
    let private = cx.private;
    let method = proc_macro2::Ident::new(cx.op, cx.span);
    let upstream = cx.upstream.cloned().unwrap_or_default();
    let upstream = match cx.upstream_check {
        Some(check) => {
            let check = proc_macro2::Ident::new(check, upstream_span(&upstream, cx.span));
            quote_spanned!(upstream_span(&upstream, cx.span)=> &#private::#check(&#upstream))
        }
        None => quote!(&#upstream),
    };
    let step = cx.step;
    let args = cx.args;
    quote_spanned! {cx.span=>
        #private::Stream::#method(#upstream, #step #(, #args)*)
    }
}

/// Where the upstream stream is written: its first token (a previous step of a chain is
/// at the operator).
fn upstream_span(upstream: &TokenStream, fallback: Span) -> Span {
    upstream.clone().into_iter().next().map_or(fallback, |t| t.span())
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
