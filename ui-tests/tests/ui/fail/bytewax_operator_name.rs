use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums  = input(TestingSource::new(vec![("a".to_string(), 1u32)]));
        total = nums.reduce(|a, b| a + b);
        out   = total.output(TestingSink::new());
    });
}
