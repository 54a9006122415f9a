//! The Nexmark source: the crates.io `nexmark` generator in four partitions that pace each
//! other, each event projected at the source onto what the query reads (Flink and
//! RisingWave push projections into their Nexmark sources the same way).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bwx::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use bwx::prelude::*;
use nexmark::EventGenerator;
use nexmark::config::NexmarkConfig;
use nexmark::event::Event;

/// Source partitions.
pub const PARTS: u64 = 4;
/// Events a partition generates per batch (at most).
const BATCH: u64 = 1000;
/// How far (event time, ms) a partition may run ahead of the slowest one: well inside the
/// clocks' wait of 4 s.
const LEAD_MS: u64 = 1000;

/// The four generated partitions of the global events `0..events`, their shared pacing
/// positions, and the projection `project` of each event onto the query's items (`None`
/// for events the query does not read).
pub struct NexmarkSource<P> {
    config: NexmarkConfig,
    events: u64,
    project: P,
    /// Timestamp of each partition's next event: 0 until the partition is built,
    /// `u64::MAX` once it is done.
    positions: Arc<[AtomicU64; PARTS as usize]>,
    generated: Arc<AtomicU64>,
}

impl<T, P> NexmarkSource<P>
where
    T: Data,
    P: Fn(Event) -> Option<T> + Clone + Send + Sync + 'static,
{
    /// Global events `0..events` of `config`, projected by `project`.
    pub fn new(config: NexmarkConfig, events: u64, project: P) -> Self {
        NexmarkSource {
            config,
            events,
            project,
            positions: Arc::new(std::array::from_fn(|_| AtomicU64::new(0))),
            generated: Arc::default(),
        }
    }

    /// A counter of the events this process's partitions generate (projected or not).
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.generated.clone()
    }
}

impl<T, P> FixedPartitionedSource for NexmarkSource<P>
where
    T: Data,
    P: Fn(Event) -> Option<T> + Clone + Send + Sync + 'static,
{
    type Item = T;
    /// The partition's next global event number.
    type State = u64;
    type Partition = NexmarkPartition<P>;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok((0..PARTS).map(|p| p.to_string()).collect())
    }

    fn build_part(
        &self,
        step: &StepId,
        part: &str,
        resume: Option<u64>,
    ) -> Result<Self::Partition, ConnectorError> {
        let p: u64 = part
            .parse()
            .ok()
            .filter(|p| *p < PARTS)
            .ok_or_else(|| format!("{step}: unknown partition {part:?}"))?;
        let next = resume.unwrap_or(p);
        let generator = EventGenerator::new(self.config.clone())
            .with_offset(next)
            .with_step(PARTS);
        let position = if next >= self.events {
            u64::MAX
        } else {
            generator.timestamp()
        };
        self.positions[p as usize].store(position, Ordering::Release);
        Ok(NexmarkPartition {
            generator,
            project: self.project.clone(),
            part: p as usize,
            next,
            end: self.events,
            positions: self.positions.clone(),
            generated: self.generated.clone(),
        })
    }
}

/// Partition p: global events p, p + 4, ... below the end.
pub struct NexmarkPartition<P> {
    generator: EventGenerator,
    project: P,
    part: usize,
    next: u64,
    end: u64,
    positions: Arc<[AtomicU64; PARTS as usize]>,
    generated: Arc<AtomicU64>,
}

impl<T, P> StatefulSourcePartition for NexmarkPartition<P>
where
    T: Data,
    P: Fn(Event) -> Option<T> + Clone + Send + Sync + 'static,
{
    type Item = T;
    type State = u64;

    fn next_batch(&mut self, batch: &mut Vec<T>) -> Result<BatchStatus, ConnectorError> {
        let slowest = self
            .positions
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        // Past this, wait for the slowest partition (on another worker, or not built yet);
        // an empty batch polls again after the cool-down.
        let limit = slowest.saturating_add(LEAD_MS);
        let mut n = 0;
        while self.next < self.end && n < BATCH && self.generator.timestamp() <= limit {
            let event = self.generator.next().ok_or("the nexmark generator ended")?;
            if let Some(item) = (self.project)(event) {
                batch.push(item);
            }
            self.next += PARTS;
            n += 1;
        }
        self.generated.fetch_add(n, Ordering::Relaxed);
        let done = self.next >= self.end;
        let position = if done {
            u64::MAX
        } else {
            self.generator.timestamp()
        };
        self.positions[self.part].store(position, Ordering::Release);
        Ok(if done {
            BatchStatus::Eof
        } else {
            BatchStatus::Active
        })
    }

    fn snapshot(&self) -> u64 {
        self.next
    }
}
