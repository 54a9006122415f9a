//! The partition's impl block: checks its methods and generates the connector traits.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, GenericParam, Generics, ImplItem, ImplItemFn, ItemImpl, PathArguments, Type,
    WherePredicate, parse_quote,
};

use super::{Kind, Options};
use crate::diag::{Diagnostics, closest, did_you_mean};

/// A method the attribute knows: its name, whether it is required, and its signature
/// for messages.
struct Known {
    name: &'static str,
    required: bool,
    signature: &'static str,
}

const SOURCE: &[Known] = &[
    Known {
        name: "list_parts",
        required: false,
        signature: "fn list_parts(source: &S) -> Result<Vec<String>, ConnectorError>",
    },
    Known {
        name: "may_be_empty",
        required: false,
        signature: "fn may_be_empty(source: &S) -> bool",
    },
    Known {
        name: "open",
        required: true,
        signature: "fn open(source: &S, part: &str) -> Result<Self, ConnectorError>",
    },
    Known {
        name: "next_batch",
        required: true,
        signature: "fn next_batch(&mut self, batch: &mut Vec<Item>) -> Result<BatchStatus, ConnectorError>",
    },
    Known {
        name: "next_awake",
        required: false,
        signature: "fn next_awake(&self) -> Option<SystemTime>",
    },
    Known {
        name: "snapshot",
        required: false,
        signature: "fn snapshot(&self) -> PartState",
    },
    Known {
        name: "commit",
        required: false,
        signature: "fn commit(&mut self, durable: &PartState) -> Result<(), ConnectorError>",
    },
    Known {
        name: "close",
        required: false,
        signature: "fn close(&mut self) -> Result<(), ConnectorError>",
    },
];

/// A single-partition polling source: the partition is a `SimplePoller`, polled on a
/// schedule by `SimplePollingSource::new(|| part, interval)`.
const POLLER: &[Known] = &[
    Known {
        name: "next_item",
        required: true,
        signature: "fn next_item(&mut self) -> Result<Polled<Item>, ConnectorError>",
    },
    Known {
        name: "snapshot",
        required: false,
        signature: "fn snapshot(&self) -> PartState",
    },
];

const SINK: &[Known] = &[
    Known {
        name: "list_parts",
        required: false,
        signature: "fn list_parts(sink: &S) -> Result<Vec<String>, ConnectorError>",
    },
    Known {
        name: "part_fn",
        required: false,
        signature: "fn part_fn(sink: &S, key: &K) -> u64",
    },
    Known {
        name: "delivery",
        required: false,
        signature: "fn delivery(sink: &S) -> Delivery",
    },
    Known {
        name: "open",
        required: true,
        signature: "fn open(sink: &S, part: &str) -> Result<Self, ConnectorError>",
    },
    Known {
        name: "write_batch",
        required: true,
        signature: "fn write_batch(&mut self, batch: &mut Vec<Value>) -> Result<(), ConnectorError>",
    },
    Known {
        name: "pre_commit",
        required: false,
        signature: "fn pre_commit(&mut self, epoch: u64) -> Result<(), ConnectorError>",
    },
    Known {
        name: "snapshot",
        required: false,
        signature: "fn snapshot(&self) -> PartState",
    },
    Known {
        name: "commit",
        required: false,
        signature: "fn commit(&mut self, epoch: u64) -> Result<(), ConnectorError>",
    },
    Known {
        name: "close",
        required: false,
        signature: "fn close(&mut self) -> Result<(), ConnectorError>",
    },
];

