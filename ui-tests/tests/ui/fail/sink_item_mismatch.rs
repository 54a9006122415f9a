use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let sink: TestingSink<String> = TestingSink::new();
    let _flow = bwx::dataflow!(f {
        nums = input(TestingSource::new(vec![1u32]));
        out  = nums.output(sink);
    });
}
