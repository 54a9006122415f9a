use bwx::testing::{TestingSink, TestingSource};

fn main() {
#[derive(Clone, Debug)]
    struct Reading(u32);
    let _flow = bwx::dataflow!(f {
        nums  = input(TestingSource::new(vec![Reading(1)]));
        keyed = nums.key_on(|r| r.0.to_string());
        last  = keyed.reduce_final(|_a, b| b);
        out   = last.output(TestingSink::new());
    });
}
