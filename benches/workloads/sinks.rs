//! A sink that keeps the last value per key on each worker, merged after the run.

use rustc_hash::FxHashMap as HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use bwx::StepId;
use bwx::inputs::ConnectorError;
use bwx::outputs::{DynamicSink, StatelessSinkPartition};

/// Keeps the last value per key and counts the items written.
pub struct LastPerKey<K, V> {
    merged: Arc<Mutex<(u64, HashMap<K, V>)>>,
}

impl<K, V> Clone for LastPerKey<K, V> {
    fn clone(&self) -> Self {
        LastPerKey {
            merged: self.merged.clone(),
        }
    }
}

impl<K: Eq + Hash, V> LastPerKey<K, V> {
    pub fn new() -> Self {
        LastPerKey {
            merged: Arc::new(Mutex::new((0, HashMap::default()))),
        }
    }

    pub fn take(&self) -> (u64, HashMap<K, V>) {
        std::mem::take(&mut *self.merged.lock().unwrap())
    }
}

impl<K: bwx::Data + Eq + Hash, V: bwx::Data> DynamicSink for LastPerKey<K, V> {
    type Item = (K, V);
    type Partition = LastPerKeyPart<K, V>;

    fn build(
        &self,
        _step: &StepId,
        _worker: usize,
        _workers: usize,
    ) -> Result<Self::Partition, ConnectorError> {
        Ok(LastPerKeyPart {
            written: 0,
            local: HashMap::default(),
            merged: self.merged.clone(),
        })
    }
}

pub struct LastPerKeyPart<K, V> {
    written: u64,
    local: HashMap<K, V>,
    merged: Arc<Mutex<(u64, HashMap<K, V>)>>,
}

impl<K: Eq + Hash + 'static, V: 'static> StatelessSinkPartition for LastPerKeyPart<K, V> {
    type Item = (K, V);

    fn write_batch(&mut self, items: &mut Vec<(K, V)>) -> Result<(), ConnectorError> {
        self.written += items.len() as u64;
        self.local.extend(items.drain(..));
        Ok(())
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        let mut merged = self.merged.lock().unwrap();
        merged.0 += self.written;
        merged.1.extend(self.local.drain());
        Ok(())
    }
}

/// Counts the `(key, mean)` items written and sums a hash of each (order-independent): a
/// sink that keeps nothing per key.
#[derive(Clone, Default)]
pub struct Checksum {
    merged: Arc<Mutex<(u64, u64)>>,
}

impl Checksum {
    /// The items written and their checksum.
    pub fn take(&self) -> (u64, u64) {
        *self.merged.lock().unwrap()
    }
}

impl DynamicSink for Checksum {
    type Item = (u32, f64);
    type Partition = ChecksumPart;

    fn build(&self, _step: &StepId, _worker: usize, _workers: usize) -> Result<ChecksumPart, ConnectorError> {
        Ok(ChecksumPart {
            local: (0, 0),
            merged: self.merged.clone(),
        })
    }
}

pub struct ChecksumPart {
    local: (u64, u64),
    merged: Arc<Mutex<(u64, u64)>>,
}

impl StatelessSinkPartition for ChecksumPart {
    type Item = (u32, f64);

    fn write_batch(&mut self, items: &mut Vec<(u32, f64)>) -> Result<(), ConnectorError> {
        for (key, mean) in items.drain(..) {
            let mut hasher = rustc_hash::FxHasher::default();
            (key, mean.to_bits()).hash(&mut hasher);
            self.local.0 += 1;
            self.local.1 = self.local.1.wrapping_add(hasher.finish());
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        let mut merged = self.merged.lock().map_err(|_| "checksum sink poisoned")?;
        merged.0 += self.local.0;
        merged.1 = merged.1.wrapping_add(self.local.1);
        Ok(())
    }
}
