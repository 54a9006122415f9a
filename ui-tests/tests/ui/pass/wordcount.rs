use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};

fn tokenize(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

fn main() {
    let sink = TestingSink::new();
    let flow = bwx::dataflow!(wordcount {
        lines  = input(TestingSource::new(vec!["a b".to_string(), "b".to_string()]));
        words  = lines.flat_map(|l: String| tokenize(&l));
        counts = words.count_final(|w: &String| w.clone());
        out    = counts.output(sink.clone());
    });
    bwx::run_main(&flow).unwrap();
    let mut got = sink.take();
    got.sort();
    assert_eq!(got, vec![("a".to_string(), 1), ("b".to_string(), 2)]);
    let _: &Dataflow = &flow;
}
