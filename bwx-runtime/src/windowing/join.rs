//! `join_window`: a keyed join of streams, of values of any types, within each window.

use std::sync::Arc;

use crate::Key;
use crate::engine::BuildCtx;
use crate::flow::{Dataflow, StepInfo};
use crate::stateful::JoinInsertMode;
use crate::stateful::join::{
    JoinEmit, JoinRow, JoinSides, JoinSlots, Mode, Side2, Side3, Side4, Side5, Side6,
};

use super::WindowOut;
use super::clock::Clock;
use super::logic::{Emit, Shared, WindowLogic};
use super::operator::{lower, window_out};
use super::windower::Windower;

/// One window of a join: the values of each side.
struct JoinWindowLogic<S, E> {
    slots: S,
    insert: JoinInsertMode,
    _emit: E,
}

impl<S: JoinSlots, E: JoinEmit> JoinWindowLogic<S, E> {
    fn emit_rows(&self, out: &mut Emit<'_, S::Tagged, JoinRow<S, E>>) {
        E::rows(&self.slots, &mut |row| out.emit(row));
    }

    /// In `Complete` mode, emits and starts over once every side has a value.
    fn complete(&mut self, out: &mut Emit<'_, S::Tagged, JoinRow<S, E>>) {
        if E::MODE == Mode::Complete && self.slots.all_filled() {
            self.emit_rows(out);
            self.slots.clear();
        }
    }
}

impl<S: JoinSlots, E: JoinEmit> WindowLogic<S::Tagged, JoinRow<S, E>> for JoinWindowLogic<S, E> {
    type State = S;

    fn on_value(&mut self, value: S::Tagged, out: &mut Emit<'_, S::Tagged, JoinRow<S, E>>) {
        self.slots.insert(value, self.insert);
        match E::MODE {
            Mode::Running => self.emit_rows(out),
            Mode::Complete => self.complete(out),
            Mode::Final => {}
        }
    }

    fn on_merge(&mut self, other: Self, out: &mut Emit<'_, S::Tagged, JoinRow<S, E>>) {
        self.slots.absorb(other.slots, self.insert);
        self.complete(out);
    }

    fn on_close(self, out: &mut Emit<'_, S::Tagged, JoinRow<S, E>>) {
        if E::MODE == Mode::Final && !self.slots.is_empty() {
            self.emit_rows(out);
        }
    }

    fn snapshot(&self) -> S {
        self.slots.clone()
    }
}

/// A timestamp getter per side of a join, as one getter of the tagged values the clock
/// of a [`join_window`](Dataflow::join_window) reads; see [`each_side`].
pub trait SideTimestamps<T>: Send + Sync + 'static {
    /// The timestamp of a value of any side, in ms since the epoch.
    fn timestamp(&self, value: &T) -> i64;
}

macro_rules! side_timestamps {
    ($Side:ident; $($T:ident $G:ident $i:tt),+) => {
        impl<$($T, $G: Fn(&$T) -> i64 + Send + Sync + 'static),+> SideTimestamps<$Side<$($T),+>> for ($($G,)+) {
            #[inline]
            fn timestamp(&self, value: &$Side<$($T),+>) -> i64 {
                match value {
                    $($Side::$T(v) => (self.$i)(v),)+
                }
            }
        }
    };
}

side_timestamps!(Side2; A GA 0, B GB 1);
side_timestamps!(Side3; A GA 0, B GB 1, C GC 2);
side_timestamps!(Side4; A GA 0, B GB 1, C GC 2, D GD 3);
side_timestamps!(Side5; A GA 0, B GB 1, C GC 2, D GD 3, E GE 4);
side_timestamps!(Side6; A GA 0, B GB 1, C GC 2, D GD 3, E GE 4, F GF 5);

/// The timestamp getter of a [`join_window`](Dataflow::join_window)'s event clock, from
/// one getter per side: `EventClock::replay(each_side((|a: &A| a.ts, |b: &B| b.ts)), wait)`.
/// The clock (one per key) sees every side's values, so a key's watermark moves with all
/// of them.
pub fn each_side<T, G: SideTimestamps<T>>(getters: G) -> impl Fn(&T) -> i64 + Send + Sync + 'static {
    move |value| getters.timestamp(value)
}

