//! `#[source]` and `#[sink]`: connector boilerplate from a partition struct and an impl.
//!
//! On the partition struct, the attribute strips the `#[state]` markers and generates a
//! serde resume-state struct `<Name>State` with those fields (one field is stored as its
//! bare value, so a hand-written connector whose state was that value keeps reading its
//! snapshots) and the `PartitionState` impl that snapshots and resumes them. A field
//! whose type is not serde gets one error, on its type. The state struct is not generic.
//! A `#[state]` field's docs are copied to it and its `#[serde(..)]` attributes move to it
//! (`#[serde(default)]` lets a new field read states stored before it existed).
//! On the partition's impl block, it checks the methods and generates the connector
//! traits:
//!
//! | attribute | methods (`?` = optional) | generated |
//! |---|---|---|
//! | `#[source]` | `list_parts(&S)?`, `open(&S, part, resume?)`, `next_batch(&mut self, &mut Vec<T>)`, `next_awake(&self)?`, `snapshot(&self)?`, `commit(&mut self, &PartState)?`, `close(&mut self)?` | `FixedPartitionedSource for S`, `StatefulSourcePartition for Part` |
//! | `#[source]` (polling) | `next_item(&mut self) -> Result<Polled<T>, E>`, `snapshot(&self)?` | `SimplePoller for Part`, for `SimplePollingSource::new(\|\| part, interval)` (one partition) |
//! | `#[sink]` | `list_parts(&S)?`, `part_fn(&S, &K)?`, `delivery(&S)?`, `open(&S, part, resume?)`, `write_batch(&mut self, &mut Vec<V>)`, `pre_commit(&mut self, epoch)?`, `snapshot(&self)?`, `commit(&mut self, epoch)?`, `close(&mut self)?` | `FixedPartitionedSink for S`, `StatefulSinkPartition for Part` |
//!
//! `S`, the source or sink value given to `input`/`output`, is the type of the first
//! parameter of `open`. `open` may take the resume state as a third parameter,
//! `Option<<Name>State>` (to seek a file, say); without it the stored `#[state]` fields
//! are set on the opened partition. Methods may return any error type that converts into
//! `ConnectorError`. The impl block may be generic; `open` may have parameters of its own
//! (a sink's key type, which the partition does not mention), which become parameters of
//! the connector's impl. `snapshot` replaces the generated one (to flush before the state
//! is stored, say). A source's `commit` gets a position its `snapshot` returned once that
//! position is durable (to acknowledge what it covers to a broker); a sink's gets the epoch.
//! Without `list_parts` the connector has one partition, `"singleton"`.
//! A sink's key type is `part_fn`'s, or `key = Type` in the attribute (default `String`).
//! `crate = path` names the crate whose `__private` module the code uses: a re-export of
//! bwx, or `bwx_runtime` / `crate` inside bwx's own crates.

mod methods;
mod state;

use proc_macro2::TokenStream;
use quote::quote;
use syn::Item;

use crate::diag::Diagnostics;

/// Which attribute is being expanded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// `#[source]`.
    Source,
    /// `#[sink]`.
    Sink,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Source => "source",
            Kind::Sink => "sink",
        }
    }
}

/// Options of the attribute.
pub struct Options {
    /// The path of the facade's hidden module.
    pub private: TokenStream,
    /// The path of serde inside it, as a string for `#[serde(crate = "..")]`.
    pub serde: String,
    /// `key = Type` (sinks).
    pub key: Option<syn::Type>,
}

fn parse_options(attr: TokenStream, kind: Kind, diag: &mut Diagnostics) -> Options {
    let mut krate: Option<syn::Path> = None;
    let mut key = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            krate = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("key") && kind == Kind::Sink {
            key = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            let known = if kind == Kind::Sink {
                "`crate = path`, `key = Type`"
            } else {
                "`crate = path`"
            };
            Err(meta.error(format!(
                "unknown option of `#[{}]`; it takes {known}",
                kind.name()
            )))
        }
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, attr) {
        diag.push(e);
    }
    let path = match &krate {
        Some(p) => quote!(#p),
        None => quote!(::bwx),
    };
    Options {
        private: quote!(#path::__private),
        serde: format!("{}::__private::serde", path).replace(' ', ""),
        key,
    }
}

/// Expands `#[source]` (or `#[sink]`) on a struct or an impl block; errors come out as
/// `compile_error!`s beside the item, never as a panic.
pub fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut diag = Diagnostics::default();
    let options = parse_options(attr, kind, &mut diag);
    let parsed = match syn::parse2::<Item>(item.clone()) {
        Ok(item) => item,
        Err(e) => {
            diag.push(e);
            let errors = diag.to_compile_errors();
            return quote!(#errors #item);
        }
    };
    let out = match parsed {
        Item::Struct(s) => state::expand(s, &options, &mut diag),
        Item::Impl(i) => methods::expand(kind, i, &options, &mut diag),
        other => {
            diag.error(
                syn::spanned::Spanned::span(&other),
                format!(
                    "`#[{}]` goes on the partition struct and on its `impl` block",
                    kind.name()
                ),
            );
            quote!(#other)
        }
    };
    let errors = diag.to_compile_errors();
    quote!(#errors #out)
}
