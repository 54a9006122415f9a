use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums  = input(TestingSource::new(vec![1u32]));
        left  = nums.key_on(|x| x.to_string());
        right = nums.key_on(|x| *x);
        j     = join(left, right);
        out   = j.output(TestingSink::new());
    });
}
