use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums = input(TestingSource::new(vec![1u32]));
        loop_ = merge(nums, loop_);
        out  = loop_.output(TestingSink::new());
    });
}
