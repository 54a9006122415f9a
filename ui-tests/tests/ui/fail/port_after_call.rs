use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums = input(TestingSource::new(vec![1u32]));
        evens = nums.branch(|x| x % 2 == 0).trues;
        out  = evens.output(TestingSink::new());
    });
}
