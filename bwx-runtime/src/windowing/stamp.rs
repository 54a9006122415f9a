//! The first half of a window step under a [`PerWorker`](super::PerWorker) clock: each
//! worker's clock stamps the items the worker sends into the exchange, and announces the
//! worker's watermark to every worker in the same channels as the items.

use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::engine::failure::enter_step;
use crate::engine::{BuildCtx, TStream};
use crate::operators::KeyedItem;
use crate::{ExchangeData, Key, route_hash};

use super::clock::ClockLogic;
use super::windower::Grid;

/// How often (event time, ms) a live clock's worker announces its watermark when the windows
/// differ per key (sessions): their closes are not known to the stamping step.
pub(crate) const LIVE_TICK_MS: i64 = 100;

/// An item with its sending worker's verdict, or that worker's watermark.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Stamped<K, V> {
    /// An item at or after its worker's watermark, with its timestamp.
    OnTime(K, i64, V),
    /// An item before its worker's watermark, with its timestamp.
    Late(K, i64, V),
    /// Worker `from` will send no more on-time items before `at`; addressed to `to`.
    Watermark { to: usize, from: usize, at: i64 },
    /// Worker `from` has read nothing for its idle time: leave it out of the least
    /// watermark until its next `Watermark`; addressed to `to`.
    Idle { to: usize, from: usize },
}

impl<K: Key, V> Stamped<K, V> {
    /// Items go to the worker of their key, a watermark to the worker it is for.
    #[inline]
    pub(crate) fn route(&self) -> u64 {
        match self {
            Stamped::OnTime(key, ..) | Stamped::Late(key, ..) => route_hash(key),
            Stamped::Watermark { to, .. } | Stamped::Idle { to, .. } => *to as u64,
        }
    }
}

/// Stamps `input` with this worker's `clock`. A watermark goes to every worker after each
/// batch that moved it, and, while a live clock moves it with system time, at the window
/// closes of `grid` (windows the same for every key), or every [`LIVE_TICK_MS`] of event
/// time (sessions, whose closes differ per key); after `idle` without items, an `Idle`
/// instead (until the next item).
/// Sent after the items before it, in the same channels, a watermark tells the receiver
/// that no on-time item from this worker will be older.
pub(crate) fn stamp<'s, T, CL>(
    ctx: &mut BuildCtx<'s>,
    name: &str,
    input: TStream<'s, T>,
    mut clock: CL,
    grid: Option<Grid>,
    idle: Option<Duration>,
) -> TStream<'s, Stamped<T::K, T::V>>
where
    T: KeyedItem,
    T::V: ExchangeData,
    CL: ClockLogic<T::V>,
{
    let (me, peers) = (ctx.worker_index(), ctx.worker_count());
    let step_index = ctx.step_index;
    let start = ctx.config.start_epoch;
    let failure = ctx.failure.clone();
    let mut op = OperatorBuilder::new(format!("{name}.stamp"), ctx.scope);
    let activator = ctx.scope.activator_for(op.operator_info().address.clone());
    let mut input = op.new_input(input, Pipeline);
    let (output, stream) = op.new_output::<Vec<Stamped<T::K, T::V>>>();
    let mut output = OutputBuilder::<_, CapacityContainerBuilder<Vec<Stamped<T::K, T::V>>>>::from(output);
    op.build(move |mut caps| {
        let mut held = caps.pop();
        for c in held.iter_mut() {
            c.downgrade(&start);
        }
        // The watermark last sent; whether the worker has gone idle (and said so) and when
        // it last read an item.
        let mut sent = i64::MIN;
        let mut resting = false;
        let mut last_read = Instant::now();
        let announce = move |at: i64| (0..peers).map(move |to| Stamped::Watermark { to, from: me, at });
        move |frontiers| {
            enter_step(step_index);
            if failure.should_stop() {
                return;
            }
            let Some(cap) = held.as_mut() else { return };
            let mut out = output.activate();
            input.for_each(|in_cap, data| {
                if data.is_empty() {
                    return;
                }
                if idle.is_some() {
                    last_read = Instant::now();
                }
                clock.before_batch();
                let mut session = out.session_with_builder(&in_cap);
                let mut watermark = sent;
                for item in data.drain(..) {
                    let (key, value) = item.into_parts();
                    let (ts, wm) = clock.on_item(&value);
                    watermark = wm;
                    session.give(if ts < wm {
                        Stamped::Late(key, ts, value)
                    } else {
                        Stamped::OnTime(key, ts, value)
                    });
                }
                // Back from idle, the worker's watermark counts again.
                if watermark > sent || resting {
                    sent = watermark.max(sent);
                    resting = false;
                    session.give_iterator(announce(sent));
                }
            });
            let frontier = frontiers[0].frontier().first().copied();
            if let Some(f) = frontier
                && *cap.time() < f
            {
                cap.downgrade(&f);
            }
            // At the end of the input the windowing step closes every window itself, once
            // all items have reached it. (A last watermark of one worker could overtake the
            // items of another that is left out as idle.)
            if frontier.is_none() {
                held = None;
                return;
            }
            let watermark = clock.on_notify();
            if watermark > sent && !resting {
                sent = watermark;
                out.session_with_builder(&*cap).give_iterator(announce(sent));
            }
            if let Some(idle) = idle
                && !resting
            {
                let quiet = last_read.elapsed();
                if quiet >= idle {
                    resting = true;
                    out.session_with_builder(&*cap)
                        .give_iterator((0..peers).map(|to| Stamped::Idle { to, from: me }));
                } else {
                    activator.activate_after(idle - quiet);
                }
            }
            // A live clock moves with system time: wake up when it reaches the next close.
            let next_close = match grid {
                Some(grid) => grid.close_time(*grid.ids(sent).start()),
                None => sent.saturating_add(LIVE_TICK_MS),
            };
            if !resting && let Some(at) = clock.to_system(next_close) {
                activator.activate_after(at.duration_since(SystemTime::now()).unwrap_or_default());
            }
        }
    });
    stream
}
