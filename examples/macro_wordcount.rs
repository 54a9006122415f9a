//! Word count written with `dataflow!`: the same flow as the builder form in
//! `tests/macros.rs`, which checks that both give equal counts.
//!
//! Run with `cargo run --example macro_wordcount [FILE]` (default: a built-in text).

use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};

/// Lower-cased words of a line, without punctuation.
pub fn tokenize(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The word-count flow over `lines`, writing `(word, count)` to `out`.
pub fn wordcount(lines: Vec<String>, out: TestingSink<(String, u64)>) -> Dataflow {
    bwx::dataflow!(wordcount {
        lines  = input(TestingSource::new(lines));
        words  = lines.flat_map(|l: String| tokenize(&l));
        counts = words.count_final(|w: &String| w.clone());
        out    = counts.output(out);
    })
}

const TEXT: &str = "To be, or not to be, that is the question:\n\
                    Whether 'tis nobler in the mind to suffer\n\
                    The slings and arrows of outrageous fortune,\n\
                    Or to take arms against a sea of troubles";

fn main() -> anyhow::Result<()> {
    let text = match std::env::args().nth(1) {
        Some(path) => std::fs::read_to_string(path)?,
        None => TEXT.to_string(),
    };
    let out = TestingSink::new();
    let flow = wordcount(text.lines().map(String::from).collect(), out.clone());
    bwx::run_main(&flow)?;
    let mut counts = out.take();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for (word, count) in counts {
        println!("{word}\t{count}");
    }
    Ok(())
}
