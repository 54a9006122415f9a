//! Quick throughput check of event-time tumbling windows (benchmark workload (c) of
//! /work/shared/bench/WORKLOADS.md): `cargo test --release --test windowing_perf -- --ignored --nocapture`.
//! Ignored by default: it measures, it does not assert. Environment: `EVENTS` (5,000,000),
//! `WORKERS` (1), `BY_KEY=1` (the workload's key-partitioned generator), `KEYS` (1000; only
//! for the default generator), `WIN_MS` (window length, 10,000).

use std::time::{Duration, Instant};

use bwx::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use bwx::prelude::*;
use bwx::testing::TestingSink;
use bwx::windowing::{EventClock, TumblingWindower};

const BASE: i64 = 1_700_000_000_000;
const PARTS: u64 = 4;

fn draw(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Gen {
    n: u64,
    by_key: bool,
}

struct GenPart {
    part: u64,
    next: u64,
    n: u64,
    by_key: bool,
    keys: u64,
}

impl FixedPartitionedSource for Gen {
    type Item = (u32, (i64, f64));
    type State = u64;
    type Partition = GenPart;

    fn list_parts(&self) -> Vec<String> {
        (0..PARTS).map(|p| p.to_string()).collect()
    }

    fn build_part(&self, _step: &StepId, part: &str, resume: Option<u64>) -> Result<GenPart, ConnectorError> {
        Ok(GenPart {
            part: part.parse()?,
            next: resume.unwrap_or(0),
            n: self.n,
            by_key: self.by_key,
            keys: std::env::var("KEYS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1000),
        })
    }
}

impl StatefulSourcePartition for GenPart {
    type Item = (u32, (i64, f64));
    type State = u64;

    fn next_batch(&mut self, batch: &mut Vec<Self::Item>) -> Result<BatchStatus, ConnectorError> {
        let hi = (self.next + 4000).min(self.n);
        if self.by_key {
            // The workload's partitioning: partition p has the keys k ≡ p (mod 4), so every
            // partition draws every key (4 key draws per event in total).
            for i in self.next..hi {
                let k = draw(301, 3 * i) % 1000;
                if k % PARTS == self.part {
                    let v = (draw(301, 3 * i + 1) % 102_400) as f64 / 1024.0;
                    let ts = BASE + (i as i64) / 5 - (draw(301, 3 * i + 2) % 2000) as i64;
                    batch.push((k as u32, (ts, v)));
                }
            }
            self.next = hi;
            return Ok(if hi == self.n {
                BatchStatus::Eof
            } else {
                BatchStatus::Active
            });
        }
        // Otherwise partition p generates the events i ≡ p (mod 4): one pass in total,
        // which measures the dataflow rather than the generator. Keys then come from all
        // partitions, less than a batch apart in event time and within the 5 s wait on one
        // worker; with several workers partitions drift apart, so use BY_KEY=1 there.
        let mut i = self.next + (self.part + PARTS - self.next % PARTS) % PARTS;
        while i < hi {
            let k = draw(301, 3 * i) % self.keys;
            let v = (draw(301, 3 * i + 1) % 102_400) as f64 / 1024.0;
            let ts = BASE + (i as i64) / 5 - (draw(301, 3 * i + 2) % 2000) as i64;
            batch.push((k as u32, (ts, v)));
            i += PARTS;
        }
        self.next = hi;
        Ok(if hi == self.n {
            BatchStatus::Eof
        } else {
            BatchStatus::Active
        })
    }

    fn snapshot(&self) -> u64 {
        self.next
    }
}

fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

#[test]
#[ignore = "measurement; run in release with --ignored --nocapture"]
fn tumbling_count_sum_throughput() {
    let n: u64 = std::env::var("EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000_000);
    let workers: usize = std::env::var("WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let by_key = std::env::var("BY_KEY").is_ok_and(|v| v == "1");
    let flow = Dataflow::new("c");
    let out = TestingSink::new();
    flow.input("gen", Gen { n, by_key })
        .fold_window(
            "win",
            EventClock::replay(|(ts, _): &(i64, f64)| *ts, Duration::from_secs(5)),
            TumblingWindower::new(
                Duration::from_millis(
                    std::env::var("WIN_MS")
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(10_000),
                ),
                BASE,
            )
            .unwrap(),
            || (0u64, 0.0f64),
            |(c, s), (_, v)| (c + 1, s + v),
            |(c1, s1), (c2, s2)| (c1 + c2, s1 + s2),
            false,
        )
        .down
        .output("out", out.clone());
    let (t0, c0) = (Instant::now(), cpu_secs());
    bwx::run_workers(&flow, workers, RunConfig::default()).unwrap();
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs() - c0);
    let rows = out.take();
    let events: u64 = rows.iter().map(|(_, (_, (c, _)))| *c).sum();
    assert_eq!(events, n);
    println!(
        "windowing c-tumbling: workers={workers} by_key={by_key} events={n} rows={} secs={secs:.3} cpu_s={cpu:.3} events_per_cpu_s={:.0}",
        rows.len(),
        n as f64 / cpu
    );
}
