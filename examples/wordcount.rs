//! Word count: how often each word occurs in a text file.
//!
//! ```text
//! cargo run --example wordcount -- run            # the bundled examples/data/wordcount.txt
//! BWX_INPUT=some.txt cargo run --example wordcount -- run -w 2
//! ```
//!
//! Prints one `word count` line per distinct word when the input ends (in no particular
//! order; pipe through `sort` to order them). A word is a run of letters, lowercased, so
//! "River," and "river" are the same word.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bwx::connectors::files::FileSource;
use bwx::connectors::stdio::StdOutSink;
use bwx::operators::IntoSink;
use bwx::prelude::*;

/// The words of a line: runs of letters, lowercased.
pub fn tokenize(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Reads `path` line by line and writes `word count` lines to `output`.
///
/// Each binding names a step: `wordcount.lines`, `wordcount.words`, ... (the ids that
/// errors, metrics and recovery use).
pub fn build_flow<M>(path: &Path, output: impl IntoSink<String, M>) -> Dataflow {
    bwx::dataflow!(wordcount {
        lines  = input(FileSource::new(path));
        words  = lines.flat_map(|line: String| tokenize(&line));
        // Counts per word; each worker counts its own words first and only the partial
        // counts cross to the worker that owns the word.
        counts = words.count_final(|word: &String| word.clone());
        format = counts.map(|(word, count)| format!("{word} {count}"));
        out    = format.output(output);
    })
}

/// The file to read: `$BWX_INPUT`, or the bundled text.
fn input_path() -> PathBuf {
    match std::env::var_os("BWX_INPUT") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/wordcount.txt"),
    }
}

fn main() -> ExitCode {
    bwx::cli::main(build_flow(&input_path(), StdOutSink::new()))
}
