//! `#[operator]`: a function of streams becomes a composite operator (Bytewax's
//! `@operator`).
//!
//! ```text
//! #[bwx::operator]
//! fn mean(readings: &Stream<(String, f64)>) -> Stream<(String, f64)> { body }
//! ```
//! becomes
//! ```text
//! fn mean(flow: &Dataflow, step: &str, readings: &Stream<(String, f64)>) -> Stream<(String, f64)> {
//!     Dataflow::operator(flow, step, (readings,), |(readings,)| -> Stream<(String, f64)> { body })
//! }
//! ```
//! so its steps get ids `flow.<step>.<inner>` and the streams it is given and returns are
//! checked at the boundary. Parameters whose type names `Stream`, `BranchOut` or
//! `WindowOut` cross the boundary; the others are captured. A first parameter of type
//! `&Dataflow` is the flow (for operators that add inputs); otherwise one is added. The
//! signature `(flow, step, streams and arguments...)` is what `dataflow!` calls, as
//! `x = stream.mean()` or `x = mean(stream)`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

use crate::diag::Diagnostics;

/// Type names whose values are made of streams.
const STREAM_TYPES: &[&str] = &["Stream", "BranchOut", "WindowOut"];

/// Expands `#[operator]` on a function; errors come out as `compile_error!`s beside the
/// function as written, never as a panic.
pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut diag = Diagnostics::default();
    let private = parse_options(attr, &mut diag);
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(e) => {
            let e = syn::Error::new(
                e.span(),
                "`#[bwx::operator]` goes on a function of streams: `fn name(up: &Stream<T>, ...) -> Stream<U>`",
            );
            diag.push(e);
            let errors = diag.to_compile_errors();
            return quote!(#errors #item);
        }
    };
    let out = expand_fn(func, &private, &mut diag);
    let errors = diag.to_compile_errors();
    quote!(#errors #out)
}

fn parse_options(attr: TokenStream, diag: &mut Diagnostics) -> TokenStream {
    let mut krate: Option<syn::Path> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            krate = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("unknown option of `#[bwx::operator]`; it takes `crate = path`"))
        }
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, attr) {
        diag.push(e);
    }
    match krate {
        Some(p) => quote!(#p::__private),
        None => quote!(::bwx::__private),
    }
}

fn expand_fn(func: ItemFn, private: &TokenStream, diag: &mut Diagnostics) -> TokenStream {
    let sig = &func.sig;
    let before = diag.messages().len();
    if let Some(asyncness) = &sig.asyncness {
        diag.error(
            asyncness.span(),
            "an operator builds steps when the flow is built; it cannot be `async` (async work goes in a source or with `AsyncBatcher`)",
        );
    }
    if let Some(constness) = &sig.constness {
        diag.error(
            constness.span(),
            "an operator cannot be `const`: it adds steps to a flow",
        );
    }
    let mut params = sig.inputs.iter().peekable();
    // A first `&Dataflow` parameter is the flow.
    let flow: Option<TokenStream> = match params.peek() {
        Some(FnArg::Typed(p)) if names_type(&p.ty, &["Dataflow"]) => {
            let pat = &p.pat;
            params.next();
            Some(pat.to_token_stream())
        }
        _ => None,
    };
    let mut streams: Vec<(&Pat, &Type)> = Vec::new();
    let mut others = Vec::new();
    for param in params {
        match param {
            FnArg::Receiver(r) => diag.error(
                r.span(),
                "an operator is a free function of streams, not a method: take the stream as a parameter, `up: &Stream<T>`",
            ),
            FnArg::Typed(p) if names_type(&p.ty, STREAM_TYPES) => streams.push((&p.pat, &p.ty)),
            FnArg::Typed(p) => others.push(p),
        }
    }
    if diag.messages().len() > before {
        return func.to_token_stream();
    }
    let (attrs, vis, body) = (&func.attrs, &func.vis, &func.block);
    let (ident, generics, output) = (&sig.ident, &sig.generics, &sig.output);
    let where_clause = &generics.where_clause;
    let fn_span = sig.fn_token.span();
    let step = syn::Ident::new("step", Span::mixed_site());
    let (flow_param, flow_expr) = match &flow {
        Some(pat) => {
            let first = sig.inputs.first().map(ToTokens::to_token_stream);
            (quote!(#first), pat.clone())
        }
        None => {
            let var = syn::Ident::new("flow", Span::mixed_site());
            (quote_spanned!(fn_span=> #var: &#private::Dataflow), quote!(#var))
        }
    };
    let stream_params = streams.iter().map(|(pat, ty)| quote!(#pat: #ty));
    let other_params = others.iter().map(|p| p.to_token_stream());
    let inputs = streams.iter().map(|(pat, _)| binding_of(pat));
    let patterns = streams.iter().map(|(pat, _)| *pat);
    // The closure's return type is the function's, so that `?` and `return` in the body
    // keep their meaning; an `impl Trait` result is inferred instead.
    let returns = match output {
        ReturnType::Type(_, ty) if !mentions_impl(ty) => quote!(-> #ty),
        ReturnType::Type(..) => quote!(),
        ReturnType::Default => quote!(-> ()),
    };
    quote_spanned! {fn_span=>
        #(#attrs)*
        #vis fn #ident #generics (
            #flow_param,
            #step: &str,
            #(#stream_params,)*
            #(#other_params),*
        ) #output #where_clause {
            #private::Dataflow::operator(
                #flow_expr,
                #step,
                (#(#inputs,)*),
                |(#(#patterns,)*)| #returns #body,
            )
        }
    }
}

/// The expression that passes a parameter bound by `pat` on: its binding, or the pattern
/// itself for destructuring patterns (which then cannot be passed on; rustc says so).
fn binding_of(pat: &Pat) -> TokenStream {
    match pat {
        Pat::Ident(p) => {
            let ident = &p.ident;
            quote!(#ident)
        }
        other => other.to_token_stream(),
    }
}

/// Whether `ty` names one of `names` (as the last segment of a path anywhere in it).
fn names_type(ty: &Type, names: &[&str]) -> bool {
    let mut found = false;
    visit_types(ty, &mut |path: &syn::Path| {
        if path
            .segments
            .last()
            .is_some_and(|s| names.iter().any(|n| s.ident == n))
        {
            found = true;
        }
    });
    found
}

/// Whether `ty` contains `impl Trait`.
fn mentions_impl(ty: &Type) -> bool {
    ty.to_token_stream()
        .into_iter()
        .any(|t| matches!(t, proc_macro2::TokenTree::Ident(ref i) if i == "impl"))
}

/// Calls `f` on every path in `ty`, generic arguments included.
fn visit_types(ty: &Type, f: &mut impl FnMut(&syn::Path)) {
    match ty {
        Type::Path(p) => {
            f(&p.path);
            for segment in &p.path.segments {
                if let syn::PathArguments::AngleBracketed(args) = &segment.arguments {
                    for arg in &args.args {
                        if let syn::GenericArgument::Type(t) = arg {
                            visit_types(t, f);
                        }
                    }
                }
            }
        }
        Type::Reference(r) => visit_types(&r.elem, f),
        Type::Slice(s) => visit_types(&s.elem, f),
        Type::Array(a) => visit_types(&a.elem, f),
        Type::Paren(p) => visit_types(&p.elem, f),
        Type::Group(g) => visit_types(&g.elem, f),
        Type::Tuple(t) => t.elems.iter().for_each(|t| visit_types(t, f)),
        _ => {}
    }
}
