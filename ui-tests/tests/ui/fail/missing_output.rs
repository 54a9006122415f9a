use bwx::testing::TestingSource;

fn main() {
    let _flow = bwx::dataflow!(f {
        nums   = input(TestingSource::new(vec![1u32]));
        _twice = nums.map(|x| x * 2);
    });
}
