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
                fn resume(&mut self, s: PState) {}
            }
        },
    )
    .to_string();
    for needle in [
        "unknown option of `#[source]`",
        "unknown method `opn` for `#[source]`; did you mean `open`?",
        "`resume` is generated from the `#[state]` fields",
        "impl is missing `fn open",
        "impl is missing `fn next_batch",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in {out}");
    }
    // The user's impl is kept, so its methods still type-check and nothing cascades.
    assert!(out.contains("impl P"), "{out}");
}

#[test]
fn open_may_take_the_resume_state() {
    let imp = expand(
        Kind::Source,
        quote!(),
        quote! {
            impl FilePart {
                fn open(source: &Files, part: &str, resume: Option<FilePartState>) -> Result<Self, FileError> { todo() }
                fn next_batch(&mut self, batch: &mut Vec<String>) -> Result<BatchStatus, FileError> { todo() }
            }
        },
    )
    .to_string();
    // The state goes to `open`; nothing is set after it.
    // Through a function pointer of the expected type.
    assert!(
        imp.contains("let open : fn (& Files , & str , :: core :: option :: Option < __BwxFilePartState >) -> _ = < FilePart > :: open ; open (self , for_part , resume_state)"),
        "{imp}"
    );
    assert!(!imp.contains("resume_state (& mut part"), "{imp}");
    // Errors of any type convert into `ConnectorError`.
    assert!(
        imp.contains("map_err (:: bwx :: __private :: connector_error)"),
        "{imp}"
    );

    let without = expand(
        Kind::Source,
        quote!(),
        quote! {
            impl FilePart {
                fn open(source: &Files, part: &str) -> Result<Self, FileError> { todo() }
                fn next_batch(&mut self, batch: &mut Vec<String>) -> Result<BatchStatus, FileError> { todo() }
            }
        },
    )
    .to_string();
    assert!(
        without
            .contains("let open : fn (& Files , & str) -> _ = < FilePart > :: open ; open (self , for_part)"),
        "{without}"
    );
    assert!(
        without.contains("PartitionState > :: resume_state (& mut part , state)"),
        "{without}"
    );
}

#[test]
fn generic_partitions_and_open_parameters_become_impl_parameters() {
    let imp = expand(
        Kind::Sink,
        quote!(key = K),
        quote! {
            impl<V: Display + 'static> LinesPart<V> where V: Clone {
                fn open<K: Key>(sink: &Lines<K, V>, part: &str, resume: Option<LinesPartState>) -> Result<Self, E> { todo() }
                fn write_batch(&mut self, batch: &mut Vec<V>) -> Result<(), E> { Ok(()) }
                fn snapshot(&self) -> LinesPartState { self.sync(); todo() }
            }
        },
    )
    .to_string();
    // The state type through one alias, so a struct without the attribute is one error.
    assert!(
        imp.contains("type __BwxLinesPartState = LinesPartState ;"),
        "{imp}"
    );
    let state = "__BwxLinesPartState";
    let connector = format!(
        "impl < V : Display + 'static , K : Key > :: bwx :: __private :: FixedPartitionedSink for Lines < K , V > where V : Clone , for < '__bwx > {state} : :: bwx :: __private :: StateField"
    );
    assert!(imp.contains(&connector), "{imp}");
    let part = format!(
        "impl < V : Display + 'static > :: bwx :: __private :: StatefulSinkPartition for LinesPart < V > where V : Clone , for < '__bwx > {state} : :: bwx :: __private :: StateField"
    );
    assert!(imp.contains(&part), "{imp}");
    assert!(imp.contains("type Key = K"), "{imp}");
    // The user's `snapshot` replaces the generated one.
    assert!(
        imp.contains(&format!(
            "fn snapshot (& self) -> {state} {{ < LinesPart < V > > :: snapshot (self) }}"
        )),
        "{imp}"
    );
}

