use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums = input(TestingSource::new(vec![1u32]));
        lens = nums.map(|s: String| s.len());
        out  = lens.output(TestingSink::new());
    });
}
