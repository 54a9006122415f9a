//! A composite operator, written as a function with `#[bwx::operator]`, called like a
//! built-in in `dataflow!` (as a method and as a free call) and from the builder.
use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};

/// Items above a threshold, counted per key.
#[bwx::operator]
fn count_above(up: &Stream<(String, u32)>, threshold: u32) -> Stream<(String, u64)> {
    up.filter_value("above", move |v| *v > threshold)
        .map_value("one", |_| 1u64)
        .reduce_final("count", |a, b| a + b)
}

fn main() {
    let (out, out2) = (TestingSink::new(), TestingSink::new());
    let items = vec![("a".to_string(), 5u32), ("a".to_string(), 1), ("b".to_string(), 9)];
    let flow = bwx::dataflow!(f {
        nums   = input(TestingSource::new(items.clone()));
        big    = nums.count_above(2);
        small  = count_above(nums, 0);
        out    = big.output(out.clone());
        out2   = small.output(out2.clone());
    });
    let ids: Vec<String> = flow.steps().iter().map(|s| s.id.to_string()).collect();
    assert!(ids.contains(&"f.big.count".to_string()), "{ids:?}");
    bwx::run_main(&flow).unwrap();
    let mut got = out.take();
    got.sort();
    assert_eq!(got, vec![("a".to_string(), 1), ("b".to_string(), 1)]);
    assert_eq!(out2.take().len(), 2);

    let flow = Dataflow::new("g");
    let nums = flow.input("nums", TestingSource::new(items));
    count_above(&flow, "big", &nums, 2).output("out", TestingSink::new());
    bwx::run_main(&flow).unwrap();
}
