use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let sink: TestingSink<u32> = TestingSink::new();
    let _ = TestingSource::new(vec![1u32]);
    let _flow = bwx::dataflow!(f {
        nums = merge();
        out  = nums.output(sink);
    });
}
