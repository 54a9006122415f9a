//! Memory per key of `stateful_map` (issue 16 item 4: bytes per key with many keys): 100,000
//! keys of `(count, sum)` state, measured with a counting global allocator.
//!
//! The source emits one item of every key, waits a few polls so that the stateful step has
//! taken them in (one worker: the step runs between the source's polls), reads the
//! allocator's live bytes, then emits a second item of every key. The mapper emits nothing
//! for a key's first item (so nothing downstream allocates while the states are measured)
//! and `(count, sum)` for its second, which proves every key's state was held.

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bwx::inputs::{BatchStatus, ConnectorError, DynamicSource, StatelessSourcePartition};
use bwx::prelude::*;
use bwx::testing::TestingSink;

use counting_alloc::{Counting, LIVE};

#[global_allocator]
static ALLOC: Counting = Counting;

const KEYS: u32 = 100_000;
const BATCH: u32 = 5_000;
/// Polls without items after the first pass before measuring.
const SETTLE_POLLS: u32 = 3;

/// Emits `(key, value)` for every key twice (two passes over the keys), measuring live
/// bytes before the first item and once the step has taken in the first pass.
#[derive(Clone)]
struct TwoPasses {
    measured: Arc<Mutex<Option<(isize, isize)>>>,
}

impl DynamicSource for TwoPasses {
    type Item = (u32, f64);
    type Partition = TwoPassesPartition;

    fn build(
        &self,
        _step: &StepId,
        _worker: usize,
        _workers: usize,
    ) -> Result<TwoPassesPartition, ConnectorError> {
        Ok(TwoPassesPartition {
            measured: self.measured.clone(),
            pass: 0,
            next_key: 0,
            before: None,
            idle: 0,
        })
    }
}

struct TwoPassesPartition {
    measured: Arc<Mutex<Option<(isize, isize)>>>,
    pass: u32,
    next_key: u32,
    before: Option<isize>,
    idle: u32,
}

impl StatelessSourcePartition for TwoPassesPartition {
    type Item = (u32, f64);

    fn next_batch(&mut self, batch: &mut Vec<(u32, f64)>) -> Result<BatchStatus, ConnectorError> {
        if self.before.is_none() {
            self.before = Some(LIVE.load(Ordering::SeqCst));
        }
        if self.pass == 2 {
            return Ok(BatchStatus::Eof);
        }
        if self.next_key < KEYS {
            let end = (self.next_key + BATCH).min(KEYS);
            batch.extend((self.next_key..end).map(|key| (key, f64::from(key % 7))));
            self.next_key = end;
            return Ok(BatchStatus::Active);
        }
        if self.pass == 0 {
            self.idle += 1;
            if self.idle < SETTLE_POLLS {
                return Ok(BatchStatus::Active);
            }
            let after = LIVE.load(Ordering::SeqCst);
            *self.measured.lock().unwrap() = self.before.map(|before| (before, after));
        }
        self.pass += 1;
        self.next_key = 0;
        Ok(BatchStatus::Active)
    }
}

#[test]
fn stateful_map_holds_a_key_in_little_more_than_its_key_and_state() {
    let measured = Arc::new(Mutex::new(None));
    let out = TestingSink::new();
    let flow = Dataflow::new("memory");
    flow.input(
        "keys",
        TwoPasses {
            measured: measured.clone(),
        },
    )
    .stateful_flat_map("count_sum", |state: Option<(u64, f64)>, value: f64| {
        let (count, sum) = state.unwrap_or((0, 0.0));
        let (count, sum) = (count + 1, sum + value);
        (Some((count, sum)), (count == 2).then_some((count, sum)))
    })
    .output("out", out.clone());
    bwx::run_main(&flow).unwrap();
    let (before, after) = measured.lock().unwrap().expect("the source measured");
    let bytes = (after - before) as f64 / f64::from(KEYS);
    eprintln!("stateful_map memory: {bytes:.0} bytes per key of (u32, (u64, f64))");
    let mut rows = out.take();
    rows.sort_by_key(|(key, _)| *key);
    assert_eq!(
        rows.len(),
        KEYS as usize,
        "one result per key: every state was held"
    );
    assert!(
        rows.iter()
            .all(|(key, row)| *row == (2, 2.0 * f64::from(key % 7))),
        "every key's second item saw its first"
    );
    // Key and state are 24 bytes (as a hand-written `HashMap<u32, (u64, f64)>` holds them);
    // the map's buckets are between 7/8 and 7/16 full, so 24-55 bytes per key are the map
    // itself at any key count. 100,000 keys fill 76 % of 131,072 buckets: 33 bytes per key.
    assert!(bytes > 0.0, "nothing measured ({bytes} bytes per key)");
    assert!(bytes < 40.0, "{bytes:.0} bytes per key, over the bound of 40");
}
