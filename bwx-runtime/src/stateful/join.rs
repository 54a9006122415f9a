//! `join`: an unwindowed keyed join of streams whose values may be of different types.
//!
//! The sides are a tuple of keyed streams with one key type, `(&a, &b, ...)` (2 to 6
//! sides); a row is a tuple with one value per side. Whether a side may be missing from a
//! row depends on the emit mode, so the mode is a value of its own type:
//!
//! | mode | emits | row of `(&Stream<(K, A)>, &Stream<(K, B)>)` |
//! |---|---|---|
//! | [`JoinEmitMode::Complete`] | once every side has a value, then forgets the key | `(A, B)` |
//! | [`JoinEmitMode::Final`] | at EOF, with what each side has | `(Option<A>, Option<B>)` |
//! | [`JoinEmitMode::Running`] | on every value, with what each side has so far | `(Option<A>, Option<B>)` |

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::stateful::stateful_batch;
use crate::engine::{BuildCtx, TStream, stateless};
use crate::flow::{Dataflow, StepInfo, Stream, StreamId};
use crate::inputs::State;
use crate::monitor::meter::Meter;
use crate::{Data, ExchangeData, FlowError, Key};

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

/// When a join emits: `JoinEmitMode::Complete`, `JoinEmitMode::Final` or
/// `JoinEmitMode::Running` (Bytewax's `emit_mode`). Each is a value of its own type
/// ([`EmitComplete`], [`EmitFinal`], [`EmitRunning`]), so that the type of a join's rows
/// follows the mode: only `Complete` rows have a value on every side.
#[derive(Debug)]
pub enum JoinEmitMode {}

#[allow(non_upper_case_globals)]
impl JoinEmitMode {
    /// Once every side has a value: emit, then forget the key (in a window: start over).
    /// Rows have a value on every side.
    pub const Complete: EmitComplete = EmitComplete;
    /// At EOF (in a window: when it closes), with whatever each side has; rows have
    /// `None` for an empty side.
    pub const Final: EmitFinal = EmitFinal;
    /// On every value, with whatever each side has so far; the state is kept (until EOF
    /// or the window closes). Rows have `None` for an empty side.
    pub const Running: EmitRunning = EmitRunning;
}

/// The type of [`JoinEmitMode::Complete`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmitComplete;
/// The type of [`JoinEmitMode::Final`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmitFinal;
/// The type of [`JoinEmitMode::Running`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmitRunning;

/// The mode of a [`JoinEmit`] as a value, for the logic's branches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Complete,
    Final,
    Running,
}

/// An emit mode of a join: what its rows are and when they are made. Implemented by the
/// three values of [`JoinEmitMode`].
pub trait JoinEmit: Copy + Send + Sync + 'static {
    /// A row, given the row with a value on every side (`C`) and the row with an
    /// `Option` per side (`P`).
    type Row<C: Data, P: Data>: Data;

    #[doc(hidden)]
    #[allow(private_interfaces)]
    const MODE: Mode;

    /// Emits the rows of the values each side holds.
    #[doc(hidden)]
    fn rows<S: JoinSlots>(slots: &S, emit: &mut impl FnMut(Self::Row<S::Complete, S::Partial>));
}

impl JoinEmit for EmitComplete {
    type Row<C: Data, P: Data> = C;
    #[allow(private_interfaces)]
    const MODE: Mode = Mode::Complete;

    fn rows<S: JoinSlots>(slots: &S, emit: &mut impl FnMut(S::Complete)) {
        slots.complete_rows(emit);
    }
}

impl JoinEmit for EmitFinal {
    type Row<C: Data, P: Data> = P;
    #[allow(private_interfaces)]
    const MODE: Mode = Mode::Final;

    fn rows<S: JoinSlots>(slots: &S, emit: &mut impl FnMut(S::Partial)) {
        slots.partial_rows(emit);
    }
}

impl JoinEmit for EmitRunning {
    type Row<C: Data, P: Data> = P;
    #[allow(private_interfaces)]
    const MODE: Mode = Mode::Running;

    fn rows<S: JoinSlots>(slots: &S, emit: &mut impl FnMut(S::Partial)) {
        slots.partial_rows(emit);
    }
}

/// The values a key holds for each side of a join: a tuple of `Vec`s, one per side. It is
/// the join's recovery state.
pub trait JoinSlots: State + Default {
    /// A value of one side, tagged with its side: [`Side2`] ... [`Side6`].
    type Tagged: ExchangeData + State;
    /// A row with a value on every side: `(A, B, ...)`.
    type Complete: Data;
    /// A row with an `Option` per side: `(Option<A>, Option<B>, ...)`.
    type Partial: Data;

