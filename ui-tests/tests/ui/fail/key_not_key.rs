use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums  = input(TestingSource::new(vec![1.5f64]));
        keyed = nums.key_on(|x| *x);
        out   = keyed.output(TestingSink::new());
    });
}