impl Dataflow {
    /// Joins keyed streams by key within each window (Bytewax's `join_window`): the sides
    /// are a tuple of 2 to 6 keyed streams with one key type and values of any types, as
    /// for [`join`](Dataflow::join). Each result is `(key, (window_id, row))`; `emit` says
    /// when rows are emitted and whether a side may be missing from them:
    /// [`JoinEmitMode::Final`](crate::stateful::JoinEmitMode::Final) when the window closes
    /// (rows of `Option`s), [`JoinEmitMode::Complete`](crate::stateful::JoinEmitMode::Complete)
    /// as soon as every side has a value (then the window starts over; rows of values),
    /// [`JoinEmitMode::Running`](crate::stateful::JoinEmitMode::Running) on every value
    /// (rows of `Option`s). The clock reads values of every side, tagged with their side
    /// ([`Side2`](crate::stateful::join::Side2), ...): build its timestamp getter with
    /// [`each_side`]. Late items come out tagged the same way.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    /// use bwx::windowing::{EventClock, TumblingWindower, each_side};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// // (user, ts) clicks and (user, (ts, amount)) purchases in the same 10 ms window.
    /// let clicks = flow.input("clicks", TestingSource::new(vec![(1u32, 2i64), (2, 3)]));
    /// let buys = flow.input("buys", TestingSource::new(vec![(1u32, (8i64, 250u64)), (2, (14, 99))]));
    /// flow.join_window(
    ///     "together",
    ///     EventClock::replay(each_side((|ts: &i64| *ts, |(ts, _): &(i64, u64)| *ts)), Duration::from_millis(100)),
    ///     TumblingWindower::new(Duration::from_millis(10), 0).unwrap(),
    ///     (&clicks, &buys),
    ///     JoinInsertMode::Last,
    ///     JoinEmitMode::Final,
    ///     true,
    /// )
    /// .down
    /// .output("out", out.clone());
    /// bwx::run_main(&flow).unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![
    ///     (1, (0, (Some(2), Some((8, 250))))),
    ///     (2, (0, (Some(3), None))),
    ///     (2, (1, (None, Some((14, 99))))),
    /// ]);
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn join_window<K, S, E, C, D>(
        &self,
        step: &str,
        clock: C,
        windower: D,
        sides: S,
        insert: JoinInsertMode,
        emit: E,
        ordered: bool,
    ) -> WindowOut<K, <S::Slots as JoinSlots>::Tagged, JoinRow<S::Slots, E>>
    where
        K: Key,
        S: JoinSides<K>,
        E: JoinEmit,
        C: Clock<<S::Slots as JoinSlots>::Tagged>,
        D: Windower,
    {
        let shared = Arc::new(Shared {
            clock,
            windower,
            builder: move |resume: Option<S::Slots>| JoinWindowLogic {
                slots: resume.unwrap_or_default(),
                insert,
                _emit: emit,
            },
            ordered,
        });
        let info = self.add_step(
            step,
            "join_window",
            sides.stream_ids(),
            3,
            Arc::new(move |ctx: &mut BuildCtx<'_>, info: &StepInfo| {
                let merged = S::merged(ctx, info)?;
                lower::<
                    (K, <S::Slots as JoinSlots>::Tagged),
                    JoinRow<S::Slots, E>,
                    _,
                    _,
                    JoinWindowLogic<S::Slots, E>,
                    _,
                >(ctx, info, merged, &shared)
            }),
        );
        window_out(self, &info)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stateful::JoinEmitMode;
    use crate::testing::{TestingSink, TestingSource};
    use crate::windowing::{EventClock, TumblingWindower};

    /// What each window of the test join holds.
    type Slots = (Vec<i64>, Vec<(i64, char)>);
    type Rows<E> = Vec<(u8, (i64, JoinRow<Slots, E>))>;

    /// Joins two sides of (key 1, ts) items, the right side's values `(ts, name)`, in
    /// 10 ms windows; returns the sorted rows.
    fn join<E: JoinEmit>(insert: JoinInsertMode, emit: E) -> Rows<E>
    where
        JoinRow<Slots, E>: Ord,
    {
        let flow = Dataflow::new("j");
        let out = TestingSink::new();
        let left = flow.input("left", TestingSource::new(vec![(1u8, 1i64), (1, 2), (1, 15)]));
        let right = flow.input(
            "right",
            TestingSource::new(vec![(1u8, (3i64, 'x')), (1, (4, 'y'))]),
        );
        flow.join_window(
            "join",
            EventClock::replay(
                each_side((|ts: &i64| *ts, |(ts, _): &(i64, char)| *ts)),
                Duration::from_millis(100),
            ),
            TumblingWindower::new(Duration::from_millis(10), 0).unwrap(),
            (&left, &right),
            insert,
            emit,
            true,
        )
        .down
        .output("out", out.clone());
        crate::run_main(&flow).unwrap();
        let mut got = out.take();
        got.sort();
        got
    }

    #[test]
    fn final_product_emits_every_pair_when_the_window_closes() {
        assert_eq!(
            join(JoinInsertMode::Product, JoinEmitMode::Final),
            vec![
                (1, (0, (Some(1), Some((3, 'x'))))),
                (1, (0, (Some(1), Some((4, 'y'))))),
                (1, (0, (Some(2), Some((3, 'x'))))),
                (1, (0, (Some(2), Some((4, 'y'))))),
                (1, (1, (Some(15), None))),
            ]
        );
    }

    #[test]
    fn complete_emits_once_both_sides_are_there_then_starts_over() {
        // Ordered: 1, 2 (left), 3 (right) -> emit (2, 3) with Last; 4 alone does not emit.
        assert_eq!(
            join(JoinInsertMode::Last, JoinEmitMode::Complete),
            vec![(1, (0, (2, (3, 'x'))))]
        );
    }

    #[test]
    fn running_emits_on_every_value() {
        assert_eq!(
            join(JoinInsertMode::First, JoinEmitMode::Running),
            vec![
                (1, (0, (Some(1), None))),
                (1, (0, (Some(1), None))),
                (1, (0, (Some(1), Some((3, 'x'))))),
                (1, (0, (Some(1), Some((3, 'x'))))),
                (1, (1, (Some(15), None))),
            ]
        );
    }
}
