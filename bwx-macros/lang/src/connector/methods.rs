//! The partition's impl block: checks its methods and generates the connector traits.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ImplItem, ImplItemFn, ItemImpl, PathArguments, Type};

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
        signature: "fn list_parts(source: &S) -> Vec<String>",
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
        name: "close",
        required: false,
        signature: "fn close(&mut self) -> Result<(), ConnectorError>",
    },
];

/// A single-partition polling source: the partition is a `SimplePoller`, polled on a
/// schedule by `SimplePollingSource::new(|| part, interval)`.
const POLLER: &[Known] = &[Known {
    name: "next_item",
    required: true,
    signature: "fn next_item(&mut self) -> Result<Polled<Item>, ConnectorError>",
}];

const SINK: &[Known] = &[
    Known {
        name: "list_parts",
        required: false,
        signature: "fn list_parts(sink: &S) -> Vec<String>",
    },
    Known {
        name: "part_fn",
        required: false,
        signature: "fn part_fn(sink: &S, key: &K) -> u64",
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
        if name == "snapshot" || name == "resume" {
            diag.error(
                m.sig.ident.span(),
                format!(
                    "`{name}` is generated from the `#[state]` fields of the partition struct; remove it"
                ),
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
    if polling {
        return poller(&item, find("next_item"), options, diag);
    }
    for k in known.iter().filter(|k| k.required) {
        if find(k.name).is_none() {
            diag.error(
                item.self_ty.span(),
                format!("`#[{}]` impl is missing `{}`", kind.name(), k.signature),
            );
        }
    }
    let connector = find("open").and_then(|open| first_param_ref(open, diag));
    let batch_method = match kind {
        Kind::Source => "next_batch",
        Kind::Sink => "write_batch",
    };
    let item_ty = find(batch_method).and_then(|m| vec_param(m, diag));
    if diag.messages().len() != errors_before {
        return quote!(#item);
    }
    let (Some(connector), Some(item_ty)) = (connector, item_ty) else {
        return quote!(#item);
    };
    let part = &item.self_ty;
    let state = match state_ident(part) {
        Some(s) => s,
        None => {
            diag.error(part.span(), "the partition type must be a plain struct name");
            return quote!(#item);
        }
    };
    let private = &options.private;
    let has = |name: &str| find(name).is_some();
    let list_parts = if has("list_parts") {
        quote!(#part::list_parts(self))
    } else {
        quote!(::std::vec![::std::string::String::from("singleton")])
    };
    let close = has("close").then(|| {
        quote! {
            fn close(&mut self) -> ::core::result::Result<(), #private::ConnectorError> {
                #part::close(self)
            }
        }
    });
    let build_part = quote! {
        fn build_part(
            &self,
            _step_id: &#private::StepId,
            for_part: &str,
            resume_state: ::core::option::Option<#state>,
        ) -> ::core::result::Result<#part, #private::ConnectorError> {
            let mut part = #part::open(self, for_part)?;
            if let ::core::option::Option::Some(state) = resume_state {
                part.resume(state);
            }
            ::core::result::Result::Ok(part)
        }
    };
    let span = item.self_ty.span();
    let traits = match kind {
        Kind::Source => {
            let next_awake = has("next_awake").then(|| {
                quote! {
                    fn next_awake(&self) -> ::core::option::Option<::std::time::SystemTime> {
                        #part::next_awake(self)
                    }
                }
            });
            quote_spanned! {span=>
                impl #private::FixedPartitionedSource for #connector {
                    type Item = #item_ty;
                    type State = #state;
                    type Partition = #part;
                    fn list_parts(&self) -> ::std::vec::Vec<::std::string::String> {
                        #list_parts
                    }
                    #build_part
                }

                impl #private::StatefulSourcePartition for #part {
                    type Item = #item_ty;
                    type State = #state;
                    fn next_batch(
                        &mut self,
                        batch: &mut ::std::vec::Vec<#item_ty>,
                    ) -> ::core::result::Result<#private::BatchStatus, #private::ConnectorError> {
                        #part::next_batch(self, batch)
                    }
                    #next_awake
                    fn snapshot(&self) -> #state {
                        #part::snapshot(self)
                    }
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
                        #part::part_fn(self, key)
                    }
                }
            });
            quote_spanned! {span=>
                impl #private::FixedPartitionedSink for #connector {
                    type Key = #key_ty;
                    type Value = #item_ty;
                    type State = #state;
                    type Partition = #part;
                    fn list_parts(&self) -> ::std::vec::Vec<::std::string::String> {
                        #list_parts
                    }
                    #part_fn
                    #build_part
                }

                impl #private::StatefulSinkPartition for #part {
                    type Value = #item_ty;
                    type State = #state;
                    fn write_batch(
                        &mut self,
                        batch: &mut ::std::vec::Vec<#item_ty>,
                    ) -> ::core::result::Result<(), #private::ConnectorError> {
                        #part::write_batch(self, batch)
                    }
                    fn snapshot(&self) -> #state {
                        #part::snapshot(self)
                    }
                    #close
                }
            }
        }
    };
    quote! {
        #item
        #traits
    }
}

/// `impl SimplePoller for Part`: the item type is the `T` of `Result<Polled<T>, _>`.
fn poller(
    item: &ItemImpl,
    next_item: Option<&ImplItemFn>,
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
            "`next_item` returns `Result<Polled<Item>, ConnectorError>`",
        );
        return quote!(#item);
    };
    let part = &item.self_ty;
    let Some(state) = state_ident(part) else {
        diag.error(part.span(), "the partition type must be a plain struct name");
        return quote!(#item);
    };
    let private = &options.private;
    let span = part.span();
    quote_spanned! {span=>
        #item

        impl #private::SimplePoller for #part {
            type Item = #item_ty;
            type State = #state;
            fn next_item(
                &mut self,
            ) -> ::core::result::Result<#private::Polled<#item_ty>, #private::ConnectorError> {
                #part::next_item(self)
            }
            fn snapshot(&self) -> #state {
                #part::snapshot(self)
            }
            fn resume(&mut self, state: #state) {
                #part::resume(self, state)
            }
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
