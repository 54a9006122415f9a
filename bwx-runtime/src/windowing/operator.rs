//! The generic `window` operator and its lowering: one keyed stateful operator that emits
//! tagged events, then one split into the down, late and meta streams.

use std::sync::Arc;

use crate::engine::stateful::{keyed_operator, stateful_batch};
use crate::engine::stateless::{Split3, split3};
use crate::engine::{BuildCtx, TStream};
use crate::errors::FlowError;
use crate::flow::{Dataflow, StepInfo, Stream};
use crate::inputs::State;
use crate::operators::KeyedItem;
use crate::{Data, ExchangeData, Key};

use super::clock::Clock;
use super::logic::{KeyWindows, Lowered, Shared, WinEvent, WindowLogic};
use super::per_key::PerKeyWindows;
use super::per_worker::{FromWorkers, PerWorkerWindows, SelfStamped, WorkerWindows};
use super::stamp::{Stamped, stamp};
use super::windower::{Grid, Windower};
use super::worker_sessions::WorkerSessions;
use super::{WindowId, WindowMetadata, WindowOut};

/// Builds the timely operators of a windowing step on `input` and records its three
/// output streams.
pub(crate) fn lower<'s, T, R, C, D, L, B>(
    ctx: &mut BuildCtx<'s>,
    info: &StepInfo,
    input: TStream<'s, T>,
    shared: &Arc<Shared<C, D, B>>,
) -> Result<(), FlowError>
where
    T: KeyedItem + ExchangeData,
    T::V: State,
    R: Data,
    C: Clock<T::V>,
    D: Windower,
    L: WindowLogic<T::V, R>,
    B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
{
    // The split below emits the step's output: it claims the output count before the
    // keyed operator is built.
    let plan = ctx.meter_plan(info);
    let split_meter = plan.meter().counting_out(&plan).counting_late(&plan);
    let step = Arc::new(Lowered::new(shared.clone(), ctx.is_read(info.outputs[2])));
    let events = if C::PER_WORKER {
        match shared.windower.grid() {
            Some(grid) => {
                let windows = PerWorkerWindows::<T::K, T::V, R, C, D, L, B>::new(step, grid);
                per_worker(ctx, info, input, shared, windows, Some(grid))?
            }
            None => {
                let windows = WorkerSessions::<T::K, T::V, R, C, D, L, B>::new(step);
                per_worker(ctx, info, input, shared, windows, None)?
            }
        }
    } else if let Some(grid) = shared.windower.grid() {
        let store = PerKeyWindows::<T::K, T::V, R, C, D, L, B>::new(step, grid);
        keyed_operator::<T, WinEvent<T::V, R>, _>(ctx, info, input, store)?
    } else {
        stateful_batch::<T, WinEvent<T::V, R>, KeyWindows<T::V, R, C, D, L, B>, _>(
            ctx,
            info,
            input,
            Arc::new(move |resume| KeyWindows::build(step.clone(), resume)),
        )?
    };
    let (down, late, meta) = split3(
        events,
        info.id.as_str(),
        ctx.step_index,
        split_meter,
        |(key, event): (T::K, WinEvent<T::V, R>)| match event {
            WinEvent::Down(id, r) => Split3::First((key, (id, r))),
            WinEvent::Late(id, v) => Split3::Second((key, (id, v))),
            WinEvent::Meta(id, m) => Split3::Third((key, (id, *m))),
        },
    );
    ctx.put(info.outputs[0], down);
    ctx.put(info.outputs[1], late);
    ctx.put(info.outputs[2], meta);
    Ok(())
}

/// What a windowing step's keyed operator emits for each key.
type WinEvents<'s, K, V, R> = TStream<'s, (K, WinEvent<V, R>)>;

/// The keyed operator of a step under a [`PerWorker`](super::PerWorker) clock over
/// `windows`: on one worker the store stamps items with the worker's clock itself; on more,
/// a stamping step before the exchange does and sends each worker's watermark along.
fn per_worker<'s, T, R, C, D, B, W>(
    ctx: &mut BuildCtx<'s>,
    info: &StepInfo,
    input: TStream<'s, T>,
    shared: &Arc<Shared<C, D, B>>,
    windows: W,
    grid: Option<Grid>,
) -> Result<WinEvents<'s, T::K, T::V, R>, FlowError>
where
    T: KeyedItem + ExchangeData,
    T::V: State,
    R: Data,
    C: Clock<T::V>,
    W: WorkerWindows<T::K, T::V, R>,
{
    let workers = ctx.worker_count();
    if workers == 1 {
        let store = SelfStamped::new(windows, shared.clock.build(None));
        keyed_operator::<T, WinEvent<T::V, R>, _>(ctx, info, input, store)
    } else {
        let (clock, idle) = (shared.clock.build(None), shared.clock.idle_after());
        let stamped = stamp(ctx, info.id.as_str(), input, clock, grid, idle);
        let store = FromWorkers::new(windows, workers);
        keyed_operator::<Stamped<T::K, T::V>, WinEvent<T::V, R>, _>(ctx, info, stamped, store)
    }
}

