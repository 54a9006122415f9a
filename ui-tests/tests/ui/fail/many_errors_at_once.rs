use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums  = input(TestingSource::new(vec![1u32]));
        a     = nums.fliter(|x| *x > 0);
        b     = nums.count_final(|x| *x).map(|x| x);
        c     = nope.map(|x| x);
        out   = nums.output(TestingSink::new());
    });
}
