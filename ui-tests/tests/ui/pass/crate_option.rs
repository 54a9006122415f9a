//! `crate = path` for a re-export of bwx.
mod reexport {
    pub use bwx as engine;
}

use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let sink = TestingSink::new();
    let flow = bwx::dataflow!(crate = reexport::engine, f {
        nums = input(TestingSource::new(vec![1u32, 2]));
        more = nums.map(|x| x + 1).inspect(|_, _| ()).filter(|x| *x > 2);
        out  = more.output(sink.clone());
    });
    bwx::run_main(&flow).unwrap();
    assert_eq!(sink.take(), vec![3]);
}
