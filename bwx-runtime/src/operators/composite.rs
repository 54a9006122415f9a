//! Composite operators: steps packaged as an operator of their own (Bytewax's `@operator`),
//! with nested step ids and a checked boundary.
//!
//! [`Dataflow::operator`] runs a closure that adds steps under the operator's name:
//! an operator `mean` called as step `avg` of flow `f` names its inner `stateful_map` step
//! `f.avg.stateful_map` (in logs, errors and recovery state). Streams cross the boundary
//! only as the operator's arguments and results ([`Streams`]): a step inside that reads a
//! stream of the caller it was not given, or a step outside that reads a stream made
//! inside and not returned, is an error when the flow is checked, naming the step and the
//! stream.
//!
//! `#[bwx::operator]` writes the same as a function, which `dataflow!` calls like a
//! built-in operator.

use crate::FlowError;
use crate::flow::{Dataflow, Scope, StepId, Stream, StreamId};
use crate::operators::BranchOut;
use crate::windowing::WindowOut;

/// Values made of streams that cross the boundary of a composite operator: its arguments
/// and its results. Implemented for [`Stream`], references, `()`, tuples, arrays, slices,
/// `Vec`, `Option`, `Result` (its `Ok`), [`BranchOut`] and [`WindowOut`]. For a struct of
/// streams of your own, list its streams:
///
/// ```
/// use bwx::prelude::*;
/// use bwx::StreamId;
/// use bwx::operators::composite::Streams;
///
/// /// The two results of an operator that splits readings into good and bad ones.
/// struct Checked {
///     good: Stream<f64>,
///     bad: Stream<String>,
/// }
///
/// impl Streams for Checked {
///     fn stream_ids(&self, ids: &mut Vec<StreamId>) {
///         self.good.stream_ids(ids);
///         self.bad.stream_ids(ids);
///     }
/// }
///
/// let flow = Dataflow::new("f");
/// let readings = flow.input("inp", bwx::testing::TestingSource::new(vec![1.5, f64::NAN]));
/// let checked = flow.operator("check", &readings, |readings| {
///     let split = readings.branch("finite", |x: &f64| x.is_finite());
///     Checked { good: split.trues, bad: split.falses.map("describe", |x: f64| format!("not a reading: {x}")) }
/// });
/// let (good, bad) = (bwx::testing::TestingSink::new(), bwx::testing::TestingSink::new());
/// checked.good.output("good", good.clone());
/// checked.bad.output("bad", bad.clone());
/// bwx::run_main(&flow).unwrap();
/// assert_eq!(good.take(), vec![1.5]);
/// assert_eq!(bad.take(), vec!["not a reading: NaN".to_string()]);
/// ```
pub trait Streams {
    /// Appends the ids of the streams in `self`.
    fn stream_ids(&self, ids: &mut Vec<StreamId>);
}

impl<T> Streams for Stream<T> {
    fn stream_ids(&self, ids: &mut Vec<StreamId>) {
        ids.push(self.id);
    }
}

impl<S: Streams + ?Sized> Streams for &S {
    fn stream_ids(&self, ids: &mut Vec<StreamId>) {
        (**self).stream_ids(ids);
    }
}

impl<S: Streams> Streams for [S] {
    fn stream_ids(&self, ids: &mut Vec<StreamId>) {
        self.iter().for_each(|s| s.stream_ids(ids));
    }
}

impl<S: Streams, const N: usize> Streams for [S; N] {
    fn stream_ids(&self, ids: &mut Vec<StreamId>) {
        self.iter().for_each(|s| s.stream_ids(ids));
    }
}

impl<S: Streams> Streams for Vec<S> {
    fn stream_ids(&self, ids: &mut Vec<StreamId>) {
        self.iter().for_each(|s| s.stream_ids(ids));
    }
}

impl<S: Streams> Streams for Option<S> {
    fn stream_ids(&self, ids: &mut Vec<StreamId>) {
        if let Some(s) = self {
            s.stream_ids(ids);
        }
    }
}

impl<S: Streams, E> Streams for Result<S, E> {
    fn stream_ids(&self, ids: &mut Vec<StreamId>) {
        if let Ok(s) = self {
            s.stream_ids(ids);
        }
    }
}