    /// Adds a value to its side.
    fn insert(&mut self, value: Self::Tagged, mode: JoinInsertMode);
    /// Adds every value of `other`, side by side (sessions merging).
    fn absorb(&mut self, other: Self, mode: JoinInsertMode);
    /// Whether every side has a value.
    fn all_filled(&self) -> bool;
    /// Whether no side has a value.
    fn is_empty(&self) -> bool;
    /// Forgets every value.
    fn clear(&mut self);
    /// Every combination of one value per side (none if a side is empty).
    fn complete_rows(&self, emit: &mut impl FnMut(Self::Complete));
    /// Every combination of one value per side, `None` for an empty side.
    fn partial_rows(&self, emit: &mut impl FnMut(Self::Partial));
}

/// The sides of a join: a tuple of keyed streams with the key type `K`.
#[diagnostic::on_unimplemented(
    message = "the sides of a join must be a tuple of 2 to 6 keyed streams with one key type, `(&Stream<(K, A)>, &Stream<(K, B)>, ...)`",
    label = "not a tuple of keyed streams with the same key"
)]
pub trait JoinSides<K: Key> {
    /// What each key holds.
    type Slots: JoinSlots;

    /// The streams, in side order.
    fn stream_ids(&self) -> Vec<StreamId>;

    /// The sides as one stream of tagged values.
    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn merged<'s>(ctx: &BuildCtx<'s>, info: &StepInfo) -> Result<Tagged<'s, K, Self::Slots>, FlowError>;
}

/// The sides of a join as one stream of values tagged with their side.
type Tagged<'s, K, S> = TStream<'s, (K, <S as JoinSlots>::Tagged)>;

/// Adds `value` to a side's values as `mode` says.
fn insert_into<V>(side: &mut Vec<V>, value: V, mode: JoinInsertMode) {
    match mode {
        JoinInsertMode::First if !side.is_empty() => {}
        JoinInsertMode::First | JoinInsertMode::Product => side.push(value),
        JoinInsertMode::Last => {
            side.clear();
            side.push(value);
        }
    }
}

/// Steps `index` to the next combination of side positions (the last side fastest); false
/// after the last one.
fn advance(index: &mut [usize], lens: &[usize]) -> bool {
    for k in (0..index.len()).rev() {
        index[k] += 1;
        if index[k] < lens[k] {
            return true;
        }
        index[k] = 0;
    }
    false
}

/// Side `index` of a join, its values wrapped by `tag`.
fn tag_side<'s, K: Key, V: ExchangeData, X: Data>(
    ctx: &BuildCtx<'s>,
    info: &StepInfo,
    index: usize,
    tag: fn(V) -> X,
    meter: Meter,
) -> Result<TStream<'s, (K, X)>, FlowError> {
    Ok(stateless::flat_map_batch(
        ctx.get::<(K, V)>(info, info.inputs[index])?,
        info.id.as_str(),
        ctx.step_index,
        meter,
        Arc::new(move |inp: &mut Vec<(K, V)>, out: &mut Vec<(K, X)>| {
            out.extend(inp.drain(..).map(|(k, v)| (k, tag(v))))
        }),
    ))
}

