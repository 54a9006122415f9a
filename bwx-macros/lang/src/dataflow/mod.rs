//! `dataflow!`: parse, check, generate.
//!
//! ```text
//! dataflow!(wordcount {
//!     lines  = input(source);
//!     words  = lines.flat_map(|l| split(l)).filter(|w| !w.is_empty());
//!     counts = words.count_final(|w| w.clone());
//!     out    = counts.output(sink);
//! })
//! ```
//! Step ids are the bindings (`wordcount.counts`). In a chain, every step but the last is
//! named `binding_operator` (`words_flat_map`), numbered `binding_operator_2`, ... when an
//! operator repeats; the last is named after the binding. Stateful steps (`input`,
//! `output`, `*_final`, `stateful*`, `collect`, `join`, `*_window`, `join_window`) and
//! steps with ports (`branch`; windows have `down`, `late`, `meta`) must end their
//! statement, so their recovery ids are the user's own names.
//! A free call of any other path, `x = my_sub(a, 3);`, calls a sub-flow: an ordinary
//! function `fn my_sub(flow: &Dataflow, id: &str, a: &Stream<T>, ...) -> R`; arguments
//! naming bindings are passed by reference, others as written.

mod check;
mod codegen;
mod graph;
pub mod ops;
mod parse;

use proc_macro2::{Span, TokenStream};
use quote::quote;

use crate::diag::Diagnostics;

pub use check::{BindKind, Plan};
pub use graph::Graph;

/// Everything the macro learnt about one input.
pub struct Analysis {
    /// The path of the facade's hidden module.
    pub private: TokenStream,
    /// The flow id and the span of its name, when the input got that far.
    pub name: Option<(String, Span)>,
    /// The checked plan, when the input got that far.
    pub plan: Option<Plan>,
    /// Every error found.
    pub diag: Diagnostics,
    /// The user's argument expressions that name no stream of the flow, for the
    /// placeholder: they keep their imports used when the flow has errors.
    pub user_args: Vec<TokenStream>,
}

/// Parses and checks a `dataflow!` input.
pub fn analyze(input: TokenStream) -> Analysis {
    let mut diag = Diagnostics::default();
    let Some(def) = parse::parse_flow(input, &mut diag) else {
        return Analysis {
            private: quote!(::bwx::__private),
            name: None,
            plan: None,
            diag,
            user_args: Vec::new(),
        };
    };
    let private = match &def.krate {
        Some(path) => quote!(#path::__private),
        None => quote!(::bwx::__private),
    };
    let complete = diag.is_empty();
    let plan = check::check(&def, &private, complete, &mut diag);
    Analysis {
        private,
        name: Some((def.name.to_string(), def.name.span())),
        plan: Some(plan),
        user_args: parse::stream_free_args(&def),
        diag,
    }
}

impl Analysis {
    /// The expansion: builder calls, or the errors and a placeholder flow.
    pub fn expand(&self) -> TokenStream {
        let (name, span) = self
            .name
            .clone()
            .unwrap_or_else(|| ("invalid".to_string(), Span::call_site()));
        match &self.plan {
            Some(plan) if self.diag.is_empty() => codegen::expand_plan(plan, &self.private, span),
            _ => codegen::placeholder(
                self.diag.to_compile_errors(),
                &self.user_args,
                &self.private,
                &name,
            ),
        }
    }

    /// The generated statements, one line per user statement (for snapshots).
    pub fn statements(&self) -> Vec<String> {
        self.plan
            .as_ref()
            .map(|plan| {
                codegen::statements(plan, &self.private)
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The graph listing, if the input parsed.
    pub fn graph(&self) -> String {
        self.plan
            .as_ref()
            .map(|p| Graph(p).to_string())
            .unwrap_or_default()
    }
}

/// Expands a `dataflow!` input.
pub fn expand(input: TokenStream) -> TokenStream {
    analyze(input).expand()
}