impl<T> Streams for BranchOut<T> {
    fn stream_ids(&self, ids: &mut Vec<StreamId>) {
        ids.extend([self.trues.id, self.falses.id]);
    }
}

impl<K, V, R> Streams for WindowOut<K, V, R> {
    fn stream_ids(&self, ids: &mut Vec<StreamId>) {
        ids.extend([self.down.id, self.late.id, self.meta.id]);
    }
}

macro_rules! tuple_streams {
    ($($S:ident $i:tt),*) => {
        impl<$($S: Streams),*> Streams for ($($S,)*) {
            #[allow(unused_variables)]
            fn stream_ids(&self, ids: &mut Vec<StreamId>) {
                $(self.$i.stream_ids(ids);)*
            }
        }
    };
}

tuple_streams!();
tuple_streams!(A 0);
tuple_streams!(A 0, B 1);
tuple_streams!(A 0, B 1, C 2);
tuple_streams!(A 0, B 1, C 2, D 3);
tuple_streams!(A 0, B 1, C 2, D 3, E 4);
tuple_streams!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_streams!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_streams!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

/// Leaves an operator's scope when dropped, also when its body panics.
struct Leave<'a> {
    flow: &'a Dataflow,
    caller: usize,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.flow.lock().current = self.caller;
    }
}

impl Dataflow {
    /// Calls a composite operator: `body` gets `inputs` and adds its steps under `step`
    /// (ids `flow.step.inner`), and its result is the operator's. Bytewax's `@operator`
    /// as a closure; `#[bwx::operator]` writes it as a function.
    ///
    /// Steps inside may read only `inputs` and what they make themselves; steps outside
    /// may read only the streams the operator returns. Anything else is an error naming
    /// the step and the stream when the flow is checked. Build a flow on one thread: the
    /// operator being called is the flow's, not the thread's.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// let readings = flow.input("inp", TestingSource::new(vec![("a".to_string(), 1.0), ("a".to_string(), 3.0)]));
    /// // A running mean per key, packaged as one operator.
    /// let means = flow.operator("mean", &readings, |readings| {
    ///     readings.stateful_map("stateful_map", |state: Option<(f64, u32)>, x: f64| {
    ///         let (sum, n) = state.unwrap_or((0.0, 0));
    ///         (Some((sum + x, n + 1)), (sum + x) / f64::from(n + 1))
    ///     })
    /// });
    /// means.output("out", out.clone());
    /// assert!(flow.steps().iter().any(|s| s.id.as_str() == "f.mean.stateful_map"));
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![("a".to_string(), 1.0), ("a".to_string(), 2.0)]);
    /// ```
    pub fn operator<I, R>(&self, step: &str, inputs: I, body: impl FnOnce(I) -> R) -> R
    where
        I: Streams,
        R: Streams,
    {
        let mut passed = Vec::new();
        inputs.stream_ids(&mut passed);
        let (scope, caller) = self.enter_operator(step, passed);
        let leave = Leave { flow: self, caller };
        let out = body(inputs);
        let mut returned = Vec::new();
        out.stream_ids(&mut returned);
        self.leave_operator(scope, caller, &returned);
        drop(leave);
        out
    }

    /// Opens the scope of an operator called as `step` in the current scope, given the
    /// `passed` streams; returns it and the caller's scope.
    fn enter_operator(&self, step: &str, passed: Vec<StreamId>) -> (usize, usize) {
        let mut g = self.lock();
        let caller = g.current;
        let id = StepId::new(format!("{}.{step}", g.scopes[caller].id));
        if let Err(why) = crate::flow::check_name(step) {
            g.errors.push(FlowError::BadStepName {
                name: step.to_string(),
                why,
            });
        }
        g.check_unique(&id, "a composite operator");
        for stream in &passed {
            if let Err(problem) = g.readable(*stream, caller) {
                let problem = format!("is given a stream it may not read: it {}", strip_verb(&problem));
                g.errors.push(FlowError::OutOfScope {
                    step: id.to_string(),
                    problem,
                });
            }
        }
        g.scopes.push(Scope {
            id,
            parent: Some(caller),
            passed_in: passed,
        });
        g.current = g.scopes.len() - 1;
        (g.current, caller)
    }

    /// Closes an operator's scope: the streams it made and returns now belong to the
    /// caller; returning any other stream is an error.
    fn leave_operator(&self, scope: usize, caller: usize, returned: &[StreamId]) {
        let mut g = self.lock();
        for stream in returned {
            let home = g.stream_scope.get(stream.0).copied();
            if home == Some(scope) {
                g.stream_scope[stream.0] = caller;
            } else if let Err(problem) = g.readable(*stream, scope) {
                let problem = format!("returns a stream it may not read: it {}", strip_verb(&problem));
                let step = g.scopes[scope].id.to_string();
                g.errors.push(FlowError::OutOfScope { step, problem });
            }
        }
        g.current = caller;
    }
}