macro_rules! join_arity {
    ($n:literal, $Side:ident; $($T:ident $i:tt),+) => {
        /// A value of one side of a join, tagged with its side (`A` is the first side); the
        /// items of a join's `late` stream, and what a `join_window` clock reads (see
        /// [`each_side`](crate::windowing::each_side)).
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $Side<$($T),+> {
            $(
                #[allow(missing_docs)]
                $T($T),
            )+
        }

        impl<$($T: ExchangeData + State),+> JoinSlots for ($(Vec<$T>,)+) {
            type Tagged = $Side<$($T),+>;
            type Complete = ($($T,)+);
            type Partial = ($(Option<$T>,)+);

            fn insert(&mut self, value: Self::Tagged, mode: JoinInsertMode) {
                match value {
                    $($Side::$T(v) => insert_into(&mut self.$i, v, mode),)+
                }
            }

            fn absorb(&mut self, other: Self, mode: JoinInsertMode) {
                $(
                    for v in other.$i {
                        insert_into(&mut self.$i, v, mode);
                    }
                )+
            }

            fn all_filled(&self) -> bool {
                $(!self.$i.is_empty())&&+
            }

            fn is_empty(&self) -> bool {
                $(self.$i.is_empty())&&+
            }

            fn clear(&mut self) {
                $(self.$i.clear();)+
            }

            fn complete_rows(&self, emit: &mut impl FnMut(Self::Complete)) {
                let lens = [$(self.$i.len()),+];
                if lens.contains(&0) {
                    return;
                }
                let mut index = [0usize; $n];
                loop {
                    emit(($(self.$i[index[$i]].clone(),)+));
                    if !advance(&mut index, &lens) {
                        return;
                    }
                }
            }

            fn partial_rows(&self, emit: &mut impl FnMut(Self::Partial)) {
                // An empty side counts once, as `None`.
                let lens = [$(self.$i.len().max(1)),+];
                let mut index = [0usize; $n];
                loop {
                    emit(($(self.$i.get(index[$i]).cloned(),)+));
                    if !advance(&mut index, &lens) {
                        return;
                    }
                }
            }
        }

        impl<'a, K: Key, $($T: ExchangeData + State),+> JoinSides<K> for ($(&'a Stream<(K, $T)>,)+) {
            type Slots = ($(Vec<$T>,)+);

            fn stream_ids(&self) -> Vec<StreamId> {
                vec![$(self.$i.id),+]
            }

            #[allow(private_interfaces)]
            fn merged<'s>(
                ctx: &BuildCtx<'s>,
                info: &StepInfo,
            ) -> Result<TStream<'s, (K, $Side<$($T),+>)>, FlowError> {
                // Every side's items are the step's input: one meter counts them all.
                let plan = ctx.meter_plan(info);
                let meter = plan.meter().counting_in(&plan);
                Ok(stateless::merge(vec![$(tag_side(ctx, info, $i, $Side::$T, meter.clone())?),+]))
            }
        }
    };
}

join_arity!(2, Side2; A 0, B 1);
join_arity!(3, Side3; A 0, B 1, C 2);
join_arity!(4, Side4; A 0, B 1, C 2, D 3);
join_arity!(5, Side5; A 0, B 1, C 2, D 3, E 4);
join_arity!(6, Side6; A 0, B 1, C 2, D 3, E 4, F 5);

/// A row of a join of sides `S` in mode `E`.
pub type JoinRow<S, E> = <E as JoinEmit>::Row<<S as JoinSlots>::Complete, <S as JoinSlots>::Partial>;

struct JoinLogic<S, E> {
    slots: S,
    insert: JoinInsertMode,
    _emit: E,
}

impl<S: JoinSlots, E: JoinEmit> StatefulBatchLogic<S::Tagged, JoinRow<S, E>> for JoinLogic<S, E> {
    type State = S;

    fn on_batch(
        &mut self,
        values: std::vec::Drain<'_, S::Tagged>,
        out: &mut Vec<JoinRow<S, E>>,
    ) -> StateAction {
        for value in values {
            self.slots.insert(value, self.insert);
            match E::MODE {
                Mode::Running => E::rows(&self.slots, &mut |row| out.push(row)),
                Mode::Complete if self.slots.all_filled() => {
                    E::rows(&self.slots, &mut |row| out.push(row));
                    self.slots.clear();
                }
                Mode::Complete | Mode::Final => {}
            }
        }
        if E::MODE == Mode::Complete && self.slots.is_empty() {
            StateAction::Discard
        } else {
            StateAction::Retain
        }
    }

    fn on_eof(&mut self, out: &mut Vec<JoinRow<S, E>>) -> StateAction {
        if E::MODE == Mode::Final {
            E::rows(&self.slots, &mut |row| out.push(row));
            return StateAction::Discard;
        }
        StateAction::Retain
    }

    fn snapshot(&self) -> S {
        self.slots.clone()
    }
}

