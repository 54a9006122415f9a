//! Snapshot tests of `dataflow!` expansions and graphs, and of its error messages.

use bwx_macros_lang::dataflow::analyze;
use bwx_macros_lang::dataflow::ops::{ALL, Args, Form, lookup};
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
    assert_eq!(
        e,
        vec![
            "duplicate step id `f.a`: statement 1 already makes a step with it; give each step its own name"
        ]
    );
}

#[test]
fn unknown_operator_suggests() {
    let e = errors(quote! { f { a = input(s); b = a.mpa(|x| x); o = b.output(k); } });
    assert_eq!(e, vec!["unknown operator `mpa`; did you mean `map`?"]);
    let e = errors(quote! { f { a = imput(s); o = a.output(k); } });
    assert_eq!(e, vec!["unknown operator `imput`; did you mean `input`?"]);
}

#[test]
fn bytewax_names_suggest_what_they_are_called_here() {
    let e = errors(quote! { f { a = input(s); b = a.reduce(|x, y| x + y); o = b.output(k); } });
    assert_eq!(e, vec!["unknown operator `reduce`; did you mean `reduce_final`?"]);
    let e = errors(quote! { f { a = input(s); o = a.capture(k); } });
    assert_eq!(e, vec!["unknown operator `capture`; did you mean `output`?"]);
}

#[test]
fn let_is_one_error_on_let() {
    let e = errors(quote! { f { let a = input(s); o = a.output(k); } });
    assert_eq!(
        e,
        vec!["no `let` in `dataflow!`: a statement is `name = stream.operator(...);`"]
    );
}

#[test]
fn a_misspelt_stream_is_one_error() {
    let e = errors(quote! { f { nums = input(s); d = numz.map(|x| x); o = d.output(k); } });
    assert_eq!(e, vec!["no stream named `numz`; did you mean `nums`?"]);
    // With no close name, which stream was meant is unknown: none is reported unused.
    let e = errors(quote! { f { nums = input(s); d = zzzzzz.map(|x| x); o = d.output(k); } });
    assert_eq!(e, vec!["no stream named `zzzzzz`"]);
}

#[test]
fn an_underscore_binding_may_name_a_port_without_an_operator() {
    let a = analyze(quote! {
        f { a = input(s); w = a.fold_window(c, d, i, f, m, o); out = w.down.output(k); _meta = w.meta; _late = w.late; }
    });
    assert!(a.diag.is_empty(), "{:?}", a.diag.messages());
    assert_eq!(
        a.statements()[3],
        "let _meta = :: core :: clone :: Clone :: clone (& w . meta) ;"
    );
}

#[test]
fn an_unknown_method_far_from_any_built_in_calls_the_users_operator() {
    let a = analyze(quote! {
        f { a = input(s); m = a.mean(3).map(|x| x); n = mean(a, 4); o = m.output(k); p = n.output(k); }
    });
    assert!(a.diag.is_empty(), "{:?}", a.diag.messages());
    let stmts = a.statements();
    assert_eq!(
        stmts[1],
        "let m = { let __bwx_step0 = mean (& __bwx_flow , \"m_mean\" , & a , 3) ; :: bwx :: __private :: Stream :: map (& __bwx_step0 , \"m\" , | x | x) } ;"
    );
    assert_eq!(stmts[2], "let n = mean (& __bwx_flow , \"n\" , & a , 4) ;");
}

#[test]
fn a_join_takes_up_to_six_streams() {
    let e = errors(quote! { f { a = input(s); j = join(a, a, a, a, a, a, a); o = j.output(k); } });
    assert_eq!(
        e,
        vec!["`join` takes at most 6 streams, found 7; join the rest in a second step"]
    );
}