impl<T: Data> Stream<T> {
    /// Records a windowing step whose input is first transformed batch-wise by `prepare`
    /// (keying, tagging) inside the same step.
    pub(crate) fn window_step<U, R, C, D, L, B, P>(
        &self,
        step: &str,
        operator: &'static str,
        prepare: P,
        shared: Shared<C, D, B>,
    ) -> WindowOut<U::K, U::V, R>
    where
        U: KeyedItem + ExchangeData,
        U::V: State,
        R: Data,
        C: Clock<U::V>,
        D: Windower,
        L: WindowLogic<U::V, R>,
        B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
        P: Fn(&mut Vec<T>, &mut Vec<U>) + Send + Sync + 'static,
    {
        let shared = Arc::new(shared);
        let prepare = Arc::new(prepare);
        let info = self.flow.add_step(
            step,
            operator,
            vec![self.id],
            3,
            Arc::new(move |ctx: &mut BuildCtx<'_>, info: &StepInfo| {
                let input = ctx.get::<T>(info, info.inputs[0])?;
                let plan = ctx.meter_plan(info);
                let prepared = crate::engine::stateless::flat_map_batch(
                    input,
                    info.id.as_str(),
                    ctx.step_index,
                    plan.meter().counting_in(&plan),
                    prepare.clone(),
                );
                lower::<U, R, C, D, L, B>(ctx, info, prepared, &shared)
            }),
        );
        window_out(&self.flow, &info)
    }

    /// Windows a keyed stream with your own per-window [`WindowLogic`]: `builder(resume)`
    /// makes each window's logic. `ordered` applies each key's items in timestamp order
    /// once the watermark passes them; otherwise in arrival order. Returns the results,
    /// the late items and the metadata of closed windows ([`WindowOut`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bwx::prelude::*;
    /// use bwx::testing::{TestingSink, TestingSource};
    /// use bwx::windowing::{Emit, EventClock, TumblingWindower, WindowLogic};
    ///
    /// /// Emits the first and last value of each window.
    /// struct FirstLast(Option<(i64, i64)>);
    /// impl WindowLogic<i64, (i64, i64)> for FirstLast {
    ///     type State = Option<(i64, i64)>;
    ///     fn on_value(&mut self, v: i64, _out: &mut Emit<'_, i64, (i64, i64)>) {
    ///         self.0 = Some(self.0.map_or((v, v), |(first, _)| (first, v)));
    ///     }
    ///     fn on_merge(&mut self, other: Self, _out: &mut Emit<'_, i64, (i64, i64)>) {
    ///         if let (Some(a), Some(b)) = (self.0, other.0) { self.0 = Some((a.0, b.1)); }
    ///     }
    ///     fn on_close(self, out: &mut Emit<'_, i64, (i64, i64)>) {
    ///         if let Some(fl) = self.0 { out.emit(fl); }
    ///     }
    ///     fn snapshot(&self) -> Self::State { self.0 }
    /// }
    ///
    /// let flow = Dataflow::new("f");
    /// let (out, meta) = (TestingSink::new(), TestingSink::new());
    /// // Items may be 5 ms out of order; each window's values are applied in time order.
    /// let clock = EventClock::replay(|ts: &i64| *ts, Duration::from_millis(5));
    /// let win = TumblingWindower::new(Duration::from_millis(10), 0).unwrap();
    /// let w = flow.input("inp", TestingSource::new(vec![(1u8, 3i64), (1, 1), (1, 12)]))
    ///     .window("fl", clock, win, |resume| FirstLast(resume.flatten()), true);
    /// w.down.output("out", out.clone());
    /// w.meta.output("meta", meta.clone());
    /// bwx::run_main(&flow).unwrap();
    /// assert_eq!(out.take(), vec![(1, (0, (1, 3))), (1, (1, (12, 12)))]);
    /// let meta = meta.take();
    /// assert_eq!((meta[0].1.1.open_time, meta[0].1.1.close_time), (0, 10));
    /// ```
    pub fn window<K, V, R, C, D, L, B>(
        &self,
        step: &str,
        clock: C,
        windower: D,
        builder: B,
        ordered: bool,
    ) -> WindowOut<K, V, R>
    where
        T: KeyedItem<K = K, V = V> + ExchangeData,
        K: Key,
        V: Data,
        V: State,
        R: Data,
        C: Clock<V>,
        D: Windower,
        L: WindowLogic<V, R>,
        B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
    {
        self.window_with(step, "window", clock, windower, builder, ordered)
    }

    /// [`window`](Self::window) under another operator name.
    pub(crate) fn window_with<R, C, D, L, B>(
        &self,
        step: &str,
        operator: &'static str,
        clock: C,
        windower: D,
        builder: B,
        ordered: bool,
    ) -> WindowOut<T::K, T::V, R>
    where
        T: KeyedItem + ExchangeData,
        T::V: State,
        R: Data,
        C: Clock<T::V>,
        D: Windower,
        L: WindowLogic<T::V, R>,
        B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
    {
        let shared = Arc::new(Shared {
            clock,
            windower,
            builder,
            ordered,
        });
        let info = self.flow.add_step(
            step,
            operator,
            vec![self.id],
            3,
            Arc::new(move |ctx: &mut BuildCtx<'_>, info: &StepInfo| {
                let input = ctx.get::<T>(info, info.inputs[0])?;
                lower::<T, R, C, D, L, B>(ctx, info, input, &shared)
            }),
        );
        window_out(&self.flow, &info)
    }
}

/// The three streams of a windowing step.
pub(crate) fn window_out<K, V, R>(flow: &Dataflow, info: &StepInfo) -> WindowOut<K, V, R> {
    WindowOut {
        down: flow.stream::<(K, (WindowId, R))>(info.outputs[0]),
        late: flow.stream::<(K, (WindowId, V))>(info.outputs[1]),
        meta: flow.stream::<(K, (WindowId, WindowMetadata))>(info.outputs[2]),
    }
}