impl Dataflow {
    /// Joins keyed streams by key (Bytewax's `join`): the sides are a tuple of 2 to 6
    /// keyed streams with one key type and values of any types, and each output is
    /// `(key, row)` with a value per side. `insert` says which values a side keeps; `emit`
    /// says when rows are emitted and whether a side may be missing from them (see the
    /// [module docs](crate::stateful::join)): with [`JoinEmitMode::Complete`] a row is
    /// `(A, B, ...)`, otherwise `(Option<A>, Option<B>, ...)`.
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// // (user id, name) and (user id, age): sides of different types.
    /// let names = flow.input("names", TestingSource::new(vec![(1u32, "ann".to_string())]));
    /// let ages = flow.input("ages", TestingSource::new(vec![(1u32, 31u8)]));
    /// flow.join("user", (&names, &ages), JoinInsertMode::Last, JoinEmitMode::Complete)
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![(1, ("ann".to_string(), 31))]);
    /// ```
    ///
    /// In `Final` and `Running` modes a side may have no value yet:
    ///
    /// ```
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// let names = flow.input("names", TestingSource::new(vec![(1u32, "ann".to_string()), (2, "bo".to_string())]));
    /// let ages = flow.input("ages", TestingSource::new(vec![(1u32, 31u8)]));
    /// flow.join("user", (&names, &ages), JoinInsertMode::Last, JoinEmitMode::Final)
    ///     .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// let mut rows = out.take();
    /// rows.sort();
    /// assert_eq!(rows, vec![(1, (Some("ann".to_string()), Some(31))), (2, (Some("bo".to_string()), None))]);
    /// ```
    pub fn join<K, S, E>(
        &self,
        step: &str,
        sides: S,
        insert: JoinInsertMode,
        emit: E,
    ) -> Stream<(K, JoinRow<S::Slots, E>)>
    where
        K: Key,
        S: JoinSides<K>,
        E: JoinEmit,
    {
        let info = self.add_step(
            step,
            "join",
            sides.stream_ids(),
            1,
            Arc::new(move |ctx: &mut BuildCtx<'_>, info: &StepInfo| {
                let merged = S::merged(ctx, info)?;
                let joined = stateful_batch(
                    ctx,
                    info,
                    merged,
                    Arc::new(move |resume: Option<S::Slots>| JoinLogic {
                        slots: resume.unwrap_or_default(),
                        insert,
                        _emit: emit,
                    }),
                )?;
                ctx.put(info.outputs[0], joined);
                Ok(())
            }),
        );
        self.stream(info.outputs[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestingSink, TestingSource};

    /// What each key of the test join holds.
    type Slots = (Vec<String>, Vec<u32>);
    type Rows<E> = Vec<(u8, JoinRow<Slots, E>)>;

    /// Joins `(1, "a")`, `(1, "b")` on the left with `(1, 7)`, `(2, 8)` on the right.
    fn join<E: JoinEmit>(insert: JoinInsertMode, emit: E) -> Rows<E>
    where
        JoinRow<Slots, E>: Ord,
    {
        let flow = Dataflow::new("j");
        let out = TestingSink::new();
        let left = flow.input(
            "left",
            TestingSource::new(vec![(1u8, "a".to_string()), (1, "b".to_string())]),
        );
        let right = flow.input("right", TestingSource::new(vec![(1u8, 7u32), (2, 8)]));
        flow.join("join", (&left, &right), insert, emit)
            .output("out", out.clone());
        crate::run_main(&flow).unwrap();
        let mut rows = out.take();
        rows.sort();
        rows
    }

    fn s(x: &str) -> String {
        x.to_string()
    }

    #[test]
    fn final_product_has_every_pair_and_none_for_an_empty_side() {
        assert_eq!(
            join(JoinInsertMode::Product, JoinEmitMode::Final),
            vec![
                (1, (Some(s("a")), Some(7))),
                (1, (Some(s("b")), Some(7))),
                (2, (None, Some(8))),
            ]
        );
    }

    #[test]
    fn complete_rows_have_every_side() {
        // Which left value meets 7 depends on arrival order across the two inputs.
        let rows = join(JoinInsertMode::Last, JoinEmitMode::Complete);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!((rows[0].0, rows[0].1.1), (1, 7));
    }

    #[test]
    fn running_rows_come_on_every_value() {
        let rows = join(JoinInsertMode::First, JoinEmitMode::Running);
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert!(rows.contains(&(2, (None, Some(8)))));
        assert!(rows.contains(&(1, (Some(s("a")), Some(7)))));
    }

    #[test]
    fn three_sides_of_three_types() {
        let flow = Dataflow::new("j");
        let out = TestingSink::new();
        let a = flow.input("a", TestingSource::new(vec![('k', 1u8)]));
        let b = flow.input("b", TestingSource::new(vec![('k', "two".to_string())]));
        let c = flow.input("c", TestingSource::new(vec![('k', 3.0f64)]));
        flow.join("abc", (&a, &b, &c), JoinInsertMode::Last, JoinEmitMode::Complete)
            .output("out", out.clone());
        crate::run_main(&flow).unwrap();
        assert_eq!(out.take(), vec![('k', (1, "two".to_string(), 3.0))]);
    }

    #[test]
    fn rows_enumerate_the_cross_product_first_side_outermost() {
        let slots = (vec![1, 2], vec!['x', 'y']);
        let mut rows = Vec::new();
        slots.complete_rows(&mut |r| rows.push(r));
        assert_eq!(rows, vec![(1, 'x'), (1, 'y'), (2, 'x'), (2, 'y')]);
        let slots = (Vec::<u8>::new(), vec!['x', 'y']);
        let mut rows = Vec::new();
        slots.partial_rows(&mut |r| rows.push(r));
        assert_eq!(rows, vec![(None, Some('x')), (None, Some('y'))]);
    }
}
