//! A sink that keeps the last value per key on each worker, merged after the run.

use rustc_hash::FxHashMap as HashMap;
use std::hash::Hash;
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
