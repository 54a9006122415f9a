use bwx::testing::{TestingSink, TestingSource};

fn main() {
#[derive(Clone, Debug)]
    struct Total(u32);
    let _flow = bwx::dataflow!(f {
        nums  = input(TestingSource::new(vec![1u32]));
        keyed = nums.key_on(|x| x.to_string());
        sums  = keyed.stateful_map(|s: Option<Total>, v: u32| {
            let t = s.map_or(0, |t| t.0) + v;
            (Some(Total(t)), t)
        });
        out   = sums.output(TestingSink::new());
    });
}
