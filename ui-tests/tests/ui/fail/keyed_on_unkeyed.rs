use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums = input(TestingSource::new(vec![1u32]));
        sum  = nums.reduce_final(|a, b| a + b);
        out  = sum.output(TestingSink::new());
    });
}