/// Checks the impl block and appends the trait impls.
pub fn expand(kind: Kind, item: ItemImpl, options: &Options, diag: &mut Diagnostics) -> TokenStream {
    let polling = kind == Kind::Source
        && item
            .items
            .iter()
            .any(|i| matches!(i, ImplItem::Fn(f) if f.sig.ident == "next_item"));
    let known = match kind {
        Kind::Source if polling => POLLER,
        Kind::Source => SOURCE,
        Kind::Sink => SINK,
    };
    let errors_before = diag.messages().len();
    if item.trait_.is_some() {
        diag.error(
            item.impl_token.span,
            format!(
                "`#[{}]` goes on the partition's own `impl Part {{ .. }}`, not on a trait impl",
                kind.name()
            ),
        );
        return quote!(#item);
    }
    let methods: Vec<&ImplItemFn> = item
        .items
        .iter()
        .filter_map(|i| match i {
            ImplItem::Fn(f) => Some(f),
            _ => None,
        })
        .collect();
    for m in &methods {
        let name = m.sig.ident.to_string();
        if name == "resume" {
            diag.error(
                m.sig.ident.span(),
                "`resume` is generated from the `#[state]` fields of the partition struct; to resume differently, take the state in `open`: `fn open(source: &S, part: &str, resume: Option<PartState>)`",
            );
        } else if !known.iter().any(|k| k.name == name) {
            diag.error(
                m.sig.ident.span(),
                format!(
                    "unknown method `{name}` for `#[{}]`{}; its methods are {} (put helpers in another `impl` block)",
                    kind.name(),
                    did_you_mean(closest(&name, known.iter().map(|k| k.name))),
                    known.iter().map(|k| format!("`{}`", k.name)).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    let find = |name: &str| methods.iter().copied().find(|m| m.sig.ident == name);
    let part = &item.self_ty;
    let Some(state_name) = state_ident(part) else {
        diag.error(part.span(), "the partition type must be a plain struct name");
        return quote!(#item);
    };
    let private = &options.private;
    // Every use of the state type goes through one alias, so that when the struct lacks
    // its attribute (which generates the state type) there is one error, at the alias
    // ("cannot find type `<Part>State`").
    let state_alias = format_ident!("__Bwx{}", state_name, span = part.span());
    let alias = quote_spanned! {part.span()=>
        #[doc(hidden)]
        #[allow(dead_code)]
        type #state_alias = #state_name;
    };
    let state = quote!(#state_alias);
    if polling {
        let poller = poller(&item, &state, find("next_item"), find("snapshot"), options, diag);
        return quote!(#alias #poller);
    }
    for k in known.iter().filter(|k| k.required) {
        if find(k.name).is_none() {
            diag.error(
                item.self_ty.span(),
                format!("`#[{}]` impl is missing `{}`", kind.name(), k.signature),
            );
        }
    }
    let open = find("open");
    let connector = open.and_then(|open| first_param_ref(open, diag));
    let resume_param = open.and_then(|open| resume_param(open, diag));
    let batch_method = match kind {
        Kind::Source => "next_batch",
        Kind::Sink => "write_batch",
    };
    let item_ty = find(batch_method).and_then(|m| vec_param(m, diag));
    if kind == Kind::Source
        && let Some(commit) = find("commit")
    {
        check_source_commit(commit, &state_name, diag);
    }
    if diag.messages().len() != errors_before {
        return quote!(#item);
    }
    let (Some(open), Some(connector), Some(resume_param), Some(item_ty)) =
        (open, connector, resume_param, item_ty)
    else {
        return quote!(#item);
    };
    let has = |name: &str| find(name).is_some();
    // The generated impls hold only when the state struct is a state type: when a
    // `#[state]` field is not serde, its own check is then the only error.
    let part_generics = with_state_bounds(&item.generics, &state, private);
    let connector_generics = merged(&part_generics, &open.sig.generics);
    let (part_impl, _, part_where) = part_generics.split_for_impl();
    let (connector_impl, _, connector_where) = connector_generics.split_for_impl();
    let list_parts = if let Some(list) = find("list_parts") {
        // Through a function pointer of the expected type, so that a parameter of another
        // type is one error at the user's method; the result through `IntoParts`, whose
        // error is at the user's return type.
        let name = list.sig.ident.span();
        let returns = match &list.sig.output {
            syn::ReturnType::Type(_, ty) => ty.span(),
            syn::ReturnType::Default => name,
        };
        let list_fn = quote_spanned!(name=> <#part>::list_parts);
        let listed = quote_spanned!(returns=> #private::IntoParts::into_parts(list_parts(self)));
        quote! {{
            let list_parts: fn(&#connector) -> _ = #list_fn;
            #listed
        }}
    } else {
        quote!(::core::result::Result::Ok(::std::vec![
            ::std::string::String::from("singleton")
        ]))
    };
    let may_be_empty = has("may_be_empty").then(|| {
        quote! {
            fn may_be_empty(&self) -> bool {
                <#part>::may_be_empty(self)
            }
        }
    });
    let epoch_hooks: TokenStream = ["pre_commit", "commit"]
        .into_iter()
        .filter(|name| has(name))
        .map(|name| {
            let method = format_ident!("{name}");
            quote! {
                fn #method(&mut self, epoch: u64) -> ::core::result::Result<(), #private::ConnectorError> {
                    <#part>::#method(self, epoch).map_err(#private::connector_error)
                }
            }
        })
        .collect();
    let close = has("close").then(|| {
        quote! {
            fn close(&mut self) -> ::core::result::Result<(), #private::ConnectorError> {
                <#part>::close(self).map_err(#private::connector_error)
            }
        }
    });
    let snapshot = match find("snapshot") {
        Some(m) => user_snapshot(part, m),
        None => quote_spanned!(part.span()=> <#part as #private::PartitionState>::snapshot_state(self)),
    };
    let resume_fields = quote_spanned!(part.span()=> <#part as #private::PartitionState>::resume_state);
    // `open` goes through a function pointer of the expected type: parameters of other
    // types are one error, at the user's `open`, showing the expected signature.
    let open_fn = quote_spanned!(open.sig.ident.span()=> <#part>::open);
    let open_call = match resume_param {
        ResumeParam::Taken(span) => quote_spanned! {span=>
            let open: fn(&#connector, &str, ::core::option::Option<#state>) -> _ = #open_fn;
            open(self, for_part, resume_state).map_err(#private::connector_error)
        },
        ResumeParam::None => quote! {
            let open: fn(&#connector, &str) -> _ = #open_fn;
            open(self, for_part)
                .map(|mut part| {
                    if let ::core::option::Option::Some(state) = resume_state {
                        #resume_fields(&mut part, state);
                    }
                    part
                })
                .map_err(#private::connector_error)
        },
    };
    let build_part = quote! {
        fn build_part(
            &self,
            _step_id: &#private::StepId,
            for_part: &str,
            resume_state: ::core::option::Option<#state>,
        ) -> ::core::result::Result<#part, #private::ConnectorError> {
            #open_call
        }
    };
    let span = item.self_ty.span();
    let traits = match kind {
        Kind::Source => {
            let next_awake = has("next_awake").then(|| {
                quote! {
                    fn next_awake(&self) -> ::core::option::Option<::std::time::SystemTime> {
                        <#part>::next_awake(self)
                    }
                }
            });
            let commit = find("commit").map(|m| source_commit(part, &state, m, private));
            quote_spanned! {span=>
                impl #connector_impl #private::FixedPartitionedSource for #connector #connector_where {
                    type Item = #item_ty;
                    type State = #state;
                    type Partition = #part;
                    fn list_parts(
                        &self,
                    ) -> ::core::result::Result<::std::vec::Vec<::std::string::String>, #private::ConnectorError> {
                        #list_parts
                    }
                    #may_be_empty
                    #build_part
                }

                impl #part_impl #private::StatefulSourcePartition for #part #part_where {
                    type Item = #item_ty;
                    type State = #state;
                    #[inline]
                    fn next_batch(
                        &mut self,
                        batch: &mut ::std::vec::Vec<#item_ty>,
                    ) -> ::core::result::Result<#private::BatchStatus, #private::ConnectorError> {
                        <#part>::next_batch(self, batch).map_err(#private::connector_error)
                    }
                    #next_awake
                    fn snapshot(&self) -> #state {
                        #snapshot
                    }
                    #commit
                    #close
                }
            }
        }
        Kind::Sink => {
            let key_ty = match (find("part_fn"), &options.key) {
                (Some(m), _) => nth_param_ref(m, 1, diag),
                (None, Some(key)) => Some(key.clone()),
                (None, None) => Some(syn::parse_quote!(::std::string::String)),
            };
            let Some(key_ty) = key_ty else {
                return quote!(#item);
            };
            let part_fn = has("part_fn").then(|| {
                quote! {
                    fn part_fn(&self, key: &#key_ty) -> u64 {
                        <#part>::part_fn(self, key)
                    }
                }
            });
            let delivery = has("delivery").then(|| {
                quote! {
                    fn delivery(&self) -> #private::Delivery {
                        <#part>::delivery(self)
                    }
                }
            });
            quote_spanned! {span=>
                impl #connector_impl #private::FixedPartitionedSink for #connector #connector_where {
                    type Key = #key_ty;
                    type Value = #item_ty;
                    type State = #state;
                    type Partition = #part;
                    fn list_parts(
                        &self,
                    ) -> ::core::result::Result<::std::vec::Vec<::std::string::String>, #private::ConnectorError> {
                        #list_parts
                    }
                    #part_fn
                    #delivery
                    #build_part
                }

                impl #part_impl #private::StatefulSinkPartition for #part #part_where {
                    type Value = #item_ty;
                    type State = #state;
                    #[inline]
                    fn write_batch(
                        &mut self,
                        batch: &mut ::std::vec::Vec<#item_ty>,
                    ) -> ::core::result::Result<(), #private::ConnectorError> {
                        <#part>::write_batch(self, batch).map_err(#private::connector_error)
                    }
                    #epoch_hooks
                    fn snapshot(&self) -> #state {
                        #snapshot
                    }
                    #close
                }
            }
        }
    };
    quote! {
        #item
        #alias
        #traits
    }
}

/// `impl SimplePoller for Part`: the item type is the `T` of `Result<Polled<T>, _>`.
fn poller(
    item: &ItemImpl,
    state: &TokenStream,
    next_item: Option<&ImplItemFn>,
    snapshot: Option<&ImplItemFn>,
    options: &Options,
    diag: &mut Diagnostics,
) -> TokenStream {
    let Some(next_item) = next_item else {
        return quote!(#item);
    };
    let item_ty = match &next_item.sig.output {
        syn::ReturnType::Type(_, ty) => {
            generic_arg(ty, "Result").and_then(|polled| generic_arg(&polled, "Polled"))
        }
        syn::ReturnType::Default => None,
    };
    let Some(item_ty) = item_ty else {
        diag.error(
            next_item.sig.ident.span(),
            "`next_item` returns `Result<Polled<Item>, E>`",
        );
        return quote!(#item);
    };
    let part = &item.self_ty;
    let private = &options.private;
    let generics = with_state_bounds(&item.generics, state, private);
    let resume_fields = quote_spanned!(part.span()=> <#part as #private::PartitionState>::resume_state);
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let snapshot = match snapshot {
        Some(m) => user_snapshot(part, m),
        None => quote_spanned!(part.span()=> <#part as #private::PartitionState>::snapshot_state(self)),
    };
    let span = part.span();
    quote_spanned! {span=>
        #item

        impl #impl_generics #private::SimplePoller for #part #where_clause {
            type Item = #item_ty;
            type State = #state;
            fn next_item(
                &mut self,
            ) -> ::core::result::Result<#private::Polled<#item_ty>, #private::ConnectorError> {
                <#part>::next_item(self).map_err(#private::connector_error)
            }
            fn snapshot(&self) -> #state {
                #snapshot
            }
            fn resume(&mut self, state: #state) {
                #resume_fields(self, state)
            }
        }
    }
}

/// A source's `commit` is `fn commit(&mut self, durable: &PartState) -> Result<(), E>`: the
/// engine hands it a position it stored, not an epoch as to a sink. The shape is checked
/// here, so that a sink-like `commit(&mut self, epoch: u64)` gets one message saying so; the
/// types are checked by the compiler through the generated call.
fn check_source_commit(commit: &ImplItemFn, state: &syn::Ident, diag: &mut Diagnostics) {
    let expected = format!("`fn commit(&mut self, durable: &{state}) -> Result<(), E>`");
    let sig = &commit.sig;
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if matches!(r.kind, syn::ReceiverKind::Reference(_, _, Some(_))) => {}
        Some(other) => {
            diag.error(
                other.span(),
                format!("`commit` of `#[source]` takes `&mut self` first: {expected}"),
            );
            return;
        }
        None => {
            diag.error(
                sig.ident.span(),
                format!("`commit` of `#[source]` takes `&mut self` and the durable position: {expected}"),
            );
            return;
        }
    }
    match (inputs.next(), inputs.next()) {
        (Some(FnArg::Typed(arg)), None) if matches!(&*arg.ty, Type::Reference(r) if r.mutability.is_none()) => {}
        (Some(FnArg::Typed(arg)), None) => diag.error(
            arg.ty.span(),
            format!(
                "`commit` of `#[source]` gets the durable position, a shared reference to the resume state: {expected} (a sink's `commit` gets the epoch)"
            ),
        ),
        (None, _) => diag.error(
            sig.paren_token.span.join(),
            format!("`commit` of `#[source]` needs the durable position: {expected}"),
        ),
        (Some(_), Some(extra)) | (Some(extra @ FnArg::Receiver(_)), None) => diag.error(
            extra.span(),
            format!("`commit` of `#[source]` takes `&mut self` and the durable position only: {expected}"),
        ),
    }
    if matches!(sig.output, syn::ReturnType::Default) {
        diag.error(
            sig.paren_token.span.close(),
            format!("`commit` of `#[source]` returns a `Result`: {expected}"),
        );
    }
}

/// `StatefulSourcePartition::commit` forwarding to the user's method. The method goes
/// through a function pointer of the expected type, so a position of another type is one
/// error at the method's name; the result is converted at its return type, so a return
/// type that is not a `Result` of a convertible error is one error there.
fn source_commit(
    part: &Type,
    state: &TokenStream,
    commit: &ImplItemFn,
    private: &TokenStream,
) -> TokenStream {
    let commit_fn = quote_spanned!(commit.sig.ident.span()=> <#part>::commit);
    let returns = match &commit.sig.output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => commit.sig.ident.span(),
    };
    let call = quote_spanned!(returns=> commit(self, durable).map_err(#private::connector_error));
    quote! {
        fn commit(&mut self, durable: &#state) -> ::core::result::Result<(), #private::ConnectorError> {
            let commit: fn(&mut #part, &#state) -> _ = #commit_fn;
            #call
        }
    }
}

/// The call of the user's `snapshot`, spanned on its return type, so a type that is not
/// the state struct is reported there.
fn user_snapshot(part: &Type, snapshot: &ImplItemFn) -> TokenStream {
    let span = match &snapshot.sig.output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => snapshot.sig.ident.span(),
    };
    quote_spanned!(span=> <#part>::snapshot(self))
}

/// `generics` with the bound every generated impl holds under: the state struct is a
/// state type. It is higher-ranked, so the compiler checks it where the connector is used,
/// not where it is written: a `#[state]` field that is not serde gets only its own
/// check's error, not a cascade from the connector traits.
fn with_state_bounds(generics: &Generics, state: &TokenStream, private: &TokenStream) -> Generics {
    let mut out = generics.clone();
    let bound: WherePredicate = parse_quote!(for<'__bwx> #state: #private::StateField);
    out.make_where_clause().predicates.push(bound);
    out
}

/// The partition impl's generics plus `open`'s own (such as a sink's key type, which the
/// connector has and the partition does not), lifetimes first as Rust requires.
fn merged(part: &Generics, open: &Generics) -> Generics {
    let mut out = part.clone();
    let params: Vec<GenericParam> = part.params.iter().chain(&open.params).cloned().collect();
    let (lifetimes, others): (Vec<_>, Vec<_>) = params
        .into_iter()
        .partition(|p| matches!(p, GenericParam::Lifetime(_)));
    out.params = lifetimes.into_iter().chain(others).collect();
    if let Some(w) = &open.where_clause {
        out.make_where_clause()
            .predicates
            .extend(w.predicates.iter().cloned());
    }
    if !out.params.is_empty() {
        out.lt_token.get_or_insert_with(Default::default);
        out.gt_token.get_or_insert_with(Default::default);
    }
    out
}

/// Whether `open` takes the resume state (a third parameter), and where.
enum ResumeParam {
    Taken(proc_macro2::Span),
    None,
}

/// `open`'s optional third parameter, the resume state; more parameters are an error.
fn resume_param(open: &ImplItemFn, diag: &mut Diagnostics) -> Option<ResumeParam> {
    let inputs = &open.sig.inputs;
    match inputs.len() {
        0..=2 => Some(ResumeParam::None),
        3 => match inputs.iter().nth(2) {
            Some(FnArg::Typed(arg)) => Some(ResumeParam::Taken(arg.ty.span())),
            _ => Some(ResumeParam::None),
        },
        _ => {
            let extra = inputs.iter().nth(3).map_or(open.sig.ident.span(), |a| a.span());
            diag.error(
                extra,
                "`open` takes the connector, the partition name and optionally the resume state: `fn open(source: &S, part: &str, resume: Option<PartState>)`",
            );
            None
        }
    }
}

/// The first type argument of `ty` when its last path segment is `name`.
fn generic_arg(ty: &Type, name: &str) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    match &last.arguments {
        PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
            GenericArgument::Type(t) => Some(t.clone()),
            _ => None,
        }),
        _ => None,
    }
}

/// `<Name>State` for a partition type `Name`.
fn state_ident(ty: &Type) -> Option<syn::Ident> {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            p.path.segments.last().map(|s| format_ident!("{}State", s.ident))
        }
        _ => None,
    }
}

/// The `T` of a first parameter `&T` (the connector type of `open`).
fn first_param_ref(m: &ImplItemFn, diag: &mut Diagnostics) -> Option<Type> {
    nth_param_ref(m, 0, diag)
}

/// The `T` of the `n`-th parameter `&T`.
fn nth_param_ref(m: &ImplItemFn, n: usize, diag: &mut Diagnostics) -> Option<Type> {
    let name = &m.sig.ident;
    match m.sig.inputs.iter().nth(n) {
        Some(FnArg::Typed(arg)) => match &*arg.ty {
            Type::Reference(r) if r.mutability.is_none() => Some((*r.elem).clone()),
            other => {
                diag.error(
                    other.span(),
                    format!("parameter {} of `{name}` must be a shared reference `&T`", n + 1),
                );
                None
            }
        },
        Some(FnArg::Receiver(r)) => {
            diag.error(
                r.span(),
                format!("`{name}` takes the connector, not `self`: `fn {name}(source: &S, ...)`"),
            );
            None
        }
        None => {
            diag.error(name.span(), format!("`{name}` needs a parameter {}: `&T`", n + 1));
            None
        }
    }
}

/// The `T` of the batch parameter `&mut Vec<T>` (after `&mut self`).
fn vec_param(m: &ImplItemFn, diag: &mut Diagnostics) -> Option<Type> {
    let name = &m.sig.ident;
    let batch = m.sig.inputs.iter().nth(1);
    let elem = match batch {
        Some(FnArg::Typed(arg)) => match &*arg.ty {
            Type::Reference(r) if r.mutability.is_some() => vec_elem(&r.elem),
            _ => None,
        },
        _ => None,
    };
    if elem.is_none() {
        let span = batch.map_or(name.span(), |b| b.span());
        diag.error(
            span,
            format!("`{name}` takes `&mut self` and the batch `&mut Vec<T>`"),
        );
    }
    elem
}

fn vec_elem(ty: &Type) -> Option<Type> {
    generic_arg(ty, "Vec")
}
