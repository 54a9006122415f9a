//! Operators that shape the flow: input, output, merge, branch, redistribute, raises.

use std::fmt::Debug;
use std::sync::Arc;

use super::connect::{IntoSink, IntoSource};
use crate::engine::{BuildCtx, stateless};
use crate::flow::{Dataflow, StepInfo, Stream};
use crate::{Data, ExchangeData};

/// The two streams of [`Stream::branch`].
#[derive(Debug, Clone)]
pub struct BranchOut<T> {
    /// Items for which the predicate was true.
    pub trues: Stream<T>,
    /// Items for which the predicate was false.
    pub falses: Stream<T>,
}

impl Dataflow {
    /// Adds a source: a [`FixedPartitionedSource`](crate::inputs::FixedPartitionedSource)
    /// or a [`DynamicSource`](crate::inputs::DynamicSource).
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(vec![1, 2])).output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![1, 2]);
    /// ```
    pub fn input<S, M>(&self, step: &str, source: S) -> Stream<S::Item>
    where
        S: IntoSource<M>,
    {
        let source = Arc::new(source);
        let build = source.clone();
        let info = self.add_step(
            step,
            "input",
            Vec::new(),
            1,
            Arc::new(move |ctx: &mut BuildCtx<'_>, info: &StepInfo| {
                let stream = build.clone().build_input(ctx, info)?;
                ctx.put(info.outputs[0], stream);
                Ok(())
            }),
        );
        self.note_input();
        if let Some(lister) = source.lister() {
            self.note_partitioned(info.id.clone(), lister);
        }
        self.stream(info.outputs[0])
    }

    /// The union of several streams of the same item type.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// let a = flow.input("a", TestingSource::new(vec![1]));
    /// let b = flow.input("b", TestingSource::new(vec![2]));
    /// flow.merge("both", [&a, &b]).output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![1, 2]);
    /// ```
    pub fn merge<'a, T: Data>(
        &self,
        step: &str,
        streams: impl IntoIterator<Item = &'a Stream<T>>,
    ) -> Stream<T> {
        let inputs: Vec<_> = streams.into_iter().map(|s| s.id).collect();
        let info = self.add_step(
            step,
            "merge",
            inputs,
            1,
            Arc::new(|ctx: &mut BuildCtx<'_>, info: &StepInfo| {
                let streams = info
                    .inputs
                    .iter()
                    .map(|id| ctx.get::<T>(info, *id))
                    .collect::<Result<Vec<_>, _>>()?;
                let merged = if streams.is_empty() {
                    timely::dataflow::operators::generic::operator::empty(ctx.scope)
                } else {
                    stateless::merge(streams)
                };
                ctx.put(info.outputs[0], merged);
                Ok(())
            }),
        );
        self.stream(info.outputs[0])
    }
}

impl<T: Data> Stream<T> {
    /// Writes the stream to a sink: a [`DynamicSink`](crate::outputs::DynamicSink) of `T`,
    /// or a [`FixedPartitionedSink`](crate::outputs::FixedPartitionedSink) when `T` is
    /// its `(key, value)`.
    pub fn output<S, M>(&self, step: &str, sink: S)
    where
        S: IntoSink<T, M>,
    {
        let sink = Arc::new(sink);
        let build = sink.clone();
        let info = self.flow.add_step(
            step,
            "output",
            vec![self.id],
            0,
            Arc::new(move |ctx: &mut BuildCtx<'_>, info: &StepInfo| {
                let stream = ctx.get::<T>(info, info.inputs[0])?;
                build.clone().build_output(ctx, info, stream)
            }),
        );
        self.flow.note_output();
        if let Some(lister) = sink.lister() {
            self.flow.note_partitioned(info.id, lister);
        }
    }

    /// Splits the stream by a predicate in one pass (a partition, not a copy of every item).
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let (evens, odds) = (TestingSink::new(), TestingSink::new());
    /// let split = flow.input("inp", TestingSource::new(1..=5)).branch("even", |x| x % 2 == 0);
    /// split.trues.output("evens", evens.clone());
    /// split.falses.output("odds", odds.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!((evens.take(), odds.take()), (vec![2, 4], vec![1, 3, 5]));
    /// ```
    pub fn branch<F>(&self, step: &str, predicate: F) -> BranchOut<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        let predicate = Arc::new(predicate);
        let info = self.flow.add_step(
            step,
            "branch",
            vec![self.id],
            2,
            Arc::new(move |ctx: &mut BuildCtx<'_>, info: &StepInfo| {
                let stream = ctx.get::<T>(info, info.inputs[0])?;
                let plan = ctx.meter_plan(info);
                let meter = plan.meter().counting_in(&plan).counting_out(&plan);
                let (trues, falses) = stateless::branch(stream, ctx.step_index, meter, predicate.clone());
                ctx.put(info.outputs[0], trues);
                ctx.put(info.outputs[1], falses);
                Ok(())
            }),
        );
        BranchOut {
            trues: self.flow.stream(info.outputs[0]),
            falses: self.flow.stream(info.outputs[1]),
        }
    }

    /// Stops the whole flow if any item arrives, with the item in the error.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::TestingSource;
    ///
    /// let flow = Dataflow::new("f");
    /// flow.input("inp", TestingSource::new(vec![1])).raises("no_items");
    /// let err = bwx::run_main(&flow).unwrap_err().to_string();
    /// assert!(err.contains("f.no_items"), "{err}");
    /// ```
    pub fn raises(&self, step: &str)
    where
        T: Debug,
    {
        self.flow.add_step(
            step,
            "raises",
            vec![self.id],
            0,
            Arc::new(|ctx: &mut BuildCtx<'_>, info: &StepInfo| {
                let stream = ctx.get::<T>(info, info.inputs[0])?;
                let plan = ctx.meter_plan(info);
                stateless::raises(
                    stream,
                    info.id.clone(),
                    ctx.step_index,
                    plan.meter().counting_in(&plan),
                );
                Ok(())
            }),
        );
        self.flow.note_output();
    }
}

impl<T: ExchangeData> Stream<T> {
    /// Spreads items evenly over all workers, to balance expensive stateless work.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// flow.input("inp", TestingSource::new(0..4)).redistribute("spread").output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![0, 1, 2, 3]);
    /// ```
    pub fn redistribute(&self, step: &str) -> Stream<T> {
        self.unary_step(step, "redistribute", |ctx, info, s| {
            let plan = ctx.meter_plan(info);
            let meter = plan.meter().counting_in(&plan).counting_out(&plan);
            Ok(stateless::redistribute(s, info.id.as_str(), meter))
        })
    }
}
