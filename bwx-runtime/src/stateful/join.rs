//! `join`: an unwindowed keyed join of several streams.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::FlowError;
use crate::engine::stateful::stateful_batch;
use crate::engine::{BuildCtx, TStream, stateless};
use crate::flow::{Dataflow, StepInfo, Stream};
use crate::inputs::State;
use crate::{ExchangeData, Key};

use super::{StateAction, StatefulBatchLogic};

/// How a side keeps the values it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinInsertMode {
    /// Keep the first value of each side.
    First,
    /// Keep the last value of each side.
    Last,
    /// Keep every value; emit the cross product of the sides.
    Product,
}

/// When the join emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinEmitMode {
    /// Once every side has a value: emit, then forget the key.
    Complete,
    /// At EOF, with whatever each side has (`None` for an empty side).
    Final,
    /// On every value, with whatever each side has so far; the state is kept forever.
    Running,
}

struct JoinLogic<V> {
    sides: Vec<Vec<V>>,
    insert: JoinInsertMode,
    emit: JoinEmitMode,
}

impl<V: Clone> JoinLogic<V> {
    fn rows(&self, out: &mut Vec<Vec<Option<V>>>) {
        cross_rows(&self.sides, |row| out.push(row));
    }
}

/// Every combination of one value per side; an empty side contributes `None`. Shared with
/// windowing's `join_window`.
pub(crate) fn cross_rows<V: Clone>(sides: &[Vec<V>], mut emit: impl FnMut(Vec<Option<V>>)) {
    let mut rows: Vec<Vec<Option<V>>> = vec![Vec::with_capacity(sides.len())];
    for side in sides {
        if side.is_empty() {
            rows.iter_mut().for_each(|r| r.push(None));
            continue;
        }
        rows = rows
            .into_iter()
            .flat_map(|row| {
                side.iter().map(move |v| {
                    let mut row = row.clone();
                    row.push(Some(v.clone()));
                    row
                })
            })
            .collect();
    }
    rows.into_iter().for_each(&mut emit);
}

impl<V: State> StatefulBatchLogic<(usize, V), Vec<Option<V>>> for JoinLogic<V> {
    type State = (Vec<Vec<V>>, JoinInsertMode, JoinEmitMode);

    fn on_batch(
        &mut self,
        values: std::vec::Drain<'_, (usize, V)>,
        out: &mut Vec<Vec<Option<V>>>,
    ) -> StateAction {
        for (side, value) in values {
            let Some(slot) = self.sides.get_mut(side) else {
                continue;
            };
            match self.insert {
                JoinInsertMode::First if !slot.is_empty() => {}
                JoinInsertMode::First | JoinInsertMode::Product => slot.push(value),
                JoinInsertMode::Last => {
                    slot.clear();
                    slot.push(value);
                }
            }
            match self.emit {
                JoinEmitMode::Running => self.rows(out),
                JoinEmitMode::Complete if self.sides.iter().all(|s| !s.is_empty()) => {
                    self.rows(out);
                    self.sides.iter_mut().for_each(Vec::clear);
                }
                JoinEmitMode::Complete | JoinEmitMode::Final => {}
            }
        }
        if self.emit == JoinEmitMode::Complete && self.sides.iter().all(Vec::is_empty) {
            StateAction::Discard
        } else {
            StateAction::Retain
        }
    }

    fn on_eof(&mut self, out: &mut Vec<Vec<Option<V>>>) -> StateAction {
        if self.emit == JoinEmitMode::Final {
            self.rows(out);
            return StateAction::Discard;
        }
        StateAction::Retain
    }

    fn snapshot(&self) -> Self::State {
        (self.sides.clone(), self.insert, self.emit)
    }
}

impl Dataflow {
    /// Joins keyed streams of the same value type by key. Each output is
    /// `(key, [value of side 0, value of side 1, ...])`, `None` where a side has no value.
    ///
    /// ```
    /// use bwx_runtime::prelude::*;
    /// use bwx_runtime::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// let names = flow.input("names", TestingSource::new(vec![(1u32, "ann".to_string())]));
    /// let emails = flow.input("emails", TestingSource::new(vec![(1u32, "a@x".to_string())]));
    /// flow.join("user", [&names, &emails], JoinInsertMode::Last, JoinEmitMode::Complete)
    ///     .output("out", out.clone());
    /// bwx_runtime::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![(1, vec![Some("ann".to_string()), Some("a@x".to_string())])]);
    /// ```
    pub fn join<'a, K, V>(
        &self,
        step: &str,
        sides: impl IntoIterator<Item = &'a Stream<(K, V)>>,
        insert: JoinInsertMode,
        emit: JoinEmitMode,
    ) -> Stream<(K, Vec<Option<V>>)>
    where
        K: Key,
        V: ExchangeData + State,
    {
        let inputs: Vec<_> = sides.into_iter().map(|s| s.id).collect();
        let info = self.add_step(
            step,
            "join",
            inputs,
            1,
            Arc::new(move |ctx: &mut BuildCtx<'_>, info: &StepInfo| {
                let n = info.inputs.len();
                let merged = tagged_sides::<K, V>(ctx, info)?;
                let joined = stateful_batch(
                    ctx,
                    info,
                    merged,
                    Arc::new(
                        move |resume: Option<(Vec<Vec<V>>, JoinInsertMode, JoinEmitMode)>| JoinLogic {
                            sides: resume.map(|r| r.0).unwrap_or_else(|| vec![Vec::new(); n]),
                            insert,
                            emit,
                        },
                    ),
                )?;
                ctx.put(info.outputs[0], joined);
                Ok(())
            }),
        );
        self.stream(info.outputs[0])
    }
}

/// A join's input: every side's `(key, value)` tagged with the side's index.
type Tagged<'s, K, V> = TStream<'s, (K, (usize, V))>;

/// The sides of a join as one stream, each value tagged with its side's index.
pub(crate) fn tagged_sides<'s, K: Key, V: ExchangeData>(
    ctx: &BuildCtx<'s>,
    info: &StepInfo,
) -> Result<Tagged<'s, K, V>, FlowError> {
    let mut tagged = Vec::with_capacity(info.inputs.len());
    // Every side's items are the step's input.
    let plan = ctx.meter_plan(info);
    let meter = plan.meter().counting_in(&plan);
    for (side, id) in info.inputs.iter().enumerate() {
        let stream = ctx.get::<(K, V)>(info, *id)?;
        tagged.push(stateless::flat_map_batch(
            stream,
            info.id.as_str(),
            ctx.step_index,
            meter.clone(),
            Arc::new(move |inp: &mut Vec<(K, V)>, out: &mut Vec<(K, (usize, V))>| {
                out.extend(inp.drain(..).map(|(k, v)| (k, (side, v))))
            }),
        ));
    }
    Ok(if tagged.is_empty() {
        timely::dataflow::operators::generic::operator::empty(ctx.scope)
    } else {
        stateless::merge(tagged)
    })
}
