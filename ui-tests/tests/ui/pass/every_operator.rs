//! Every operator of the macro's table, with the argument count the table declares,
//! type-checks against the builder (and runs).
use std::time::Duration;

use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};

struct Sum(u64);

impl StatefulLogic<u64, u64> for Sum {
    type State = u64;
    fn on_item(&mut self, value: u64, out: &mut Vec<u64>) -> StateAction {
        self.0 += value;
        out.push(self.0);
        StateAction::Retain
    }
    fn snapshot(&self) -> u64 {
        self.0
    }
}

struct BatchSum(u64);

impl StatefulBatchLogic<u64, u64> for BatchSum {
    type State = u64;
    fn on_batch(&mut self, values: std::vec::Drain<'_, u64>, out: &mut Vec<u64>) -> StateAction {
        self.0 += values.sum::<u64>();
        out.push(self.0);
        StateAction::Retain
    }
    fn snapshot(&self) -> u64 {
        self.0
    }
}

fn main() {
    let sink = TestingSink::new();
    let flow = bwx::dataflow!(every {
        nums    = input(TestingSource::new(vec![vec![1u64, 2], vec![3]]));
        flat    = nums.flatten()
                      .map(|x| x + 1)
                      .filter(|x| *x > 0)
                      .filter_map(|x| Some(x))
                      .flat_map(|x| vec![x])
                      .flat_map_batch(|inp, out| out.append(inp))
                      .inspect(|_step, _x| ())
                      .inspect_debug(|_step, _x, _epoch, _worker| ())
                      .redistribute()
                      .enrich_cached(|k: &u64| *k, |cache, x| *cache.get(&x), Duration::from_secs(1));
        split   = flat.branch(|x| x % 2 == 0);
        keyed   = merge(split.trues, split.falses)
                      .key_on(|x| x.to_string())
                      .map_value(|x| x)
                      .filter_value(|x| *x > 0)
                      .filter_map_value(|x| Some(x))
                      .flat_map_value(|x| vec![x]);
        reduced = keyed.reduce_final(|a, b| a + b);
        counted = flat.count_final(|x| x.to_string());
        maxed   = keyed.max_final(|x| *x);
        minned  = keyed.min_final(|x| *x);
        folded  = keyed.fold_final(|| 0u64, |s, x| s + x);
        merged  = keyed.fold_final_with_merge(|| 0u64, |s, x| s + x, |a, b| a + b);
        batches = keyed.collect(Duration::from_secs(1), 10);
        summed  = keyed.stateful(|s: Option<u64>| Sum(s.unwrap_or(0)));
        bsummed = keyed.stateful_batch(|s: Option<u64>| BatchSum(s.unwrap_or(0)));
        mapped  = keyed.stateful_map(|s: Option<u64>, x: u64| (s, x));
        fmapped = keyed.stateful_flat_map(|s: Option<u64>, x: u64| (s, vec![x]));
        joined  = join(reduced, maxed, minned, folded, merged, summed,
                       insert = JoinInsertMode::First, emit = JoinEmitMode::Complete);
        more    = join(bsummed, mapped, fmapped, counted, batches, emit = JoinEmitMode::Final);
        _all    = more.key_rm();
        out     = joined.output(sink.clone());
        errors  = flat.filter(|x| *x > 1000).raises();
    });
    bwx::run_main(&flow).unwrap();
    assert_eq!(sink.take().len(), 3);
}
