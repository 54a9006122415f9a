//! The windowing operators of `dataflow!`: methods with the ports `down`, `late`, `meta`,
//! and `join_window` as a free call with `clock` and `windower` settings.

use bwx_macros_lang::dataflow::analyze;
use quote::quote;

fn errors(input: proc_macro2::TokenStream) -> Vec<String> {
    analyze(input).diag.messages()
}

#[test]
fn every_window_method_is_one_stateful_builder_call_with_ports() {
    let a = analyze(quote! {
        f {
            inp   = input(src);
            keyed = inp.key_on(|x| x.0);
            w1 = keyed.window(clock, windower, |resume| Logic(resume), true);
            w2 = keyed.fold_window(clock, windower, || 0, |a, x| a + x, |a, b| a + b, false);
            w3 = keyed.reduce_window(clock, windower, |a, b| a + b);
            w4 = inp.count_window(clock, windower, |x| x.0);
            w5 = keyed.collect_window(clock, windower, true);
            w6 = keyed.max_window(clock, windower, |v| *v);
            w7 = keyed.min_window(clock, windower, |v| *v);
            all = merge(w1.down, w2.late, w3.meta, w4.down, w5.down, w6.down, w7.down);
            out = all.output(sink);
        }
    });
    assert!(a.diag.is_empty(), "{:?}", a.diag.messages());
    let statements = a.statements();
    assert_eq!(
        statements[2],
        "let w1 = :: bwx :: __private :: Stream :: window (& :: bwx :: __private :: keyed_exchanged (& keyed) , \"w1\" , clock , windower , | resume | Logic (resume) , true) ;"
    );
    assert_eq!(
        statements[5],
        "let w4 = :: bwx :: __private :: Stream :: count_window (& inp , \"w4\" , clock , windower , | x | x . 0) ;"
    );
    assert!(
        statements[9].contains("[& w1 . down , & w2 . late , & w3 . meta , & w4 . down"),
        "{}",
        statements[9]
    );
    let graph = a.graph();
    assert!(
        graph.contains("f.w2 = fold_window(keyed) [stateful, keyed]"),
        "{graph}"
    );
    assert!(graph.contains("f.w4 = count_window(inp) [stateful]\n"), "{graph}");
    assert!(
        graph.contains("f.all = merge(w1.down, w2.late, w3.meta"),
        "{graph}"
    );
}

#[test]
fn join_window_passes_clock_and_windower_before_the_sides_and_defaults_the_rest() {
    let a = analyze(quote! {
        f {
            a    = input(s1);
            b    = input(s2);
            paid = join_window(a, b, windower = w, clock = c);
            emit = join_window(a, b, clock = c, windower = w, emit = JoinEmitMode::Running, ordered = false);
            o1   = paid.down.output(k1);
            o2   = emit.late.output(k2);
        }
    });
    assert!(a.diag.is_empty(), "{:?}", a.diag.messages());
    let statements = a.statements();
    assert_eq!(
        statements[2],
        "let paid = :: bwx :: __private :: Dataflow :: join_window (& __bwx_flow , \"paid\" , c , w , (& a , & b ,) , :: bwx :: __private :: JoinInsertMode :: Last , :: bwx :: __private :: JoinEmitMode :: Final , true) ;"
    );
    assert_eq!(
        statements[3],
        "let emit = :: bwx :: __private :: Dataflow :: join_window (& __bwx_flow , \"emit\" , c , w , (& a , & b ,) , :: bwx :: __private :: JoinInsertMode :: Last , JoinEmitMode :: Running , false) ;"
    );
    assert!(a.graph().contains("f.paid = join_window(a, b) [stateful, keyed]"));
}

#[test]
fn join_window_without_clock_or_windower_names_what_is_missing() {
    let e = errors(quote! { f { a = input(s); b = input(t); j = join_window(a, b); o = j.down.output(k); } });
    assert_eq!(
        e,
        vec![
            "`join_window` needs the settings `clock`, `windower`: `j = join_window(a, b, clock = ..., windower = ...)`"
        ]
    );
    let e = errors(
        quote! { f { a = input(s); b = input(t); j = join_window(a, b, clock = c); o = j.down.output(k); } },
    );
    assert_eq!(
        e,
        vec![
            "`join_window` needs the setting `windower`: `j = join_window(a, b, clock = ..., windower = ...)`"
        ]
    );
    let e = errors(
        quote! { f { a = input(s); j = join_window(a, clock = c, windower = w, mode = m); o = j.down.output(k); } },
    );
    assert_eq!(
        e,
        vec![
            "`join_window` has no setting `mode`; its settings are `clock`, `windower`, `insert`, `emit`, `ordered`",
            "`join_window` needs at least two streams, found 1: `join_window(a, b)`",
        ]
    );
}

#[test]
fn window_ports_are_checked_and_windows_end_their_statement() {
    let e = errors(quote! {
        f {
            a = input(s);
            w = a.fold_window(c, d, || 0, |s, x| s + x, |a, b| a + b, true);
            x = w.dwn.map(|x| x);
            y = w.map(|x| x);
            z = a.collect_window(c, d, true).down;
            o = x.output(k);
            p = y.output(k);
        }
    });
    assert_eq!(
        e,
        vec![
            // Syntax errors come first, then the checks of the statements that parsed.
            "`.down` is not a call: ports are reached from a binding, so end this statement after the operator that has ports and continue from `z.down` in a new one",
            "unknown port `dwn` of `w` (a `fold_window`); its ports are `down`, `late`, `meta`; did you mean `down`?",
            "`w` is a `fold_window` with ports `down`, `late`, `meta`: use one of them, e.g. `w.down`",
        ]
    );
    let e = errors(
        quote! { f { a = input(s); w = a.reduce_window(c, d, |a, b| a + b).map(|x| x); o = w.output(k); } },
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("`reduce_window` is stateful, so it must end its statement"),
        "{e:?}"
    );
}

#[test]
fn window_methods_check_their_arity() {
    let e = errors(
        quote! { f { a = input(s); w = a.fold_window(c, d, || 0, |s, x| s + x); o = w.down.output(k); } },
    );
    assert_eq!(
        e,
        vec!["`fold_window` takes 6 arguments, found 4 (the step id is not written: it is the binding)"]
    );
}
