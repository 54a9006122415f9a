use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums = input(TestingSource::new(vec![1u32]));
        out  = nums.output(TestingSink::new());
        more = out.map(|x: u32| x);
        out2 = more.output(TestingSink::new());
    });
}
