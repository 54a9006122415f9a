//! `TestingSink`: collects every item into a shared list.

use std::sync::{Arc, Mutex};

use crate::Data;
use crate::flow::StepId;
use crate::inputs::ConnectorError;
use crate::outputs::{DynamicSink, StatelessSinkPartition};

/// A dynamic sink that appends every item to a list shared by all workers of this process.
/// Clone it before handing it to the flow, then [`take`](Self::take) the items.
pub struct TestingSink<T> {
    items: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for TestingSink<T> {
    fn clone(&self) -> Self {
        TestingSink {
            items: self.items.clone(),
        }
    }
}

impl<T> Default for TestingSink<T> {
    fn default() -> Self {
        TestingSink {
            items: Arc::default(),
        }
    }
}

impl<T> TestingSink<T> {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes and returns the items written so far, in arrival order.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.items.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl<T: Data> DynamicSink for TestingSink<T> {
    type Item = T;
    type Partition = TestingSinkPartition<T>;

    fn build(
        &self,
        _step: &StepId,
        _worker: usize,
        _workers: usize,
    ) -> Result<Self::Partition, ConnectorError> {
        Ok(TestingSinkPartition {
            items: self.items.clone(),
        })
    }
}

/// A worker's partition of a [`TestingSink`].
pub struct TestingSinkPartition<T> {
    items: Arc<Mutex<Vec<T>>>,
}

impl<T: 'static> StatelessSinkPartition for TestingSinkPartition<T> {
    type Item = T;

    fn write_batch(&mut self, items: &mut Vec<T>) -> Result<(), ConnectorError> {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).append(items);
        Ok(())
    }
}
