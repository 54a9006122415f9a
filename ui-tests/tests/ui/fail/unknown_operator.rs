use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums = input(TestingSource::new(vec![1u32]));
        more = nums.mpa(|x| x + 1);
        out  = more.output(TestingSink::new());
    });
}
