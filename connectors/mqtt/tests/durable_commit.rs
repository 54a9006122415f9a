//! What a `#[source]` partition's `commit` is given (the attribute `MqttPartition` uses to
//! acknowledge): the positions its `snapshot` returned, in order, each only once the epoch
//! that stored it is durable in every recovery partition, and the last one before `close`.
//! No broker needed: the partition checks against the recovery store itself.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bwx_runtime::inputs::{BatchStatus, ConnectorError};
use bwx_runtime::recovery::codec;
use bwx_runtime::testing::{MemoryStore, TestingSink};
use bwx_runtime::{Dataflow, RunConfig};

const STEP: &str = "acks.inp";

/// Counts to `n` in three partitions; what each partition's `commit` and `close` saw.
pub struct Ticks {
    n: u64,
    store: Arc<MemoryStore>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

#[derive(Debug, PartialEq)]
enum Seen {
    /// A committed position, and what was wrong with committing it then.
    Commit(String, u64, Option<String>),
    Close(String),
}

/// One partition of [`Ticks`]; its position is the last number emitted.
#[bwx_macros::source(crate = bwx_runtime)]
pub struct TicksPart {
    name: String,
    #[state]
    at: u64,
    n: u64,
    store: Arc<MemoryStore>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

#[bwx_macros::source(crate = bwx_runtime)]
impl TicksPart {
    fn list_parts(_source: &Ticks) -> Vec<String> {
        (0..3).map(|p| format!("p{p}")).collect()
    }

    fn open(source: &Ticks, part: &str) -> Result<Self, ConnectorError> {
        Ok(TicksPart {
            name: part.to_string(),
            at: 0,
            n: source.n,
            store: source.store.clone(),
            seen: source.seen.clone(),
        })
    }

    fn next_batch(&mut self, batch: &mut Vec<u64>) -> Result<BatchStatus, ConnectorError> {
        self.at += 1;
        batch.push(self.at);
        Ok(if self.at == self.n {
            BatchStatus::Eof
        } else {
            BatchStatus::Active
        })
    }

    fn commit(&mut self, durable: &TicksPartState) -> Result<(), ConnectorError> {
        let wrong = self.not_durable(durable.at)?;
        self.seen
            .lock()
            .map_err(|_| "poisoned")?
            .push(Seen::Commit(self.name.clone(), durable.at, wrong));
        Ok(())
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        self.seen
            .lock()
            .map_err(|_| "poisoned")?
            .push(Seen::Close(self.name.clone()));
        Ok(())
    }
}

impl TicksPart {
    /// What is wrong about committing `position` now: never stored, or stored in an epoch
    /// that is not durable yet.
    fn not_durable(&self, position: u64) -> Result<Option<String>, ConnectorError> {
        let key = codec::part_key(&self.name);
        let state = codec::encode(&TicksPartState { at: position })?;
        let stored = self
            .store
            .written()
            .into_iter()
            .find(|s| s.step_id.as_str() == STEP && s.key == key && s.state.as_ref() == Some(&state));
        Ok(match (stored, self.store.durable_until()) {
            (None, _) => Some("never stored".into()),
            (Some(s), Some(until)) if until <= s.epoch => {
                Some(format!("stored at epoch {}, durable until {until}", s.epoch))
            }
            _ => None,
        })
    }
}

#[test]
fn commit_gets_only_durable_positions_in_order_and_before_close() {
    let n = 30;
    let store = MemoryStore::new(2);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let source = Ticks {
        n,
        store: store.clone(),
        seen: seen.clone(),
    };
    let out = TestingSink::new();
    let flow = Dataflow::new("acks");
    flow.input("inp", source).output("out", out.clone());
    let config = RunConfig::default()
        .epoch_interval(Duration::ZERO)
        .recovery(store);
    bwx_runtime::run_workers(&flow, 2, config).unwrap();
    assert_eq!(out.take().len(), 3 * n as usize);

    let seen = seen.lock().unwrap();
    for p in 0..3 {
        let name = format!("p{p}");
        let mine: Vec<&Seen> = seen
            .iter()
            .filter(|s| matches!(s, Seen::Commit(x, ..) | Seen::Close(x) if *x == name))
            .collect();
        let mut commits = Vec::new();
        for s in &mine {
            match s {
                Seen::Commit(_, at, None) => commits.push(*at),
                Seen::Commit(_, at, Some(wrong)) => panic!("{name} was told {at} is durable: {wrong}"),
                Seen::Close(_) => {}
            }
        }
        assert!(commits.windows(2).all(|w| w[0] < w[1]), "{name}: {commits:?}");
        assert_eq!(
            commits.last(),
            Some(&n),
            "{name} never saw its last position: {seen:?}"
        );
        assert_eq!(mine.last(), Some(&&Seen::Close(name.clone())), "{name}: {seen:?}");
    }
}
