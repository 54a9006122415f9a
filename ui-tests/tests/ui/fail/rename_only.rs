use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums = input(TestingSource::new(vec![1u32]));
        same = nums;
        out  = same.output(TestingSink::new());
    });
}