#[test]
fn an_inspected_stream_is_an_output_and_may_go_unused() {
    let e = errors(quote! { f { a = input(s); seen = a.inspect(|s, x| ()); } });
    assert!(e.is_empty(), "{e:?}");
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
    // The flow lacks what `merge()` lacks: one error, on `merge`.
    let e = errors(quote! { f { a = merge(); o = a.output(k); } });
    assert_eq!(e, vec!["`merge` needs a stream, found 0: `merge(a, b)`"]);
    let e = errors(quote! { f { } });
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("flow `f` has no `input` and no `output`"),
        "{e:?}"
    );
    let e = errors(quote! { f { a = input(s); _b = a.map(|x| x); } });
    assert_eq!(
        e,
        vec!["flow `f` has no `output`: add a sink, e.g. `out = stream.output(sink);`"]
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

/// A public builder operator: a `pub fn` of `impl Stream<..>` or `impl Dataflow` whose
/// second parameter is the step id `step: &str`, and its parameters after the step id.
struct BuilderOp {
    name: String,
    form: Form,
    args_after_step: usize,
}

/// Every builder operator in the runtime's sources.
fn builder_operators() -> Vec<BuilderOp> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bwx-runtime/src");
    let mut files = vec![root];
    let mut ops = Vec::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let file = syn::parse_file(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for item in file.items {
            let syn::Item::Impl(block) = item else { continue };
            let syn::Type::Path(ty) = &*block.self_ty else {
                continue;
            };
            let form = match ty.path.segments.last().map(|s| s.ident.to_string()).as_deref() {
                Some("Stream") => Form::Method,
                Some("Dataflow") => Form::Free,
                _ => continue,
            };
            for item in block.items {
                let syn::ImplItem::Fn(f) = item else { continue };
                if !matches!(f.vis, syn::Visibility::Public(_)) {
                    continue;
                }
                let step = f.sig.inputs.iter().nth(1).map(|a| quote::quote!(#a).to_string());
                if step.as_deref() == Some("step : & str") {
                    ops.push(BuilderOp {
                        name: f.sig.ident.to_string(),
                        form,
                        args_after_step: f.sig.inputs.len() - 2,
                    });
                }
            }
        }
    }
    ops.sort_by(|a, b| a.name.cmp(&b.name));
    ops
}

#[test]
fn every_builder_operator_is_in_the_table_with_its_arguments_and_compiles_in_a_flow() {
    let ops = builder_operators();
    assert!(ops.len() >= 40, "found only {} builder operators", ops.len());
    // The UI pass cases that compile and run a flow with every operator of the table.
    let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui-tests/tests/ui/pass");
    let uses: String = ["every_operator.rs", "every_window_operator.rs"]
        .iter()
        .map(|f| std::fs::read_to_string(ui.join(f)).unwrap())
        .collect();
    let mut missing = Vec::new();
    // `Dataflow::operator(step, inputs, body)` is the builder form of composite operators;
    // in `dataflow!` they are `#[bwx::operator]` functions, called like built-ins.
    for op in ops.iter().filter(|op| op.name != "operator") {
        let Some(def) = lookup(&op.name, op.form) else {
            missing.push(format!(
                "`{}` ({:?}) is not in the macro's table",
                op.name, op.form
            ));
            continue;
        };
        let written = match def.args {
            Args::Exact(n) => n,
            // The sides, then one parameter per setting.
            Args::Streams { settings, .. } => settings.len() + 1,
        };
        if written != op.args_after_step {
            missing.push(format!(
                "`{}` takes {} arguments after the step id in the builder, {written} in the table",
                op.name, op.args_after_step
            ));
        }
        let call = match op.form {
            Form::Method => format!(".{}(", op.name),
            Form::Free => format!("{}(", op.name),
        };
        if !uses.contains(&call) {
            missing.push(format!(
                "`{}` is not used in ui-tests/tests/ui/pass/every_*.rs",
                op.name
            ));
        }
    }
    for def in ALL {
        if !ops.iter().any(|op| op.name == def.name && op.form == def.form) {
            missing.push(format!(
                "`{}` is in the table but not a builder operator",
                def.name
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
