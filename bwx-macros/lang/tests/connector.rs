//! Snapshot and error tests of `#[source]` / `#[sink]` expansions.

use bwx_macros_lang::connector::{Kind, expand};
use quote::quote;

#[test]
fn source_struct_and_impl_expand() {
    let strukt = expand(
        Kind::Source,
        quote!(),
        quote! {
            pub struct FilePart { #[state] offset: u64, reader: Reader }
        },
    );
    insta::assert_snapshot!("source_struct", strukt.to_string());
    let imp = expand(
        Kind::Source,
        quote!(crate = my::bwx),
        quote! {
            impl FilePart {
                fn list_parts(source: &Files) -> Vec<String> { source.names() }
                fn open(source: &Files, part: &str) -> Result<Self, ConnectorError> { todo() }
                fn next_batch(&mut self, batch: &mut Vec<String>) -> Result<BatchStatus, ConnectorError> { todo() }
                fn next_awake(&self) -> Option<SystemTime> { None }
            }
        },
    );
    insta::assert_snapshot!("source_impl", imp.to_string());
}

#[test]
fn sink_impl_takes_its_key_from_part_fn() {
    let imp = expand(
        Kind::Sink,
        quote!(),
        quote! {
            impl OutPart {
                fn part_fn(sink: &Out, key: &u64) -> u64 { *key }
                fn open(sink: &Out, part: &str) -> Result<Self, ConnectorError> { todo() }
                fn write_batch(&mut self, batch: &mut Vec<String>) -> Result<(), ConnectorError> { Ok(()) }
                fn close(&mut self) -> Result<(), ConnectorError> { Ok(()) }
            }
        },
    )
    .to_string();
    assert!(imp.contains("type Key = u64"), "{imp}");
    assert!(imp.contains("type Value = String"), "{imp}");
    assert!(imp.contains("fn part_fn"), "{imp}");
}

#[test]
fn bad_impls_report_every_problem() {
    let out = expand(
        Kind::Source,
        quote!(color = red),
        quote! {
            impl P {
                fn opn(source: &S, part: &str) -> Result<Self, E> { x() }
                fn snapshot(&self) -> u32 { 0 }
            }
        },
    )
    .to_string();
    for needle in [
        "unknown option of `#[source]`",
        "unknown method `opn` for `#[source]`; did you mean `open`?",
        "`snapshot` is generated from the `#[state]` fields",
        "impl is missing `fn open",
        "impl is missing `fn next_batch",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in {out}");
    }
    // The user's impl is kept, so its methods still type-check and nothing cascades.
    assert!(out.contains("impl P"), "{out}");
}
