//! The partition struct: `#[state]` fields become a serde resume-state struct.

use proc_macro2::{TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Fields, GenericParam, ItemStruct, Type};

use super::Options;
use crate::diag::Diagnostics;

/// Strips `#[state]` from the fields and generates `<Name>State` and the
/// `PartitionState` impl that snapshots and resumes those fields.
pub fn expand(mut item: ItemStruct, options: &Options, diag: &mut Diagnostics) -> TokenStream {
    let mut state_fields = Vec::new();
    match &mut item.fields {
        Fields::Named(fields) => {
            for field in &mut fields.named {
                let before = field.attrs.len();
                field.attrs.retain(|a| !a.path().is_ident("state"));
                if field.attrs.len() != before
                    && let Some(ident) = &field.ident
                {
                    // Docs are copied to the state struct's field; `#[serde(..)]` (such as
                    // `default`, to read states stored before the field existed) moves there.
                    let docs = field.attrs.iter().filter(|a| a.path().is_ident("doc"));
                    let serde = field.attrs.iter().filter(|a| a.path().is_ident("serde"));
                    let carried = quote!(#(#docs)* #(#serde)*);
                    field.attrs.retain(|a| !a.path().is_ident("serde"));
                    state_fields.push((ident.clone(), field.ty.clone(), carried));
                }
            }
        }
        other => {
            for field in other.iter_mut() {
                field.attrs.retain(|a| !a.path().is_ident("state"));
            }
            diag.error(
                item.ident.span(),
                "a partition struct needs named fields, so its `#[state]` fields can be named",
            );
        }
    }
    // The state struct is not generic: a state field may not use the partition's type or
    // lifetime parameters (the connector traits store one state type per source).
    let params: Vec<String> = item
        .generics
        .params
        .iter()
        .map(|p| match p {
            GenericParam::Type(t) => t.ident.to_string(),
            GenericParam::Lifetime(l) => l.lifetime.to_string(),
            GenericParam::Const(c) => c.ident.to_string(),
        })
        .collect();
    let mut generic_state = false;
    for (ident, ty, _) in &state_fields {
        if let Some(param) = uses_param(ty, &params) {
            generic_state = true;
            diag.error(
                ty.span(),
                format!(
                    "`#[state]` field `{ident}` uses the partition's parameter `{param}`; the resume state cannot be generic, so store a concrete type"
                ),
            );
        }
    }
    if generic_state {
        return quote!(#item);
    }
    let name = &item.ident;
    let state = format_ident!("{}State", name);
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let private = &options.private;
    let vis = &item.vis;
    let idents: Vec<_> = state_fields.iter().map(|(ident, _, _)| ident).collect();
    let types: Vec<_> = state_fields.iter().map(|(_, ty, _)| ty).collect();
    let carried: Vec<_> = state_fields.iter().map(|(_, _, attrs)| attrs).collect();
    // One specific error per field whose type is not a state type, on the field's type.
    let checks = types.iter().map(|ty| {
        quote_spanned! {ty.span()=>
            const _: fn() = || {
                #[allow(unused_imports)]
                use #private::{ProbeOther as _, ProbeStateField as _};
                #private::require_state_field::<#ty, _>((&#private::StateProbe::<#ty>::new()).verdict());
            };
        }
    });
    // Every impl of the state struct holds only when its fields are state types. The
    // bound is higher-ranked so the compiler does not check it where it is written: when a
    // field is not serde, its check above is the only error, instead of a cascade from
    // serde's generated code and from the connector traits.
    let bound = quote!(#(for<'__bwx> #types: #private::StateField,)*);
    let bound_str = bound.to_string();
    let serde_path = &options.serde;
    // One field is stored as the field itself, so a connector whose hand-written state was
    // a plain value keeps reading the snapshots it stored before.
    let transparent = (state_fields.len() == 1).then(|| quote!(#[serde(transparent)]));
    let doc = format!(
        "The resume state of [`{name}`]: its `#[state]` fields, stored with recovery{}.",
        if state_fields.len() == 1 {
            " (as the one field's value)"
        } else {
            ""
        }
    );
    quote! {
        #item

        #(#checks)*

        #[doc = #doc]
        #[derive(#private::serde::Serialize, #private::serde::Deserialize)]
        #[serde(crate = #serde_path, bound = #bound_str)]
        #transparent
        #vis struct #state {
            #(#carried #[allow(missing_docs)] pub #idents: #types,)*
        }

        impl ::core::clone::Clone for #state where #bound {
            fn clone(&self) -> Self {
                #state { #(#idents: ::core::clone::Clone::clone(&self.#idents),)* }
            }
        }

        impl ::core::fmt::Debug for #state where #(for<'__bwx> #types: ::core::fmt::Debug,)* {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#state))
                    #(.field(::core::stringify!(#idents), &self.#idents))*
                    .finish()
            }
        }

        impl #impl_generics #private::PartitionState for #name #ty_generics #where_clause {
            type State = #state;

            fn snapshot_state(&self) -> #state {
                #state { #(#idents: ::core::clone::Clone::clone(&self.#idents),)* }
            }

            fn resume_state(&mut self, state: #state) {
                let _ = &state;
                #(self.#idents = state.#idents;)*
            }
        }
    }
}

/// The first of `params` named anywhere in `ty` (a type parameter, lifetime or const).
fn uses_param(ty: &Type, params: &[String]) -> Option<String> {
    fn walk(tokens: TokenStream, params: &[String], prev_quote: &mut bool) -> Option<String> {
        for tt in tokens {
            match tt {
                TokenTree::Group(g) => {
                    if let Some(p) = walk(g.stream(), params, prev_quote) {
                        return Some(p);
                    }
                }
                TokenTree::Ident(i) => {
                    let name = if *prev_quote {
                        format!("'{i}")
                    } else {
                        i.to_string()
                    };
                    *prev_quote = false;
                    if params.contains(&name) {
                        return Some(name);
                    }
                }
                TokenTree::Punct(p) => *prev_quote = p.as_char() == '\'',
                TokenTree::Literal(_) => *prev_quote = false,
            }
        }
        None
    }
    walk(quote!(#ty), params, &mut false)
}
