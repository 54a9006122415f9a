//! Stateless item operators.

use std::sync::Arc;

use crate::Data;
use crate::engine::{BuildCtx, stateless};
use crate::flow::{StepId, StepInfo, Stream};
use crate::monitor::meter::{Meter, Timing};

/// The meter of a step that runs the user's code on every batch: items in and out, and
/// the code's time.
fn mapper_meter(ctx: &BuildCtx<'_>, info: &StepInfo) -> Meter {
    let plan = ctx.meter_plan(info);
    plan.meter()
        .counting_in(&plan)
        .counting_out(&plan)
        .timing(&plan, Timing::FlatMapBatch)
}

impl<T: Data> Stream<T> {
    /// Transforms a whole batch at once: `f` drains the input batch into the output batch.
    /// The other stateless operators are this one with a per-item loop.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![1, 2, 3]).batch_size(3))
    ///     .flat_map_batch("sum", |xs: &mut Vec<i32>, out: &mut Vec<i32>| out.push(xs.drain(..).sum()))
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![6]);
    /// ```
    pub fn flat_map_batch<U, F>(&self, step: &str, f: F) -> Stream<U>
    where
        U: Data,
        F: Fn(&mut Vec<T>, &mut Vec<U>) + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.unary_step(step, "flat_map_batch", move |ctx, info, s| {
            Ok(stateless::flat_map_batch(
                s,
                info.id.as_str(),
                ctx.step_index,
                mapper_meter(ctx, info),
                f.clone(),
            ))
        })
    }

    /// Transforms every item.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec!["a", "bb"]))
    ///     .map("len", |s: &str| s.len())
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![1, 2]);
    /// ```
    pub fn map<U, F>(&self, step: &str, f: F) -> Stream<U>
    where
        U: Data,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        self.map_batch_step(step, "map", move |inp, out| out.extend(inp.drain(..).map(&f)))
    }

    /// Keeps the items for which `f` is true.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(1..=6))
    ///     .filter("even", |x| x % 2 == 0)
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![2, 4, 6]);
    /// ```
    pub fn filter<F>(&self, step: &str, f: F) -> Stream<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.map_batch_step(step, "filter", move |inp, out| {
            out.extend(inp.drain(..).filter(|x| f(x)))
        })
    }

    /// Transforms every item and keeps the `Some`s.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec!["1", "x", "3"]))
    ///     .filter_map("parse", |s: &str| s.parse::<u32>().ok())
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![1, 3]);
    /// ```
    pub fn filter_map<U, F>(&self, step: &str, f: F) -> Stream<U>
    where
        U: Data,
        F: Fn(T) -> Option<U> + Send + Sync + 'static,
    {
        self.map_batch_step(step, "filter_map", move |inp, out| {
            out.extend(inp.drain(..).filter_map(&f))
        })
    }

    /// Transforms every item into any number of items.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec!["a b", "c"]))
    ///     .flat_map("split", |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>())
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec!["a", "b", "c"]);
    /// ```
    pub fn flat_map<U, I, F>(&self, step: &str, f: F) -> Stream<U>
    where
        U: Data,
        I: IntoIterator<Item = U>,
        F: Fn(T) -> I + Send + Sync + 'static,
    {
        self.map_batch_step(step, "flat_map", move |inp, out| {
            for item in inp.drain(..) {
                out.extend(f(item));
            }
        })
    }

    /// Calls `f(step_id, item)` for every item and passes items on unchanged. It counts
    /// as an output of the flow (as in Bytewax), so `input` then `inspect` is a complete
    /// flow.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![1]))
    ///     .inspect("see", |step, x| println!("{step}: {x}"))
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![1]);
    /// ```
    pub fn inspect<F>(&self, step: &str, f: F) -> Stream<T>
    where
        F: Fn(&StepId, &T) + Send + Sync + 'static,
    {
        self.inspect_debug(step, move |step, item, _epoch, _worker| f(step, item))
    }

    /// Calls `f(step_id, item, epoch, worker_index)` for every item and passes items on.
    /// Epochs are numbered from 1, as in Bytewax. Like [`inspect`](Self::inspect), it
    /// counts as an output of the flow: `input` then `inspect_debug` is a complete flow.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let flow = Dataflow::new("f");
    /// flow.input("inp", TestingSource::new(vec![7]))
    ///     .inspect_debug("see", move |_step, x, epoch, worker| log.lock().unwrap().push((*x, epoch, worker)))
    ///     .output("out", TestingSink::new());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(*seen.lock().unwrap(), vec![(7, 1, 0)]);
    /// ```
    pub fn inspect_debug<F>(&self, step: &str, f: F) -> Stream<T>
    where
        F: Fn(&StepId, &T, u64, usize) + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let inspected = self.unary_step(step, "inspect_debug", move |ctx, info, s| {
            let plan = ctx.meter_plan(info);
            Ok(stateless::inspect_debug(
                s,
                info.id.clone(),
                ctx.step_index,
                ctx.worker_index(),
                plan.meter().counting_in(&plan).counting_out(&plan),
                f.clone(),
            ))
        });
        // Bytewax counts an inspector as an output: a flow may end with it.
        self.flow.note_output();
        inspected
    }

    pub(crate) fn map_batch_step<U, F>(&self, step: &str, operator: &'static str, f: F) -> Stream<U>
    where
        U: Data,
        F: Fn(&mut Vec<T>, &mut Vec<U>) + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.unary_step(step, operator, move |ctx, info, s| {
            Ok(stateless::flat_map_batch(
                s,
                info.id.as_str(),
                ctx.step_index,
                mapper_meter(ctx, info),
                f.clone(),
            ))
        })
    }
}

impl<T: Data + IntoIterator> Stream<T>
where
    T::Item: Data,
{
    /// Flattens a stream of collections into a stream of their items.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![vec![1, 2], vec![], vec![3]]))
    ///     .flatten("flat")
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![1, 2, 3]);
    /// ```
    pub fn flatten(&self, step: &str) -> Stream<T::Item> {
        self.map_batch_step(step, "flatten", |inp, out| {
            for items in inp.drain(..) {
                out.extend(items);
            }
        })
    }
}
