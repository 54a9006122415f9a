//! Measures that `dataflow!` adds no run-time cost: the same keyed-count workload built
//! with the builder and with the macro, run alternately, in events per CPU-second.
//!
//! `cargo run --release --example macro_overhead [ITEMS] [ROUNDS]`

use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};

/// The workload with the builder.
pub fn builder_flow(items: u64, out: TestingSink<(u64, u64)>) -> Dataflow {
    let flow = Dataflow::new("overhead");
    flow.input("nums", TestingSource::new(0..items).batch_size(1024))
        .map("nums2_map", |x| x.wrapping_mul(2654435761) >> 7)
        .filter("nums2", |x| x % 3 != 0)
        .count_final("counts", |x| x % 1000)
        .output("out", out);
    flow
}

/// The same workload with `dataflow!`.
pub fn macro_flow(items: u64, out: TestingSink<(u64, u64)>) -> Dataflow {
    bwx::dataflow!(overhead {
        nums   = input(TestingSource::new(0..items).batch_size(1024));
        nums2  = nums.map(|x| x.wrapping_mul(2654435761) >> 7).filter(|x| x % 3 != 0);
        counts = nums2.count_final(|x| x % 1000);
        out    = counts.output(out);
    })
}

/// CPU time of this process, in seconds.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn measure(items: u64, build: fn(u64, TestingSink<(u64, u64)>) -> Dataflow) -> anyhow::Result<(f64, u64)> {
    let out = TestingSink::new();
    let flow = build(items, out.clone());
    let start = cpu_seconds();
    bwx::run_main(&flow)?;
    let cpu = cpu_seconds() - start;
    let total: u64 = out.take().iter().map(|(_, n)| n).sum();
    Ok((items as f64 / cpu.max(1e-9), total))
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let items: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5_000_000);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let (mut builder, mut macros) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (b, tb) = measure(items, builder_flow)?;
        let (m, tm) = measure(items, macro_flow)?;
        anyhow::ensure!(tb == tm, "outputs differ: builder {tb}, macro {tm}");
        builder.push(b);
        macros.push(m);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, m) = (median(&mut builder), median(&mut macros));
    println!("items {items}, rounds {rounds}");
    println!("builder  {:>12.0} events/CPU-s (median)", b);
    println!("dataflow! {:>11.0} events/CPU-s (median)", m);
    println!("ratio macro/builder {:.3}", m / b);
    Ok(())
}
