use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        let nums = input(TestingSource::new(vec![1u32]));
        out = nums.output(TestingSink::new());
    });
}
