use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums  = input(TestingSource::new(vec![1u32]));
        split = nums.branch(|x| x % 2 == 0);
        out   = split.output(TestingSink::new());
    });
}
