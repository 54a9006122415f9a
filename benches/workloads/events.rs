//! The generators of WORKLOADS.md section 1-2 (SplitMix64 draws) and a partitioned source
//! that emits the events of one key partition per source partition.

use bwx::StepId;
use bwx::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};

pub const PARTS: u64 = 4;
/// Indices scanned per batch and partition (about 1000 events per partition).
const SCAN: u64 = 4000;

/// The i-th output of SplitMix64 seeded with `seed`.
#[inline]
pub fn draw(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A value on the 1/1024 grid in [0, 100).
#[inline]
pub fn value(d: u64) -> f64 {
    (d % 102_400) as f64 / 1024.0
}

/// One workload's event generator: `key(i)` picks the key index, `event(i, key)` the event.
pub trait Generator: Send + Sync + Clone + 'static {
    type Event: bwx::Data;
    fn key(&self, i: u64) -> u32;
    fn event(&self, i: u64, key: u32) -> Self::Event;
}

/// Partition p emits, in increasing i, the events whose key index is p modulo 4.
pub struct GeneratedSource<G> {
    pub generator: G,
    pub events: u64,
}

impl<G: Generator> FixedPartitionedSource for GeneratedSource<G> {
    type Item = G::Event;
    type State = u64;
    type Partition = GeneratedPartition<G>;

    fn list_parts(&self) -> Vec<String> {
        (0..PARTS).map(|p| p.to_string()).collect()
    }

    fn build_part(
        &self,
        step: &StepId,
        part: &str,
        resume: Option<u64>,
    ) -> Result<Self::Partition, ConnectorError> {
        let part: u64 = part
            .parse()
            .map_err(|_| format!("{step}: unknown partition {part:?}"))?;
        Ok(GeneratedPartition {
            generator: self.generator.clone(),
            part,
            next: resume.unwrap_or(0),
            end: self.events,
        })
    }
}

pub struct GeneratedPartition<G> {
    generator: G,
    part: u64,
    next: u64,
    end: u64,
}

impl<G: Generator> StatefulSourcePartition for GeneratedPartition<G> {
    type Item = G::Event;
    type State = u64;

    fn next_batch(&mut self, batch: &mut Vec<G::Event>) -> Result<BatchStatus, ConnectorError> {
        let hi = (self.next + SCAN).min(self.end);
        for i in self.next..hi {
            let key = self.generator.key(i);
            if u64::from(key) % PARTS == self.part {
                batch.push(self.generator.event(i, key));
            }
        }
        self.next = hi;
        Ok(if hi >= self.end {
            BatchStatus::Eof
        } else {
            BatchStatus::Active
        })
    }

    fn snapshot(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_match_the_documented_vectors() {
        assert_eq!(super::draw(0, 0), 0xE220_A839_7B1D_CDAF);
        let got: Vec<u64> = (0..5).map(|i| super::draw(1_234_567, i)).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423,
                4593380528125082431,
                16408922859458223821
            ]
        );
    }
}
