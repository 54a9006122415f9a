//! `open` taking the resume state, any error type, generic partitions, `open`'s own
//! parameters (a sink's key type), and a hand-written `snapshot`.
use std::fmt::Display;
use std::sync::{Arc, Mutex};

use bwx::inputs::BatchStatus;
use bwx::prelude::*;

#[derive(Debug)]
pub struct Exhausted;

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("exhausted")
    }
}

impl std::error::Error for Exhausted {}

/// Replays items of any type; resumes by seeking to the stored index.
pub struct Replay<T>(Vec<T>);

#[bwx::source]
pub struct ReplayPart<T> {
    items: Vec<T>,
    #[state]
    next: usize,
}

#[bwx::source]
impl<T: Data + Sync> ReplayPart<T> {
    fn open(source: &Replay<T>, _part: &str, resume: Option<ReplayPartState>) -> Result<Self, Exhausted> {
        let next = resume.map_or(0, |r| r.next);
        if next > source.0.len() {
            return Err(Exhausted);
        }
        Ok(ReplayPart { items: source.0.clone(), next })
    }

    fn next_batch(&mut self, batch: &mut Vec<T>) -> Result<BatchStatus, Exhausted> {
        batch.extend(self.items.get(self.next).cloned());
        self.next += 1;
        Ok(if self.next >= self.items.len() { BatchStatus::Eof } else { BatchStatus::Active })
    }
}

/// Collects `Display` values of any key type; counts snapshots.
pub struct Lines<K, V> {
    out: Arc<Mutex<Vec<String>>>,
    _kv: std::marker::PhantomData<fn(K, V)>,
}

#[bwx::sink]
pub struct LinesPart<V> {
    out: Arc<Mutex<Vec<String>>>,
    #[state]
    written: u64,
    snapshots: std::cell::Cell<u64>,
    _v: std::marker::PhantomData<fn(V)>,
}

#[bwx::sink(key = K)]
impl<V: ExchangeData + Display> LinesPart<V> {
    fn open<K: Key>(sink: &Lines<K, V>, _part: &str) -> Result<Self, std::io::Error> {
        Ok(LinesPart {
            out: sink.out.clone(),
            written: 0,
            snapshots: Default::default(),
            _v: std::marker::PhantomData,
        })
    }

    fn write_batch(&mut self, batch: &mut Vec<V>) -> Result<(), std::io::Error> {
        let mut out = self.out.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        for v in batch.drain(..) {
            out.push(v.to_string());
            self.written += 1;
        }
        Ok(())
    }

    fn snapshot(&self) -> LinesPartState {
        self.snapshots.set(self.snapshots.get() + 1);
        LinesPartState { written: self.written }
    }
}

fn main() {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink: Lines<u32, u32> = Lines { out: out.clone(), _kv: std::marker::PhantomData };
    let flow = bwx::dataflow!(ext {
        nums  = input(Replay(vec![1u32, 2, 3]));
        keyed = nums.key_on(|n| *n);
        out   = keyed.output(sink);
    });
    bwx::run_main(&flow).unwrap();
    assert_eq!(*out.lock().unwrap(), vec!["1", "2", "3"]);

    // The stored index goes to `open`, which seeks; a bad one is `open`'s own error.
    let source = Replay(vec!['a', 'b', 'c']);
    let step = flow.steps()[0].id.clone();
    let mut part = source.build_part(&step, "singleton", Some(ReplayPartState { next: 2 })).unwrap();
    let mut batch = Vec::new();
    assert_eq!(part.next_batch(&mut batch).unwrap(), BatchStatus::Eof);
    assert_eq!(batch, vec!['c']);
    let err = source.build_part(&step, "singleton", Some(ReplayPartState { next: 9 }));
    assert_eq!(err.err().unwrap().to_string(), "exhausted");
}
