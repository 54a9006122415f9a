use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums    = input(TestingSource::new(vec![1u32]));
        out     = doubled.output(TestingSink::new());
        doubled = nums.map(|x| x * 2);
    });
}
