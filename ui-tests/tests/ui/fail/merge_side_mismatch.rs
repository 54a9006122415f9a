use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums  = input(TestingSource::new(vec![1u32]));
        words = input(TestingSource::new(vec!["a".to_string()]));
        both  = merge(nums, words);
        out   = both.output(TestingSink::new());
    });
}
