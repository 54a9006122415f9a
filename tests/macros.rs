//! `dataflow!` flows give the same output as their builder forms, over every operator
//! family: chains, ports, merge, join, stateful steps and sub-flows.

use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// A sub-flow: an ordinary function over streams, naming its steps after its binding.
fn evens_squared(flow: &Dataflow, id: &str, nums: &Stream<u64>) -> Stream<u64> {
    let _ = flow;
    nums.filter(&format!("{id}_even"), |x| x % 2 == 0)
        .map(&format!("{id}_square"), |x| x * x)
}

#[test]
fn ports_merge_join_stateful_and_subflows_run() {
    let joined_out = TestingSink::new();
    let merged_out = TestingSink::new();
    let sub_out = TestingSink::new();
    let flow = bwx::dataflow!(mixed {
        nums    = input(TestingSource::new(0..10u64));
        split   = nums.branch(|x| x % 2 == 0);
        evens   = split.trues.key_on(|x| (x / 2).to_string());
        odds    = split.falses.key_on(|x| (x / 2).to_string()).map_value(|x| x * 10);
        joined  = join(evens, odds, emit = JoinEmitMode::Final);
        out     = joined.output(joined_out.clone());
        both    = merge(split.trues, split.falses);
        total   = both.key_on(|_| "all".to_string()).reduce_final(|a, b| a + b);
        out_sum = total.output(merged_out.clone());
        squares = evens_squared(nums);
        out_sq  = squares.output(sub_out.clone());
    });
    let ids: Vec<String> = flow.steps().iter().map(|s| s.id.to_string()).collect();
    assert!(ids.contains(&"mixed.odds_key_on".to_string()), "{ids:?}");
    assert!(ids.contains(&"mixed.squares_square".to_string()), "{ids:?}");
    bwx::run_main(&flow).unwrap();
    let joined = sorted(joined_out.take());
    assert_eq!(joined.len(), 5);
    assert_eq!(joined[0], ("0".to_string(), (Some(0), Some(10))));
    assert_eq!(merged_out.take(), vec![("all".to_string(), 45)]);
    assert_eq!(sorted(sub_out.take()), vec![0, 4, 16, 36, 64]);
}

#[test]
fn stateful_map_in_a_macro_flow_equals_the_builder() {
    let items = vec![("a", 1), ("b", 2), ("a", 3), ("a", 4), ("b", 5)];
    let run_macro = || {
        let out = TestingSink::new();
        let flow = bwx::dataflow!(running {
            inp  = input(TestingSource::new(items.clone()));
            sums = inp.map(|(k, v): (&str, i32)| (k.to_string(), v))
                      .stateful_map(|s: Option<i32>, v: i32| {
                          let s = s.unwrap_or(0) + v;
                          (Some(s), s)
                      });
            out  = sums.output(out.clone());
        });
        bwx::run_main(&flow).unwrap();
        out.take()
    };
    let out = TestingSink::new();
    let flow = Dataflow::new("running");
    flow.input("inp", TestingSource::new(items.clone()))
        .map("sums_map", |(k, v): (&str, i32)| (k.to_string(), v))
        .stateful_map("sums", |s: Option<i32>, v: i32| {
            let s = s.unwrap_or(0) + v;
            (Some(s), s)
        })
        .output("out", out.clone());
    bwx::run_main(&flow).unwrap();
    assert_eq!(run_macro(), out.take());
}

/// A composite operator: values above a threshold, then the largest per key at the end.
#[bwx::operator]
fn max_above(readings: &Stream<(String, u32)>, threshold: u32) -> Stream<(String, u32)> {
    readings
        .filter_value("above", move |v| *v > threshold)
        .max_final("max", |v| *v)
}

/// A composite operator that adds its own input: it takes the flow first.
#[bwx::operator]
fn constant_readings(flow: &Dataflow, value: u32) -> Stream<(String, u32)> {
    flow.input("source", TestingSource::new(vec![("c".to_string(), value)]))
}

/// A composite operator with two results: a struct of streams.
struct Split {
    small: Stream<(String, u32)>,
    large: Stream<(String, u32)>,
}

impl bwx::operators::composite::Streams for Split {
    fn stream_ids(&self, ids: &mut Vec<bwx::StreamId>) {
        self.small.stream_ids(ids);
        self.large.stream_ids(ids);
    }
}

#[bwx::operator]
fn split_at(readings: &Stream<(String, u32)>, at: u32) -> Split {
    let parts = readings.branch("branch", move |(_, v)| *v < at);
    Split {
        small: parts.trues,
        large: parts.falses,
    }
}

#[test]
fn composite_operators_are_called_like_built_ins_with_nested_ids() {
    let (maxima, constants, small) = (TestingSink::new(), TestingSink::new(), TestingSink::new());
    let readings = vec![("a".to_string(), 5), ("a".to_string(), 20), ("b".to_string(), 3)];
    let flow = bwx::dataflow!(sensors {
        readings = input(TestingSource::new(readings));
        high     = readings.max_above(4);
        out      = high.output(maxima.clone());
        consts   = constant_readings(7);
        out_c    = consts.output(constants.clone());
        parts    = split_at(readings, 10);
        out_s    = parts.small.output(small.clone());
        _large   = parts.large;
    });
    let ids: Vec<String> = flow.steps().iter().map(|s| s.id.to_string()).collect();
    for id in [
        "sensors.high.above",
        "sensors.high.max",
        "sensors.consts.source",
        "sensors.parts.branch",
    ] {
        assert!(ids.contains(&id.to_string()), "{id} in {ids:?}");
    }
    bwx::run_workers(&flow, 2, RunConfig::default()).unwrap();
    assert_eq!(sorted(maxima.take()), vec![("a".to_string(), 20)]);
    assert_eq!(constants.take(), vec![("c".to_string(), 7)]);
    assert_eq!(
        sorted(small.take()),
        vec![("a".to_string(), 5), ("b".to_string(), 3)]
    );
}

#[test]
fn a_composite_operator_called_twice_with_one_name_is_a_duplicate_id() {
    let flow = Dataflow::new("f");
    let readings = flow.input("inp", TestingSource::new(vec![("a".to_string(), 1u32)]));
    max_above(&flow, "high", &readings, 0).output("out", TestingSink::new());
    max_above(&flow, "high", &readings, 0).output("out2", TestingSink::new());
    let err = flow.check().unwrap_err().to_string();
    assert!(err.contains("duplicate step id 'f.high'"), "{err}");
}