/// `reads the stream of ...` without its verb, to be said with another.
fn strip_verb(problem: &str) -> &str {
    problem.strip_prefix("reads ").unwrap_or(problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestingSink, TestingSource};

    fn ids(flow: &Dataflow) -> Vec<String> {
        flow.steps().iter().map(|s| s.id.to_string()).collect()
    }

    #[test]
    fn nested_operators_nest_their_step_ids() {
        let flow = Dataflow::new("f");
        let nums = flow.input("inp", TestingSource::new(vec![1u32, 2]));
        let out = TestingSink::new();
        let doubled = flow.operator("outer", &nums, |nums| {
            let plus = nums.map("plus", |x| x + 1);
            flow.operator("inner", plus, |plus| plus.map("double", |x| x * 2))
        });
        doubled.output("out", out.clone());
        assert_eq!(
            ids(&flow),
            vec!["f.inp", "f.outer.plus", "f.outer.inner.double", "f.out"]
        );
        crate::run_main(&flow).unwrap();
        assert_eq!(out.take(), vec![4, 6]);
    }

    #[test]
    fn a_stream_from_outside_that_was_not_passed_in_is_an_error() {
        let flow = Dataflow::new("f");
        let nums = flow.input("inp", TestingSource::new(vec![1u32]));
        let other = nums.map("other", |x| x);
        let sum = flow.operator("op", &nums, |nums| {
            // `other` was not given to the operator.
            flow.merge("both", [nums, &other])
        });
        sum.output("out", TestingSink::new());
        let err = flow.check().unwrap_err().to_string();
        assert_eq!(
            err,
            "step 'f.op.both' reads the stream of 'f.other', made outside operator 'f.op'; pass it to the operator as an argument"
        );
    }

    #[test]
    fn a_stream_made_inside_and_not_returned_is_an_error_outside() {
        let flow = Dataflow::new("f");
        let nums = flow.input("inp", TestingSource::new(vec![1u32]));
        let mut leaked = None;
        let kept = flow.operator("op", &nums, |nums| {
            leaked = Some(nums.map("hidden", |x| x + 1));
            nums.map("shown", |x| x)
        });
        kept.output("out", TestingSink::new());
        leaked.unwrap().output("leak", TestingSink::new());
        let err = flow.check().unwrap_err().to_string();
        assert_eq!(
            err,
            "step 'f.leak' reads the stream of 'f.op.hidden', made inside operator 'f.op' and not returned by it; return it from the operator to use it here"
        );
    }

    #[test]
    fn an_operator_id_is_unique_among_step_ids() {
        let flow = Dataflow::new("f");
        let nums = flow.input("inp", TestingSource::new(vec![1u32]));
        let a = flow.operator("inp", &nums, |nums| nums.map("x", |x| x));
        a.output("out", TestingSink::new());
        let err = flow.check().unwrap_err().to_string();
        assert!(err.starts_with("duplicate step id 'f.inp'"), "{err}");
    }

    #[test]
    fn a_panicking_body_leaves_the_operator() {
        let flow = Dataflow::new("f");
        let nums = flow.input("inp", TestingSource::new(vec![1u32]));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            flow.operator("op", &nums, |_nums| -> Stream<u32> { panic!("bad operator") })
        }));
        assert!(caught.is_err());
        nums.output("out", TestingSink::new());
        assert_eq!(ids(&flow), vec!["f.inp", "f.out"]);
    }
}
