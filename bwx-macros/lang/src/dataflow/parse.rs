//! The syntax of `dataflow!`:
//!
//! ```text
//! dataflow!( [crate = path,] name { statement* } )
//! statement := binding = head ( . operator ( args ) )* ;
//! head      := stream | stream . port | free_operator ( args ) | sub_flow_path ( args )
//! ```
//!
//! Parsing is tolerant: a malformed statement is reported and skipped up to its `;`, so
//! every error of the body is reported at once.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Path, Token};

use crate::diag::Diagnostics;

/// A parsed `dataflow!` input.
pub struct FlowDef {
    /// The path of the `bwx` crate (`crate = path`), if not `::bwx`.
    pub krate: Option<Path>,
    /// The flow id.
    pub name: Ident,
    /// The statements that parsed.
    pub stmts: Vec<Statement>,
}

/// `binding = head.op(..).op(..);`
pub struct Statement {
    /// The binding: the id of the statement's last step, and the name of its stream.
    pub binding: Ident,
    /// Where the statement starts.
    pub head: Head,
    /// The method calls after the head.
    pub chain: Vec<Call>,
}

/// The start of a statement.
pub enum Head {
    /// An earlier binding, or one of its ports.
    Ref(StreamRef),
    /// `name(args)`: a free operator (`input`, `merge`, `join`) or a sub-flow function.
    Call {
        /// The callee.
        callee: Path,
        /// The arguments.
        args: Vec<Expr>,
    },
}

/// A reference to a stream: `name` or `name.port`.
#[derive(Clone)]
pub struct StreamRef {
    /// The binding referred to.
    pub name: Ident,
    /// The port, for operators with several outputs.
    pub port: Option<Ident>,
}

/// `.name(args)` in a chain.
pub struct Call {
    /// The operator name.
    pub name: Ident,
    /// Its arguments.
    pub args: Vec<Expr>,
}

/// Parses the whole input, reporting every problem into `diag`; `None` when even the
/// flow name and braces are missing.
pub fn parse_flow(input: TokenStream, diag: &mut Diagnostics) -> Option<FlowDef> {
    let parser = |stream: ParseStream<'_>| -> syn::Result<(Option<Path>, Ident, TokenStream)> {
        let krate = if stream.peek(Token![crate]) {
            let _: Token![crate] = stream.parse()?;
            let _: Token![=] = stream.parse()?;
            let path = Path::parse_mod_style(stream)?;
            let _: Token![,] = stream.parse()?;
            Some(path)
        } else {
            None
        };
        let name: Ident = stream.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected the flow name: `dataflow!(name { lines = input(source); ... })`",
            )
        })?;
        let body;
        syn::braced!(body in stream);
        let tokens: TokenStream = body.parse()?;
        if !stream.is_empty() {
            return Err(stream.error("unexpected tokens after the flow body `{ ... }`"));
        }
        Ok((krate, name, tokens))
    };
    let (krate, name, body) = match parser.parse2(input) {
        Ok(parts) => parts,
        Err(e) => {
            diag.push(e);
            return None;
        }
    };
    let stmts = split_statements(body, diag)
        .into_iter()
        .filter_map(|(tokens, end)| match parse_statement.parse2(tokens) {
            Ok(stmt) => Some(stmt),
            Err(e) => {
                // An error at the end of input points at the statement's last token.
                let span = if e.to_string().contains("end of input") {
                    end
                } else {
                    e.span()
                };
                diag.error(span, e);
                None
            }
        })
        .collect();
    Some(FlowDef { krate, name, stmts })
}

/// Splits the body at top-level `;`. A statement missing its `;` is found when a second
/// `name =` starts inside it; it is reported and split there.
fn split_statements(body: TokenStream, diag: &mut Diagnostics) -> Vec<(TokenStream, Span)> {
    let mut out = Vec::new();
    let mut current: Vec<TokenTree> = Vec::new();
    let tokens: Vec<TokenTree> = body.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        let tt = &tokens[i];
        if let TokenTree::Punct(p) = tt
            && p.as_char() == ';'
        {
            if current.is_empty() {
                diag.error(p.span(), "empty statement: remove this `;`");
            } else {
                let end = current.last().map_or(p.span(), TokenTree::span);
                out.push((current.drain(..).collect(), end));
            }
            i += 1;
            continue;
        }
        // `let name = ...;`: Rust habit; the binding needs no `let` here.
        if current.is_empty()
            && let TokenTree::Ident(word) = tt
            && word == "let"
        {
            diag.error(
                word.span(),
                "no `let` in `dataflow!`: a statement is `name = stream.operator(...);`",
            );
            i += 1;
            continue;
        }
        // `ident =` (not `==`, not `=>`) after a complete expression starts a new statement.
        if !current.is_empty() && starts_statement(&tokens[i..]) && !ends_with_operator(&current) {
            let end = current.last().map_or(tt.span(), TokenTree::span);
            diag.error(end, "expected `;` after this statement");
            out.push((current.drain(..).collect(), end));
        }
        current.push(tt.clone());
        i += 1;
    }
    if let Some(last) = current.last() {
        let end = last.span();
        diag.error(end, "expected `;` after the last statement");
        out.push((current.into_iter().collect(), end));
    }
    out
}

