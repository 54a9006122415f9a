use bwx::testing::{TestingSink, TestingSource};

fn main() {
    let _flow = bwx::dataflow!(f {
        nums   = input(TestingSource::new(vec![1u32]));
        counts = nums.count_final(|x| x.to_string()).map(|(k, n)| format!("{k}: {n}"));
        out    = counts.output(TestingSink::new());
    });
}
