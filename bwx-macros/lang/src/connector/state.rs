//! The partition struct: `#[state]` fields become a serde resume-state struct.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Fields, ItemStruct};

use super::Options;
use crate::diag::Diagnostics;

/// Strips `#[state]` from the fields and generates `<Name>State`, `snapshot()` and
/// `resume()`.
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
                    state_fields.push((ident.clone(), field.ty.clone()));
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
    let name = &item.ident;
    let state = format_ident!("{}State", name);
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let private = &options.private;
    let serde_path = &options.serde;
    let vis = &item.vis;
    let fields = state_fields.iter().map(|(ident, ty)| {
        // The field's own span, so a type that is not serde is reported on the field.
        quote_spanned!(ty.span()=> pub #ident: #ty)
    });
    let idents: Vec<_> = state_fields.iter().map(|(ident, _)| ident).collect();
    let checks = state_fields
        .iter()
        .map(|(_, ty)| quote_spanned!(ty.span()=> const _: () = #private::assert_state_field::<#ty>();));
    // serde's own errors land on the derive's tokens: put them on the first state field.
    let derive_span = state_fields.first().map_or(name.span(), |(_, ty)| ty.span());
    let derive = quote_spanned! {derive_span=>
        #[derive(Clone, Debug, #private::serde::Serialize, #private::serde::Deserialize)]
    };
    let doc = format!("The resume state of [`{name}`]: its `#[state]` fields, stored with recovery.");
    quote! {
        #item

        #(#checks)*

        #[doc = #doc]
        #derive
        #[serde(crate = #serde_path)]
        #vis struct #state {
            #(#[allow(missing_docs)] #fields,)*
        }

        impl #impl_generics #name #ty_generics #where_clause {
            /// The `#[state]` fields, to store with recovery.
            pub fn snapshot(&self) -> #state {
                #state { #(#idents: ::core::clone::Clone::clone(&self.#idents),)* }
            }

            /// Continues from a stored state.
            pub fn resume(&mut self, state: #state) {
                let _ = &state;
                #(self.#idents = state.#idents;)*
            }
        }
    }
}