/// Whether the tokens start with `ident =` where the `=` is a lone assignment.
fn starts_statement(tokens: &[TokenTree]) -> bool {
    match (tokens.first(), tokens.get(1), tokens.get(2)) {
        (Some(TokenTree::Ident(_)), Some(TokenTree::Punct(eq)), next) if eq.as_char() == '=' => {
            let joint = eq.spacing() == proc_macro2::Spacing::Joint;
            let followed_by_op =
                matches!(next, Some(TokenTree::Punct(p)) if matches!(p.as_char(), '=' | '>'));
            !(joint && followed_by_op)
        }
        _ => false,
    }
}

/// Whether the last token is a `.`, `=` or similar that needs something after it.
fn ends_with_operator(tokens: &[TokenTree]) -> bool {
    matches!(tokens.last(), Some(TokenTree::Punct(_)))
}

fn parse_statement(input: ParseStream<'_>) -> syn::Result<Statement> {
    if input.peek(Token![_]) {
        return Err(input.error(
            "a binding needs a name (it is the step id); write `_name = ...` for a stream that may go unused",
        ));
    }
    let binding: Ident = input
        .parse()
        .map_err(|e| syn::Error::new(e.span(), "expected a binding: `name = stream.operator(...);`"))?;
    if !input.peek(Token![=]) {
        return Err(input.error(format!(
            "expected `=` after `{binding}`: a statement is `{binding} = stream.operator(...);`"
        )));
    }
    let _: Token![=] = input.parse()?;
    let head = parse_head(input)?;
    let mut chain = Vec::new();
    let mut port_allowed = matches!(&head, Head::Ref(r) if r.port.is_none());
    let mut head = head;
    while !input.is_empty() {
        let _: Token![.] = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected `.operator(...)` or the end of the statement `;`",
            )
        })?;
        let name = Ident::parse_any(input)?;
        if input.peek(syn::token::Paren) {
            let args = parse_args(input)?;
            chain.push(Call { name, args });
            port_allowed = false;
        } else if port_allowed {
            if let Head::Ref(r) = &mut head {
                r.port = Some(name);
            }
            port_allowed = false;
        } else {
            return Err(syn::Error::new(
                name.span(),
                format!(
                    "`.{name}` is not a call: ports are reached from a binding, so end this statement after the operator that has ports and continue from `{binding}.{name}` in a new one"
                ),
            ));
        }
    }
    Ok(Statement { binding, head, chain })
}

fn parse_head(input: ParseStream<'_>) -> syn::Result<Head> {
    let path = Path::parse_mod_style(input)
        .map_err(|e| syn::Error::new(e.span(), "expected a stream name or `input(source)` after `=`"))?;
    if input.peek(syn::token::Paren) {
        let args = parse_args(input)?;
        return Ok(Head::Call { callee: path, args });
    }
    match path.get_ident() {
        Some(name) => Ok(Head::Ref(StreamRef {
            name: name.clone(),
            port: None,
        })),
        None => Err(syn::Error::new(
            path.span(),
            "expected a stream name; a path must be called as a sub-flow: `path(streams, ...)`",
        )),
    }
}

fn parse_args(input: ParseStream<'_>) -> syn::Result<Vec<Expr>> {
    let content;
    syn::parenthesized!(content in input);
    let args = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
    Ok(args.into_iter().collect())
}

/// The argument expressions of every statement that mention no binding of the flow (the
/// right sides of `name = value` settings; stream arguments left out).
pub fn stream_free_args(def: &FlowDef) -> Vec<TokenStream> {
    let bindings: Vec<String> = def.stmts.iter().map(|s| s.binding.to_string()).collect();
    let names_a_binding = |tokens: &TokenStream| mentions(tokens, &bindings);
    let mut out = Vec::new();
    for stmt in &def.stmts {
        let heads = match &stmt.head {
            Head::Call { args, .. } => args.as_slice(),
            Head::Ref(_) => &[],
        };
        for arg in heads.iter().chain(stmt.chain.iter().flat_map(|c| c.args.iter())) {
            let value = match arg {
                Expr::Assign(setting) => setting.right.to_token_stream(),
                other => other.to_token_stream(),
            };
            if !names_a_binding(&value) {
                out.push(value);
            }
        }
    }
    out
}

/// Whether `tokens` contain an identifier in `names`.
fn mentions(tokens: &TokenStream, names: &[String]) -> bool {
    tokens.clone().into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => names.iter().any(|n| i == n),
        TokenTree::Group(g) => mentions(&g.stream(), names),
        _ => false,
    })
}
