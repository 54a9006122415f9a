//! `join_window`: a keyed join of several streams within each window.

use std::sync::Arc;
use std::time::SystemTime;

use crate::engine::BuildCtx;
use crate::flow::{Dataflow, StepInfo, Stream};
use crate::inputs::State;
use crate::stateful::join::{cross_rows, tagged_sides};
use crate::stateful::{JoinEmitMode, JoinInsertMode};
use crate::{ExchangeData, Key};

use super::WindowOut;
use super::clock::{Clock, ClockLogic};
use super::logic::{Emit, Shared, WindowLogic};
use super::operator::{lower, window_out};
use super::windower::Windower;

/// Runs a clock of `V` on the `(side, V)` items of a join.
struct SideClock<C>(C);

struct SideClockLogic<L>(L);

impl<V, C: Clock<V>> Clock<(usize, V)> for SideClock<C> {
    type Logic = SideClockLogic<C::Logic>;

    fn build(&self, resume: Option<<C::Logic as ClockLogic<V>>::State>) -> Self::Logic {
        SideClockLogic(self.0.build(resume))
    }
}

impl<V, L: ClockLogic<V>> ClockLogic<(usize, V)> for SideClockLogic<L> {
    type State = L::State;

    fn before_batch(&mut self) {
        self.0.before_batch();
    }

    #[inline]
    fn on_item(&mut self, value: &(usize, V)) -> (i64, i64) {
        self.0.on_item(&value.1)
    }

    fn on_notify(&mut self) -> i64 {
        self.0.on_notify()
    }

    fn to_system(&self, watermark: i64) -> Option<SystemTime> {
        self.0.to_system(watermark)
    }

    #[inline]
    fn wakes(&self) -> bool {
        self.0.wakes()
    }

    fn snapshot(&self) -> L::State {
        self.0.snapshot()
    }
}

/// One window of a join: the values of each side.
struct JoinWindowLogic<V> {
    sides: Vec<Vec<V>>,
    insert: JoinInsertMode,
    emit: JoinEmitMode,
}

type JoinOut<V> = Vec<Option<V>>;

impl<V: Clone> JoinWindowLogic<V> {
    fn insert(&mut self, side: usize, value: V) {
        let Some(slot) = self.sides.get_mut(side) else {
            return;
        };
        match self.insert {
            JoinInsertMode::First if !slot.is_empty() => {}
            JoinInsertMode::First | JoinInsertMode::Product => slot.push(value),
            JoinInsertMode::Last => {
                slot.clear();
                slot.push(value);
            }
        }
    }

    fn emit_rows(&self, out: &mut Emit<'_, (usize, V), JoinOut<V>>) {
        cross_rows(&self.sides, |row| out.emit(row));
    }

    /// In `Complete` mode, emits and starts over once every side has a value.
    fn complete(&mut self, out: &mut Emit<'_, (usize, V), JoinOut<V>>) {
        if self.emit == JoinEmitMode::Complete && self.sides.iter().all(|s| !s.is_empty()) {
            self.emit_rows(out);
            self.sides.iter_mut().for_each(Vec::clear);
        }
    }
}

impl<V: State> WindowLogic<(usize, V), JoinOut<V>> for JoinWindowLogic<V> {
    type State = Vec<Vec<V>>;

    fn on_value(&mut self, (side, value): (usize, V), out: &mut Emit<'_, (usize, V), JoinOut<V>>) {
        self.insert(side, value);
        match self.emit {
            JoinEmitMode::Running => self.emit_rows(out),
            JoinEmitMode::Complete => self.complete(out),
            JoinEmitMode::Final => {}
        }
    }

    fn on_merge(&mut self, other: Self, out: &mut Emit<'_, (usize, V), JoinOut<V>>) {
        for (side, values) in other.sides.into_iter().enumerate() {
            for value in values {
                self.insert(side, value);
            }
        }
        self.complete(out);
    }

    fn on_close(self, out: &mut Emit<'_, (usize, V), JoinOut<V>>) {
        if self.emit == JoinEmitMode::Final && self.sides.iter().any(|s| !s.is_empty()) {
            self.emit_rows(out);
        }
    }

    fn snapshot(&self) -> Vec<Vec<V>> {
        self.sides.clone()
    }
}

