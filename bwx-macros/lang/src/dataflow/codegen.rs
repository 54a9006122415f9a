//! Code generation: one builder call per step, in the user's order, with the user's
//! tokens and spans. Everything generated is named through `::bwx::__private`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use super::check::{BindKind, Plan, PlannedStep};
use super::ops::{self, EmitCtx};

/// The statements of the expansion, one per user statement (for snapshots and for
/// [`expand_plan`]).
pub fn statements(plan: &Plan, private: &TokenStream) -> Vec<TokenStream> {
    let flow = flow_var();
    plan.stmts
        .iter()
        .map(|stmt| {
            let calls = stmt
                .steps
                .iter()
                .enumerate()
                .map(|(k, step)| {
                    let previous = (k > 0).then(|| inner_var(k - 1));
                    let flow = located(&flow, step.name);
                    let previous = previous.map(|v| located(&v, step.name));
                    emit_step(step, previous.as_ref(), private, &flow)
                })
                .collect::<Vec<_>>();
            let binding = &stmt.binding;
            // Every token carries a span of the user's statement, so no error can point at
            // the whole macro invocation.
            let span = binding.span();
            let value = match calls.split_last() {
                None => {
                    let alias = &stmt.alias;
                    quote_spanned!(span=> ::core::clone::Clone::clone(&#alias))
                }
                Some((last, [])) => last.clone(),
                Some((last, inner)) => {
                    let vars = (0..inner.len()).map(|k| located(&inner_var(k), span));
                    quote_spanned!(span=> { #(let #vars = #inner;)* #last })
                }
            };
            match stmt.kind {
                BindKind::Nothing(_) => quote_spanned!(span=> #value;),
                _ => quote_spanned!(span=> let #binding = #value;),
            }
        })
        .collect()
}

/// The whole expansion of a checked flow: a block that builds and returns the `Dataflow`.
pub fn expand_plan(plan: &Plan, private: &TokenStream, name_span: Span) -> TokenStream {
    let flow = flow_var();
    let name = &plan.flow;
    let stmts = statements(plan, private);
    quote_spanned! {name_span=>
        {
            let #flow = #private::Dataflow::new(#name);
            #(#stmts)*
            #flow
        }
    }
}

/// What the expansion becomes when the flow has errors: the errors, and an empty flow so
/// the surrounding code still type-checks and no second wave of errors follows. The
/// user's arguments are kept in code that never runs, so that the names they use are used
/// (no "unused import" for each); with errors already reported, rustc does not ask for
/// the types it cannot infer there.
pub fn placeholder(
    errors: TokenStream,
    args: &[TokenStream],
    private: &TokenStream,
    name: &str,
) -> TokenStream {
    let uses = (!args.is_empty()).then(|| {
        quote! {
            #[allow(unreachable_code)]
            if false {
                let _ = (#(#args,)*);
            }
        }
    });
    quote! {
        {
            #errors
            #uses
            #private::Dataflow::new(#name)
        }
    }
}

fn emit_step(
    step: &PlannedStep,
    previous: Option<&Ident>,
    private: &TokenStream,
    flow: &Ident,
) -> TokenStream {
    let upstream = match (&step.upstream, previous) {
        (Some(tokens), _) => tokens.clone(),
        (None, Some(var)) => quote!(#var),
        (None, None) => quote!(),
    };
    let flow_tokens = quote!(#flow);
    let private = &ops::respan(private, step.name);
    match step.op {
        Some(op) => ops::emit(
            op,
            &EmitCtx {
                private,
                upstream: Some(&upstream),
                upstream_check: match (op.keyed, op.stateful) {
                    (true, true) => Some("keyed_exchanged"),
                    (true, false) => Some("keyed"),
                    (false, _) => None,
                },
                streams: &step.streams,
                flow: &flow_tokens,
                step: &step.id,
                args: &step.args,
                op: op.name,
                span: step.name,
            },
        ),
        None => {
            let callee = &step.callee;
            let id = &step.id;
            let args = &step.args;
            if step.method {
                quote_spanned! {step.name=> #callee(&#flow, #id, &#upstream #(, #args)*) }
            } else {
                quote_spanned! {step.name=> #callee(&#flow, #id #(, #args)*) }
            }
        }
    }
}

/// The flow variable; mixed-site so it cannot clash with the user's names.
fn flow_var() -> Ident {
    Ident::new("__bwx_flow", Span::mixed_site())
}

/// `var` with its hygiene kept and its location moved to `span`.
fn located(var: &Ident, span: Span) -> Ident {
    let mut var = var.clone();
    var.set_span(var.span().located_at(span));
    var
}

/// The variable of the `k`-th inner step of a chain.
fn inner_var(k: usize) -> Ident {
    let mut var = format_ident!("__bwx_step{}", k);
    var.set_span(Span::mixed_site());
    var
}
