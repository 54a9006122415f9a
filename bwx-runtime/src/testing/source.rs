//! `TestingSource`: replays a list of items, with EOF, abort and pause controls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::Data;
use crate::inputs::{BatchStatus, ConnectorError};

/// One scripted step of a [`TestingSource`].
#[derive(Clone, Debug, PartialEq)]
pub enum TestingEvent<T> {
    /// Emit the item.
    Item(T),
    /// End the input here. A resumed execution continues after this point.
    Eof,
    /// Abort the execution here, the first time this process reaches it (to test recovery).
    Abort,
    /// Emit nothing for this long.
    Pause(Duration),
}

/// A fixed-partitioned source with one partition (`"iterable"`) that replays a list of
/// items. Its resume state is the index of the next event, so with recovery a resumed flow
/// continues where the previous execution's last complete epoch left off.
///
/// ```
/// use bwx::prelude::*;
/// use bwx::testing::{TestingEvent, TestingSink, TestingSource};
///
/// let flow = Dataflow::new("f");
/// let out = TestingSink::new();
/// let events = vec![TestingEvent::Item(1), TestingEvent::Eof, TestingEvent::Item(2)];
/// flow.input("inp", TestingSource::from_events(events)).output("out", out.clone());
/// bwx::run_main(&flow).unwrap();
/// assert_eq!(out.take(), vec![1]);
/// ```
pub struct TestingSource<T> {
    events: Arc<Vec<TestingEvent<T>>>,
    batch_size: usize,
    aborted: Arc<AtomicBool>,
}

impl<T: Data + Sync> TestingSource<T> {
    /// Replays `items`, one per batch.
    pub fn new(items: impl IntoIterator<Item = T>) -> Self {
        Self::from_events(items.into_iter().map(TestingEvent::Item))
    }

    /// Replays scripted events.
    pub fn from_events(events: impl IntoIterator<Item = TestingEvent<T>>) -> Self {
        TestingSource {
            events: Arc::new(events.into_iter().collect()),
            batch_size: 1,
            aborted: Arc::default(),
        }
    }

    /// Emits up to `n` items per batch (at least 1).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }
}

/// The partition of a [`TestingSource`], written with `#[source]`: its resume state is
/// the index of the next event.
#[bwx_macros::source(crate = crate)]
pub struct TestingPartition<T> {
    events: Arc<Vec<TestingEvent<T>>>,
    #[state]
    next: usize,
    batch_size: usize,
    aborted: Arc<AtomicBool>,
    awake: Option<SystemTime>,
}

#[bwx_macros::source(crate = crate)]
impl<T: Data + Sync> TestingPartition<T> {
    fn list_parts(_source: &TestingSource<T>) -> Vec<String> {
        vec!["iterable".to_string()]
    }

    fn open(source: &TestingSource<T>, _part: &str) -> Result<Self, ConnectorError> {
        Ok(TestingPartition {
            events: source.events.clone(),
            next: 0,
            batch_size: source.batch_size,
            aborted: source.aborted.clone(),
            awake: None,
        })
    }

    fn next_batch(&mut self, batch: &mut Vec<T>) -> Result<BatchStatus, ConnectorError> {
        self.awake = None;
        while batch.len() < self.batch_size {
            let Some(event) = self.events.get(self.next) else {
                return Ok(BatchStatus::Eof);
            };
            self.next += 1;
            match event {
                TestingEvent::Item(item) => batch.push(item.clone()),
                TestingEvent::Eof => return Ok(BatchStatus::Eof),
                TestingEvent::Abort => {
                    if !self.aborted.swap(true, Ordering::SeqCst) {
                        return Ok(BatchStatus::Abort);
                    }
                }
                TestingEvent::Pause(d) => {
                    self.awake = Some(SystemTime::now() + *d);
                    break;
                }
            }
        }
        if self.next >= self.events.len() {
            Ok(BatchStatus::Eof)
        } else {
            Ok(BatchStatus::Active)
        }
    }

    fn next_awake(&self) -> Option<SystemTime> {
        self.awake
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::codec::{decode, encode};

    #[test]
    fn the_stored_state_is_the_bare_index() {
        // Before `#[source]`, the state was a plain `usize`: stored snapshots stay readable.
        let state = TestingPartitionState { next: 3 };
        assert_eq!(encode(&state).unwrap(), encode(&3usize).unwrap());
        let back: TestingPartitionState = decode(&encode(&3usize).unwrap()).unwrap();
        assert_eq!(back.next, 3);
    }
}
