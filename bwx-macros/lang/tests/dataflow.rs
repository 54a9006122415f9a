//! Snapshot tests of `dataflow!` expansions and graphs, and of its error messages.

use bwx_macros_lang::dataflow::analyze;
use quote::quote;

fn errors(input: proc_macro2::TokenStream) -> Vec<String> {
    analyze(input).diag.messages()
}

#[test]
fn wordcount_expands_to_one_builder_call_per_statement() {
    let a = analyze(quote! {
        wordcount {
            lines  = input(FileSource::new(path));
            words  = lines.flat_map(|l| tokenize(&l)).filter(|w| !w.is_empty());
            counts = words.count_final(|w| w.clone());
            out    = counts.output(StdOutSink::new());
        }
    });
    assert!(a.diag.is_empty(), "{:?}", a.diag.messages());
    insta::assert_snapshot!("wordcount_statements", a.statements().join("\n"));
    insta::assert_snapshot!("wordcount_graph", a.graph());
}

#[test]
fn ports_merge_join_and_subflows() {
    let a = analyze(quote! {
        crate = my::reexport, f {
            nums   = input(src);
            split  = nums.branch(|x| x % 2 == 0);
            evens  = split.trues.key_on(|x| x.to_string());
            odds   = split.falses.key_on(|x| x.to_string()).map(|x| x).map(|x| x);
            both   = merge(evens, odds);
            joined = join(evens, odds, emit = JoinEmitMode::Final);
            scored = score(both, 3);
            out    = joined.output(sink);
            _more  = scored.inspect(|x| println!("{x:?}"));
        }
    });
    assert!(a.diag.is_empty(), "{:?}", a.diag.messages());
    insta::assert_snapshot!("ports_statements", a.statements().join("\n"));
    insta::assert_snapshot!("ports_graph", a.graph());
}

#[test]
fn duplicate_ids_mark_both_places() {
    let e = errors(quote! { f { a = input(s); a = a.map(|x| x); o = a.output(k); } });
    assert_eq!(e, vec!["duplicate step id `f.a`", "`f.a` is first defined here"]);
}

#[test]
fn unknown_operator_suggests() {
    let e = errors(quote! { f { a = input(s); b = a.mpa(|x| x); o = b.output(k); } });
    assert_eq!(e, vec!["unknown operator `mpa`; did you mean `map`?"]);
    let e = errors(quote! { f { a = imput(s); o = a.output(k); } });
    assert_eq!(e, vec!["unknown operator `imput`; did you mean `input`?"]);
}

#[test]
fn stateful_mid_chain_is_rejected() {
    let e = errors(quote! { f { a = input(s); b = a.count_final(|x| *x).map(|x| x); o = b.output(k); } });
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("`count_final` is stateful, so it must end its statement"),
        "{e:?}"
    );
}

#[test]
fn references_ports_and_unused() {
    let e = errors(quote! {
        f {
            a = input(s);
            b = c.map(|x| x);
            c = a.branch(|x| true);
            d = c.treus.map(|x| x);
            e = a.map(|x| x);
            o = d.output(k);
        }
    });
    assert_eq!(
        e,
        vec![
            "`c` is defined later (statement 3); a stream must be defined before it is used",
            "unknown port `treus` of `c` (a `branch`); its ports are `trues`, `falses`; did you mean `trues`?",
            "stream `b` is never used: send it to an operator or an `output`, or name it `_b` to allow that",
            "stream `e` is never used: send it to an operator or an `output`, or name it `_e` to allow that",
        ]
    );
}

#[test]
fn missing_input_output_and_join_arity() {
    let e = errors(quote! { f { a = merge(); } });
    assert!(
        e.iter().any(|m| m.starts_with("`merge` needs a stream, found 0")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.starts_with("flow `f` has no `input`")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.starts_with("flow `f` has no `output`")),
        "{e:?}"
    );
    let e = errors(quote! { f { a = input(s); j = join(a); o = j.output(k); } });
    assert_eq!(
        e,
        vec!["`join` needs at least two streams, found 1: `join(a, b)`"]
    );
}

#[test]
fn malformed_statements_are_all_reported() {
    let e = errors(quote! { f { a = input(s) b = a.map(|x| x); c a.map(|x| x); o = b.output(k); } });
    assert_eq!(
        e,
        vec![
            "expected `;` after this statement",
            "expected `=` after `c`: a statement is `c = stream.operator(...);`",
        ]
    );
    let e = errors(quote! { f });
    assert_eq!(e.len(), 1);
}

#[test]
fn errors_expand_to_a_placeholder_flow() {
    let a = analyze(quote! { f { a = input(s); } });
    let text = a.expand().to_string();
    assert!(text.contains("compile_error"), "{text}");
    assert!(text.contains("Dataflow :: new (\"f\")"), "{text}");
}
