use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums  = input(TestingSource::new(vec![1u32]));
        plain = nums.map(|x| x + 1);
        out   = plain.trues.output(TestingSink::new());
    });
}