impl Dataflow {
    /// Joins keyed streams of the same value type by key within each window. Each result
    /// is `(key, (window_id, [value of side 0, value of side 1, ...]))`, `None` where a side
    /// had no value. `insert` says which values a side keeps; `emit` says when rows are
    /// emitted: [`JoinEmitMode::Final`] when the window closes, [`JoinEmitMode::Complete`]
    /// as soon as every side has a value (then the window starts over),
    /// [`JoinEmitMode::Running`] on every value. The clock reads the side's value; late items
    /// come out tagged with their side.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bwx_runtime::prelude::*;
    /// use bwx_runtime::testing::{TestingSink, TestingSource};
    /// use bwx_runtime::windowing::{EventClock, TumblingWindower};
    ///
    /// let flow = Dataflow::new("f");
    /// let out = TestingSink::new();
    /// // (user, ts): clicks and purchases within the same 10 ms window.
    /// let clicks = flow.input("clicks", TestingSource::new(vec![(1u32, 2i64), (2, 3)]));
    /// let buys = flow.input("buys", TestingSource::new(vec![(1u32, 8i64), (2, 14)]));
    /// flow.join_window(
    ///     "together",
    ///     EventClock::replay(|ts: &i64| *ts, Duration::from_millis(100)),
    ///     TumblingWindower::new(Duration::from_millis(10), 0).unwrap(),
    ///     [&clicks, &buys],
    ///     JoinInsertMode::Last,
    ///     JoinEmitMode::Final,
    ///     true,
    /// )
    /// .down
    /// .output("out", out.clone());
    /// bwx_runtime::run_main(&flow).unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![
    ///     (1, (0, vec![Some(2), Some(8)])),
    ///     (2, (0, vec![Some(3), None])),
    ///     (2, (1, vec![None, Some(14)])),
    /// ]);
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn join_window<'a, K, V, C, D>(
        &self,
        step: &str,
        clock: C,
        windower: D,
        sides: impl IntoIterator<Item = &'a Stream<(K, V)>>,
        insert: JoinInsertMode,
        emit: JoinEmitMode,
        ordered: bool,
    ) -> WindowOut<K, (usize, V), JoinOut<V>>
    where
        K: Key,
        V: ExchangeData + State,
        C: Clock<V>,
        D: Windower,
    {
        let inputs: Vec<_> = sides.into_iter().map(|s| s.id).collect();
        let n = inputs.len();
        let shared = Arc::new(Shared {
            clock: SideClock(clock),
            windower,
            builder: move |resume: Option<Vec<Vec<V>>>| JoinWindowLogic {
                sides: resume.unwrap_or_else(|| vec![Vec::new(); n]),
                insert,
                emit,
            },
            ordered,
        });
        let info = self.add_step(
            step,
            "join_window",
            inputs,
            3,
            Arc::new(move |ctx: &mut BuildCtx<'_>, info: &StepInfo| {
                let merged = tagged_sides::<K, V>(ctx, info)?;
                lower::<(K, (usize, V)), JoinOut<V>, _, _, JoinWindowLogic<V>, _>(ctx, info, merged, &shared)
            }),
        );
        window_out(self, &info)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::{TestingSink, TestingSource};
    use crate::windowing::{EventClock, TumblingWindower};

    type Row = (u8, (i64, Vec<Option<i64>>));

    /// Joins two sides of (key 1, ts) items in 10 ms windows; returns the sorted rows.
    fn join(insert: JoinInsertMode, emit: JoinEmitMode) -> Vec<Row> {
        let flow = Dataflow::new("j");
        let out = TestingSink::new();
        let left = flow.input("left", TestingSource::new(vec![(1u8, 1i64), (1, 2), (1, 15)]));
        let right = flow.input("right", TestingSource::new(vec![(1u8, 3i64), (1, 4)]));
        flow.join_window(
            "join",
            EventClock::replay(|ts: &i64| *ts, Duration::from_millis(100)),
            TumblingWindower::new(Duration::from_millis(10), 0).unwrap(),
            [&left, &right],
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
                (1, (0, vec![Some(1), Some(3)])),
                (1, (0, vec![Some(1), Some(4)])),
                (1, (0, vec![Some(2), Some(3)])),
                (1, (0, vec![Some(2), Some(4)])),
                (1, (1, vec![Some(15), None])),
            ]
        );
    }

    #[test]
    fn complete_emits_once_both_sides_are_there_then_starts_over() {
        // Ordered: 1, 2 (left), 3 (right) -> emit [2, 3] with Last; 4 alone does not emit.
        assert_eq!(
            join(JoinInsertMode::Last, JoinEmitMode::Complete),
            vec![(1, (0, vec![Some(2), Some(3)]))]
        );
    }

    #[test]
    fn running_emits_on_every_value() {
        assert_eq!(
            join(JoinInsertMode::First, JoinEmitMode::Running),
            vec![
                (1, (0, vec![Some(1), None])),
                (1, (0, vec![Some(1), None])),
                (1, (0, vec![Some(1), Some(3)])),
                (1, (0, vec![Some(1), Some(3)])),
                (1, (1, vec![Some(15), None])),
            ]
        );
    }
}
