//! A single-partition source (no `list_parts`) and a sink with `key = Type`.
use std::sync::{Arc, Mutex};

use bwx::inputs::{BatchStatus, ConnectorError};

pub struct Countdown(u32);

#[bwx::source]
pub struct CountdownPart {
    #[state]
    left: u32,
}

#[bwx::source]
impl CountdownPart {
    fn open(source: &Countdown, _part: &str) -> Result<Self, ConnectorError> {
        Ok(CountdownPart { left: source.0 })
    }

    fn next_batch(&mut self, batch: &mut Vec<u32>) -> Result<BatchStatus, ConnectorError> {
        if self.left == 0 {
            return Ok(BatchStatus::Eof);
        }
        batch.push(self.left);
        self.left -= 1;
        Ok(BatchStatus::Active)
    }

    fn next_awake(&self) -> Option<std::time::SystemTime> {
        None
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

#[derive(Clone, Default)]
pub struct Collect(Arc<Mutex<Vec<u32>>>);

#[bwx::sink(key = u32)]
pub struct CollectPart {
    out: Collect,
}

#[bwx::sink(key = u32)]
impl CollectPart {
    fn open(sink: &Collect, _part: &str) -> Result<Self, ConnectorError> {
        Ok(CollectPart { out: sink.clone() })
    }

    fn write_batch(&mut self, batch: &mut Vec<u32>) -> Result<(), ConnectorError> {
        self.out.0.lock().map_err(|_| "poisoned")?.extend(batch.drain(..));
        Ok(())
    }
}

fn main() {
    let sink = Collect::default();
    let flow = bwx::dataflow!(countdown {
        nums  = input(Countdown(3));
        keyed = nums.key_on(|n| *n);
        out   = keyed.output(sink.clone());
    });
    bwx::run_main(&flow).unwrap();
    let mut got = sink.0.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, vec![1, 2, 3]);
}