#[test]
fn state_fields_are_checked_one_by_one_and_one_field_is_transparent() {
    let one = expand(
        Kind::Source,
        quote!(crate = crate),
        quote! { struct P<T> { #[state] next: usize, items: Vec<T> } },
    )
    .to_string();
    assert!(one.contains("serde (transparent)"), "{one}");
    assert!(one.contains("crate = \"crate::__private::serde\""), "{one}");
    assert!(one.contains("require_state_field :: < usize , _ >"), "{one}");
    assert!(
        one.contains("impl < T > crate :: __private :: PartitionState for P < T >"),
        "{one}"
    );

    let two = expand(
        Kind::Source,
        quote!(),
        quote! { struct P { #[state] a: u64, #[state] b: String } },
    )
    .to_string();
    assert!(!two.contains("transparent"), "{two}");
    assert_eq!(two.matches("require_state_field").count(), 2, "{two}");
}

#[test]
fn a_generic_state_field_and_extra_open_parameters_are_errors() {
    let out = expand(
        Kind::Source,
        quote!(),
        quote! { struct P<T> { #[state] pending: Vec<T> } },
    )
    .to_string();
    assert!(
        out.contains("`#[state]` field `pending` uses the partition's parameter `T`"),
        "{out}"
    );
    let out = expand(
        Kind::Source,
        quote!(),
        quote! {
            impl P {
                fn open(source: &S, part: &str, resume: Option<PState>, extra: u32) -> Result<Self, E> { x() }
                fn next_batch(&mut self, batch: &mut Vec<u8>) -> Result<BatchStatus, E> { x() }
            }
        },
    )
    .to_string();
    assert!(
        out.contains("`open` takes the connector, the partition name and optionally the resume state"),
        "{out}"
    );
}

#[test]
fn docs_and_serde_attributes_of_state_fields_go_to_the_state_struct() {
    let out = expand(
        Kind::Source,
        quote!(),
        quote! {
            struct P {
                /// Next byte.
                #[state]
                offset: u64,
                #[state]
                #[serde(default)]
                line: u64,
                reader: R,
            }
        },
    )
    .to_string();
    let (partition, rest) = out.split_once("const _").unwrap();
    // The partition keeps its docs and loses `#[state]` and `#[serde]`.
    assert!(partition.contains("Next byte."), "{partition}");
    assert!(
        !partition.contains("serde") && !partition.contains("state"),
        "{partition}"
    );
    let state = &rest[rest.find("struct PState").unwrap()..];
    assert!(
        state.contains("# [doc = r\" Next byte.\"] # [allow (missing_docs)] pub offset : u64"),
        "{state}"
    );
    assert!(
        state.contains("# [serde (default)] # [allow (missing_docs)] pub line : u64"),
        "{state}"
    );
}

#[test]
fn a_source_commit_is_forwarded_with_the_durable_position() {
    let imp = expand(
        Kind::Source,
        quote!(),
        quote! {
            impl TopicPart {
                fn open(source: &Topic, part: &str) -> Result<Self, MqttError> { todo() }
                fn next_batch(&mut self, batch: &mut Vec<Message>) -> Result<BatchStatus, MqttError> { todo() }
                fn commit(&mut self, durable: &TopicPartState) -> Result<(), MqttError> { self.ack(durable.received) }
            }
        },
    )
    .to_string();
    // Through a function pointer of the expected type, the error converted into
    // `ConnectorError`.
    assert!(
        imp.contains("fn commit (& mut self , durable : & __BwxTopicPartState) -> :: core :: result :: Result < () , :: bwx :: __private :: ConnectorError > { let commit : fn (& mut TopicPart , & __BwxTopicPartState) -> _ = < TopicPart > :: commit ; commit (self , durable) . map_err (:: bwx :: __private :: connector_error) }"),
        "{imp}"
    );
    // Inside the source partition's trait impl.
    let partition = &imp[imp.find("StatefulSourcePartition for TopicPart").unwrap()..];
    assert!(partition.contains("fn commit"), "{partition}");

    // Without a `commit`, the trait's default (nothing to acknowledge) stays.
    let without = expand(
        Kind::Source,
        quote!(),
        quote! {
            impl TopicPart {
                fn open(source: &Topic, part: &str) -> Result<Self, MqttError> { todo() }
                fn next_batch(&mut self, batch: &mut Vec<Message>) -> Result<BatchStatus, MqttError> { todo() }
            }
        },
    )
    .to_string();
    assert!(!without.contains("fn commit"), "{without}");
}

#[test]
fn a_source_commit_of_another_shape_is_one_error_naming_the_expected_signature() {
    let expected = "`fn commit(&mut self, durable: &PState) -> Result<(), E>`";
    for (commit, message) in [
        (
            quote!(
                fn commit(&mut self, epoch: u64) -> Result<(), E> {
                    x()
                }
            ),
            "`commit` of `#[source]` gets the durable position, a shared reference to the resume state",
        ),
        (
            quote!(
                fn commit(&self, durable: &PState) -> Result<(), E> {
                    x()
                }
            ),
            "`commit` of `#[source]` takes `&mut self` first",
        ),
        (
            quote!(
                fn commit(durable: &PState) -> Result<(), E> {
                    x()
                }
            ),
            "`commit` of `#[source]` takes `&mut self` first",
        ),
        (
            quote!(
                fn commit(&mut self) -> Result<(), E> {
                    x()
                }
            ),
            "`commit` of `#[source]` needs the durable position",
        ),
        (
            quote!(
                fn commit(&mut self, durable: &PState, epoch: u64) -> Result<(), E> {
                    x()
                }
            ),
            "`commit` of `#[source]` takes `&mut self` and the durable position only",
        ),
        (
            quote!(
                fn commit(&mut self, durable: &mut PState) -> Result<(), E> {
                    x()
                }
            ),
            "`commit` of `#[source]` gets the durable position, a shared reference",
        ),
        (
            quote!(
                fn commit(&mut self, durable: &PState) {
                    x()
                }
            ),
            "`commit` of `#[source]` returns a `Result`",
        ),
    ] {
        let out = expand(
            Kind::Source,
            quote!(),
            quote! {
                impl P {
                    fn open(source: &S, part: &str) -> Result<Self, E> { x() }
                    fn next_batch(&mut self, batch: &mut Vec<u8>) -> Result<BatchStatus, E> { x() }
                    #commit
                }
            },
        )
        .to_string();
        assert_eq!(out.matches("compile_error").count(), 1, "{commit}: {out}");
        assert!(out.contains(message), "{commit}: missing {message:?} in {out}");
        assert!(out.contains(expected), "{commit}: {out}");
        // The user's impl is kept and no trait impl is generated, so nothing cascades.
        assert!(out.contains("impl P"), "{out}");
        assert!(!out.contains("StatefulSourcePartition"), "{out}");
    }
}

#[test]
fn a_sink_commit_still_takes_the_epoch() {
    let imp = expand(
        Kind::Sink,
        quote!(),
        quote! {
            impl OutPart {
                fn open(sink: &Out, part: &str) -> Result<Self, E> { todo() }
                fn write_batch(&mut self, batch: &mut Vec<String>) -> Result<(), E> { Ok(()) }
                fn commit(&mut self, epoch: u64) -> Result<(), E> { Ok(()) }
            }
        },
    )
    .to_string();
    assert!(imp.contains("fn commit (& mut self , epoch : u64)"), "{imp}");
    assert!(!imp.contains("compile_error"), "{imp}");
}
