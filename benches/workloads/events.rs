//! The generators of WORKLOADS.md section 1-2 (SplitMix64 draws) and a partitioned source
//! that emits the events of one key partition per source partition.
//!
//! Every partition scans all indices to find its keys. So that co-located partitions do not
//! draw every key four times, whichever partition of this process scans a window of
//! indices first sorts the whole window into the four partitions and leaves the other
//! three parts in a shared cache for their partitions to pick up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bwx::StepId;
use bwx::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use rustc_hash::FxHashMap;

pub const PARTS: u64 = 4;
/// Event time zero of the generated workloads (ms since the Unix epoch).
pub const BASE_MS: i64 = 1_700_000_000_000;
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

/// Scanned windows (by first index) with the parts not yet taken by their partitions.
type ScanCache<E> = Arc<Mutex<FxHashMap<u64, [Option<Vec<E>>; PARTS as usize]>>>;

/// Partition p emits, in increasing i, the events whose key index is p modulo 4.
pub struct GeneratedSource<G: Generator> {
    generator: G,
    events: u64,
    cache: ScanCache<G::Event>,
    emitted: Arc<AtomicU64>,
}

impl<G: Generator> GeneratedSource<G> {
    pub fn new(generator: G, events: u64) -> Self {
        GeneratedSource {
            generator,
            events,
            cache: Arc::default(),
            emitted: Arc::default(),
        }
    }

    /// A counter of the events this process's partitions emit.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.emitted.clone()
    }
}

impl<G: Generator> FixedPartitionedSource for GeneratedSource<G> {
    type Item = G::Event;
    type State = u64;
    type Partition = GeneratedPartition<G>;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok((0..PARTS).map(|p| p.to_string()).collect())
    }

    fn build_part(
        &self,
        step: &StepId,
        part: &str,
        resume: Option<u64>,
    ) -> Result<Self::Partition, ConnectorError> {
        let part: u64 = part
            .parse()
            .ok()
            .filter(|p| *p < PARTS)
            .ok_or_else(|| format!("{step}: unknown partition {part:?}"))?;
        Ok(GeneratedPartition {
            generator: self.generator.clone(),
            part,
            next: resume.unwrap_or(0),
            end: self.events,
            cache: self.cache.clone(),
            emitted: self.emitted.clone(),
        })
    }
}

pub struct GeneratedPartition<G: Generator> {
    generator: G,
    part: u64,
    next: u64,
    end: u64,
    cache: ScanCache<G::Event>,
    emitted: Arc<AtomicU64>,
}

impl<G: Generator> StatefulSourcePartition for GeneratedPartition<G> {
    type Item = G::Event;
    type State = u64;

    fn next_batch(&mut self, batch: &mut Vec<G::Event>) -> Result<BatchStatus, ConnectorError> {
        let hi = (self.next + SCAN).min(self.end);
        let me = self.part as usize;
        let mut cache = self.cache.lock().map_err(|_| "scan cache poisoned")?;
        match cache.get_mut(&self.next) {
            Some(parts) => {
                take_part(&mut parts[me], batch)?;
                if parts.iter().all(Option::is_none) {
                    cache.remove(&self.next);
                }
            }
            None => {
                let mut parts: [Option<Vec<G::Event>>; PARTS as usize] = Default::default();
                for p in parts.iter_mut() {
                    *p = Some(Vec::with_capacity((SCAN / PARTS) as usize + 64));
                }
                for i in self.next..hi {
                    let key = self.generator.key(i);
                    if let Some(events) = parts[(u64::from(key) % PARTS) as usize].as_mut() {
                        events.push(self.generator.event(i, key));
                    }
                }
                take_part(&mut parts[me], batch)?;
                cache.insert(self.next, parts);
            }
        }
        drop(cache);
        self.emitted.fetch_add(batch.len() as u64, Ordering::Relaxed);
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

/// Moves a scanned part into the batch: by swapping the vectors if the batch is empty (it
/// is, as the engine hands the source an empty one), else by copying.
fn take_part<E>(part: &mut Option<Vec<E>>, batch: &mut Vec<E>) -> Result<(), ConnectorError> {
    let mut events = part.take().ok_or("window scanned twice")?;
    if batch.is_empty() {
        std::mem::swap(batch, &mut events);
    } else {
        batch.append(&mut events);
    }
    Ok(())
}

/// Checks the generator against the test vectors of WORKLOADS.md before any run.
pub fn check_test_vectors() -> Result<(), String> {
    let expected = [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
        4593380528125082431,
        16408922859458223821,
    ];
    let got: Vec<u64> = (0..5).map(|i| draw(1_234_567, i)).collect();
    if draw(0, 0) != 0xE220_A839_7B1D_CDAF || got != expected {
        return Err(format!(
            "the generator does not match the WORKLOADS.md test vectors: {got:?}"
        ));
    }
    Ok(())
}
