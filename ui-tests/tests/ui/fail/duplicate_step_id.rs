use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums = input(TestingSource::new(vec![1u32]));
        nums = nums.map(|x| x + 1);
        out  = nums.output(TestingSink::new());
    });
}
