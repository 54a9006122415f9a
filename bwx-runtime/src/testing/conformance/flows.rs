//! The kit's own connectors: the records source of the sink checks, an exactly-once file of
//! records for the source kill check, and a sink that drops what it gets.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::records::record;
use super::run::Plan;
use crate::StepId;
use crate::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use crate::outputs::{DynamicSink, FixedPartitionedSink, StatefulSinkPartition, StatelessSinkPartition};

/// Emits the records of a [`Plan`]: partition `kit-<p>` emits `record(p, 0..records)`,
/// `batch` per batch, and is resumable by the next seq.
pub(crate) struct KitSource {
    pub plan: Plan,
    /// Pause between batches.
    pub pace: Duration,
}

pub(crate) struct KitPart {
    part: usize,
    next: u64,
    /// Where this run's input ends (an EOF point, or the last record).
    end: u64,
    batch: u64,
    batches: u64,
    abort_after: Option<u64>,
    pace: Duration,
    awake: Option<SystemTime>,
}

impl FixedPartitionedSource for KitSource {
    type Item = u64;
    type State = u64;
    type Partition = KitPart;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok((0..self.plan.parts).map(|p| format!("kit-{p}")).collect())
    }

    fn build_part(&self, _: &StepId, part: &str, resume: Option<u64>) -> Result<KitPart, ConnectorError> {
        let index: usize = part
            .strip_prefix("kit-")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("not a partition of the kit's source: {part}"))?;
        let next = resume.unwrap_or(0);
        // A run that resumes at an EOF point continues past it.
        let end = self
            .plan
            .eof_at
            .iter()
            .copied()
            .find(|&e| e > next)
            .unwrap_or(self.plan.records)
            .min(self.plan.records);
        Ok(KitPart {
            part: index,
            next,
            end,
            batch: self.plan.batch.max(1),
            batches: 0,
            abort_after: (index == 0).then_some(self.plan.abort_after).flatten(),
            pace: self.pace,
            awake: None,
        })
    }
}

impl StatefulSourcePartition for KitPart {
    type Item = u64;
    type State = u64;

    fn next_batch(&mut self, batch: &mut Vec<u64>) -> Result<BatchStatus, ConnectorError> {
        let until = (self.next + self.batch).min(self.end);
        batch.extend((self.next..until).map(|s| record(self.part, s)));
        self.next = until;
        self.batches += 1;
        self.awake = (!self.pace.is_zero()).then(|| SystemTime::now() + self.pace);
        if self.abort_after.is_some_and(|k| self.batches >= k) {
            return Ok(BatchStatus::Abort);
        }
        Ok(if self.next >= self.end {
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

/// Drops every item.
pub(crate) struct Discard<T>(pub PhantomData<fn(T)>);

impl<T: crate::Data> DynamicSink for Discard<T> {
    type Item = T;
    type Partition = Discard<T>;

    fn build(&self, _: &StepId, _: usize, _: usize) -> Result<Discard<T>, ConnectorError> {
        Ok(Discard(PhantomData))
    }
}

impl<T: 'static> StatelessSinkPartition for Discard<T> {
    type Item = T;

    fn write_batch(&mut self, items: &mut Vec<T>) -> Result<(), ConnectorError> {
        items.clear();
        Ok(())
    }
}

/// Writes records as lines of one file, exactly once across resumes: its state is the
/// length written and the number of records, and a resumed partition truncates the file
/// back to it.
///
/// `commit` writes the number of records of the epochs now durable to `durable`, so that the
/// kill check kills a run after it made progress that a resume must keep.
pub(crate) struct KitFileSink {
    pub path: PathBuf,
    pub durable: PathBuf,
}

/// The position of a [`KitFileSink`].
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub(crate) struct FilePosition {
    len: u64,
    count: usize,
}

pub(crate) struct KitFilePart {
    file: File,
    durable: PathBuf,
    /// Records written as of each pre-committed epoch not yet committed.
    pending: Vec<(u64, usize)>,
    at: FilePosition,
    buf: Vec<u8>,
}

impl FixedPartitionedSink for KitFileSink {
    type Key = ();
    type Value = u64;
    type State = FilePosition;
    type Partition = KitFilePart;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok(vec!["kit-out".into()])
    }

    fn build_part(
        &self,
        _: &StepId,
        _: &str,
        resume: Option<FilePosition>,
    ) -> Result<KitFilePart, ConnectorError> {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&self.path)?;
        let at = resume.unwrap_or_default();
        file.set_len(at.len)?;
        file.seek(SeekFrom::Start(at.len))?;
        let part = KitFilePart {
            file,
            durable: self.durable.clone(),
            pending: Vec::new(),
            at,
            buf: Vec::new(),
        };
        Ok(part)
    }
}

impl StatefulSinkPartition for KitFilePart {
    type Value = u64;
    type State = FilePosition;

    fn write_batch(&mut self, values: &mut Vec<u64>) -> Result<(), ConnectorError> {
        self.buf.clear();
        for v in values.drain(..) {
            writeln!(self.buf, "{v}")?;
            self.at.count += 1;
        }
        self.file.write_all(&self.buf)?;
        self.at.len += self.buf.len() as u64;
        Ok(())
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        self.pending.push((epoch, self.at.count));
        Ok(())
    }

    fn snapshot(&self) -> FilePosition {
        self.at
    }

    fn commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        let durable = self
            .pending
            .iter()
            .filter(|(e, _)| *e <= epoch)
            .map(|(_, n)| *n)
            .max();
        self.pending.retain(|(e, _)| *e > epoch);
        if let Some(n) = durable {
            std::fs::write(&self.durable, n.to_string())?;
        }
        Ok(())
    }
}

/// The number of records a [`KitFileSink`] last reported durable.
pub(crate) fn read_durable(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// The records in a [`KitFileSink`]'s file.
pub(crate) fn read_records(path: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

/// A small seeded generator (xorshift), so that a seed names one sequence of kill times.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}
