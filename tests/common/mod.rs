//! Shared by the integration tests that run flows in child processes.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

pub mod flow_binary;
pub mod numbers;

use std::fmt::Display;
use std::io::Write;
use std::marker::PhantomData;

use bwx::inputs::ConnectorError;
use bwx::outputs::{DynamicSink, StatelessSinkPartition};
use bwx::prelude::*;

/// A sink that prints every item as `{prefix}{item}` on stdout, so a parent process can
/// read them from the child's captured output.
pub struct PrintSink<T> {
    prefix: &'static str,
    item: PhantomData<fn(T)>,
}

impl<T> PrintSink<T> {
    pub fn new(prefix: &'static str) -> Self {
        PrintSink {
            prefix,
            item: PhantomData,
        }
    }
}

impl<T: Data + Display> DynamicSink for PrintSink<T> {
    type Item = T;
    type Partition = PrintPart<T>;

    /// Also prints `partition: {worker} of {workers}`, so a test can see how many workers ran.
    fn build(&self, _: &StepId, worker: usize, workers: usize) -> Result<PrintPart<T>, ConnectorError> {
        println!("partition: {worker} of {workers}");
        Ok(PrintPart {
            prefix: self.prefix,
            item: PhantomData,
        })
    }
}

pub struct PrintPart<T> {
    prefix: &'static str,
    item: PhantomData<fn(T)>,
}

impl<T: Display + 'static> StatelessSinkPartition for PrintPart<T> {
    type Item = T;

    fn write_batch(&mut self, items: &mut Vec<T>) -> Result<(), ConnectorError> {
        let mut out = std::io::stdout().lock();
        for item in items.drain(..) {
            writeln!(out, "{}{}", self.prefix, item)?;
        }
        out.flush()?;
        Ok(())
    }
}
