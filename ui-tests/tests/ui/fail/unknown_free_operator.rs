use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums = imput(TestingSource::new(vec![1u32]));
        out  = nums.output(TestingSink::new());
    });
}
