//! The paced, resumable source and the running-sums flow of the crash and cluster tests, and
//! the seeded generator that places their kills.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bwx::inputs::ConnectorError;
use bwx::prelude::*;

/// Replays `items` items per partition over `parts` partitions, `batch` at a time and one
/// batch per `pace`; item `i` of partition `p` is `("p{p}-k{i % keys}", i)`, so every key
/// belongs to one partition and its items keep their order. Its position is the next index.
#[derive(Clone, Copy)]
pub struct Numbers {
    pub parts: u64,
    pub items: u64,
    pub keys: u64,
    pub batch: u64,
    pub pace: Duration,
}

pub struct NumbersPart {
    source: Numbers,
    part: u64,
    next: u64,
    awake: Option<SystemTime>,
}

impl FixedPartitionedSource for Numbers {
    type Item = (String, u64);
    type State = u64;
    type Partition = NumbersPart;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok((0..self.parts).map(|p| format!("p{p}")).collect())
    }

    fn build_part(&self, _: &StepId, part: &str, resume: Option<u64>) -> Result<NumbersPart, ConnectorError> {
        Ok(NumbersPart {
            source: *self,
            part: part[1..].parse()?,
            next: resume.unwrap_or(0),
            awake: None,
        })
    }
}

impl StatefulSourcePartition for NumbersPart {
    type Item = (String, u64);
    type State = u64;

    fn next_batch(&mut self, batch: &mut Vec<(String, u64)>) -> Result<BatchStatus, ConnectorError> {
        let Numbers {
            items,
            keys,
            batch: size,
            pace,
            ..
        } = self.source;
        let end = (self.next + size).min(items);
        for i in self.next..end {
            batch.push((format!("p{}-k{}", self.part, i % keys), i));
        }
        self.next = end;
        self.awake = Some(SystemTime::now() + pace);
        Ok(if self.next >= items {
            BatchStatus::Eof
        } else {
            BatchStatus::Active
        })
    }

    fn next_awake(&self) -> Option<SystemTime> {
        self.awake
    }

    fn snapshot(&self) -> u64 {
        self.next
    }
}

impl Numbers {
    /// The running sum per key, as lines `key,sum` keyed by `key`, ready for a sink.
    pub fn sum_lines(self, flow: &Dataflow) -> Stream<(String, String)> {
        flow.input("inp", self)
            .stateful_map("sum", |s: Option<u64>, v: u64| {
                let t = s.unwrap_or(0) + v;
                (Some(t), t)
            })
            .map("line", |(k, sum): (String, u64)| {
                (k.clone(), format!("{k},{sum}"))
            })
    }

    /// The lines [`Numbers::sum_lines`] gives in an uninterrupted run, counted.
    pub fn expected_lines(self) -> BTreeMap<String, usize> {
        let mut lines = BTreeMap::new();
        for part in 0..self.parts {
            let mut sums = BTreeMap::new();
            for i in 0..self.items {
                let key = format!("p{part}-k{}", i % self.keys);
                let sum = sums.entry(key.clone()).or_insert(0u64);
                *sum += i;
                *lines.entry(format!("{key},{sum}")).or_insert(0) += 1;
            }
        }
        lines
    }
}

/// A small seeded generator (xorshift), so a seed names one sequence of kills.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
