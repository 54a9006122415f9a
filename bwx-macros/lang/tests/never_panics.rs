//! The macros never panic: random token input, and random mutations of a valid flow,
//! always expand to tokens (builder calls, or errors with a placeholder).

use bwx_macros_lang::connector::{Kind, expand as expand_connector};
use bwx_macros_lang::dataflow::analyze;
use proc_macro2::TokenStream;
use proptest::prelude::*;

/// Words that exercise every branch of the grammar and checks.
const VOCAB: &[&str] = &[
    "f",
    "a",
    "b",
    "c",
    "_x",
    "crate",
    "input",
    "merge",
    "join",
    "output",
    "map",
    "branch",
    "trues",
    "falses",
    "count_final",
    "stateful_map",
    "mpa",
    "insert",
    "emit",
    "self",
    "fn",
    "impl",
    "struct",
    "=",
    "==",
    "=>",
    ";",
    ".",
    ",",
    "::",
    "|x|",
    "x",
    "1",
    "\"s\"",
    "&",
    "_",
    "#",
    "!",
    "?",
    "-",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "#[state]",
    "list_parts",
    "open",
    "next_batch",
    "write_batch",
    "Vec<u32>",
    "&mut",
    "->",
    "Result<Self, E>",
];

fn tokens(words: &[usize]) -> Option<TokenStream> {
    let text: Vec<&str> = words.iter().map(|i| VOCAB[i % VOCAB.len()]).collect();
    text.join(" ").parse().ok()
}

const VALID: &str = "wc { lines = input(src); words = lines.flat_map(|l| split(l)).filter(|w| true); \
                     split = words.branch(|w| w.len() > 3); long = split.trues.count_final(|w| w.clone()); \
                     both = merge(long, split.falses); j = join(long, both, emit = E::Final); \
                     out = j.output(sink); }";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_tokens_never_panic(words in proptest::collection::vec(0usize..1000, 0..60)) {
        if let Some(input) = tokens(&words) {
            let a = analyze(input.clone());
            let _ = a.expand();
            let _ = a.statements();
            let _ = a.graph();
            let _ = expand_connector(Kind::Source, TokenStream::new(), input.clone());
            let _ = expand_connector(Kind::Sink, input.clone(), input);
        }
    }

    #[test]
    fn random_body_inside_a_flow_never_panics(words in proptest::collection::vec(0usize..1000, 0..60)) {
        if let Some(body) = tokens(&words) {
            let input: TokenStream = format!("f {{ {body} }}").parse().unwrap_or_default();
            let a = analyze(input);
            let expansion = a.expand().to_string();
            // Errors always come with the placeholder flow; success is a builder block.
            prop_assert!(expansion.contains("Dataflow :: new"));
        }
    }

    #[test]
    fn mutated_valid_flows_never_panic(cut in 0usize..400, insert in 0usize..1000, drop in 0usize..8) {
        let mut text = VALID.to_string();
        let at = (cut % text.len()).min(text.len());
        if text.is_char_boundary(at) {
            let end = (at + drop).min(text.len());
            if text.is_char_boundary(end) {
                text.replace_range(at..end, VOCAB[insert % VOCAB.len()]);
            }
        }
        if let Ok(input) = text.parse::<TokenStream>() {
            let a = analyze(input);
            let _ = a.expand();
        }
    }
}

#[test]
fn the_valid_flow_is_valid() {
    let a = analyze(VALID.parse().unwrap());
    assert!(a.diag.is_empty(), "{:?}", a.diag.messages());
}
