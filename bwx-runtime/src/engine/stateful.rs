//! The keyed stateful operator under every stateful step, and the local pre-aggregation
//! that runs before the exchange of associative aggregations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use rustc_hash::FxHashMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Operator;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::errors::FlowError;
use crate::flow::StepInfo;
use crate::operators::KeyedItem;
use crate::recovery::{Snapshot, codec};
use crate::stateful::{StateAction, StatefulBatchLogic};
use crate::{Data, ExchangeData, Key, route_hash, worker_for_key};

use super::failure::enter_step;
use super::{BuildCtx, TStream};

/// Per-key timers: the next wake-up of each key, ordered by time.
struct Timers<K> {
    by_time: BTreeSet<(SystemTime, K)>,
    by_key: FxHashMap<K, SystemTime>,
}

impl<K: Key> Timers<K> {
    fn new() -> Self {
        Timers {
            by_time: BTreeSet::new(),
            by_key: FxHashMap::default(),
        }
    }

    /// Sets (`Some`) or clears (`None`) the key's wake-up. Called per item: the common
    /// case, no wake-up asked and none set, is inlined; the rest is not.
    #[inline(always)]
    fn set(&mut self, key: &K, at: Option<SystemTime>) {
        if at.is_some() || !self.by_key.is_empty() {
            self.change(key, at);
        }
    }

    #[inline(never)]
    fn change(&mut self, key: &K, at: Option<SystemTime>) {
        let old = self.by_key.get(key).copied();
        if old == at {
            return;
        }
        if let Some(old) = old {
            self.by_time.remove(&(old, key.clone()));
            self.by_key.remove(key);
        }
        if let Some(at) = at {
            self.by_time.insert((at, key.clone()));
            self.by_key.insert(key.clone(), at);
        }
    }

    fn pop_due(&mut self, now: SystemTime) -> Option<K> {
        let first = self.by_time.first()?;
        if first.0 > now {
            return None;
        }
        let (_, key) = self.by_time.pop_first()?;
        self.by_key.remove(&key);
        Some(key)
    }

    fn next(&self) -> Option<SystemTime> {
        self.by_time.first().map(|(t, _)| *t)
    }
}

/// Builds the keyed stateful operator: items are exchanged by the key's routing hash and
/// each key's logic lives on the worker that owns the key.
pub(crate) fn stateful_batch<'s, T, W, L, B>(
    ctx: &mut BuildCtx<'s>,
    step: &StepInfo,
    stream: TStream<'s, T>,
    builder: Arc<B>,
) -> Result<TStream<'s, (T::K, W)>, FlowError>
where
    T: KeyedItem + ExchangeData,
    W: Data,
    L: StatefulBatchLogic<T::V, W>,
    B: Fn(Option<L::State>) -> L + Send + Sync + 'static,
{
    let me = ctx.worker_index();
    let peers = ctx.worker_count();
    let step_index = ctx.step_index;
    let step_id = step.id.clone();
    let snapshots_on = ctx.snapshots_enabled();

    let mut logics: FxHashMap<T::K, Live<L>> = FxHashMap::default();
    let mut timers = Timers::new();
    if let Some(recovery) = &ctx.config.recovery {
        for (key, state) in recovery.resume_states(&step.id)? {
            let bad = |what: &str, e: codec::CodecError| FlowError::Connector {
                step: step.id.to_string(),
                worker: me,
                part: "-".into(),
                message: format!("cannot decode a stored {what}: {e}"),
            };
            let key: T::K = codec::decode_key(&key).map_err(|e| bad("key", e))?;
            if worker_for_key(&key, peers) != me {
                continue;
            }
            let state: L::State = codec::decode(&state).map_err(|e| bad("state", e))?;
            let logic = builder(Some(state));
            timers.set(&key, logic.notify_at());
            logics.insert(
                key,
                Live {
                    logic,
                    touched: NEVER,
                },
            );
        }
    }

    let mut op = OperatorBuilder::new(step.id.to_string(), ctx.scope);
    let activator = ctx.scope.activator_for(op.operator_info().address.clone());
    let mut input = op.new_input(stream, Exchange::new(|item: &T| route_hash(item.key())));
    let (output, out_stream) = op.new_output::<Vec<(T::K, W)>>();
    let mut output = OutputBuilder::<_, CapacityContainerBuilder<Vec<(T::K, W)>>>::from(output);
    let snap = snapshots_on.then(|| op.new_output::<Vec<Snapshot>>());
    let (mut snap_out, snap_stream) = match snap {
        Some((o, s)) => (
            Some(OutputBuilder::<_, CapacityContainerBuilder<Vec<Snapshot>>>::from(
                o,
            )),
            Some(s),
        ),
        None => (None, None),
    };
    let failure = ctx.failure.clone();
    let start = ctx.config.start_epoch;
    let stop = ctx.config.stop.clone();

    op.build(move |mut caps| {
        let mut snap_cap = if snapshots_on { caps.pop() } else { None };
        let mut held = caps.pop();
        for c in held.iter_mut().chain(snap_cap.iter_mut()) {
            c.downgrade(&start);
        }
        // Keys touched per open epoch, each once; only tracked with recovery on.
        let mut touched: BTreeMap<u64, Vec<T::K>> = BTreeMap::new();
        // With recovery on, items of epochs after the oldest open one wait here, so that
        // each epoch's snapshot holds exactly the state at its end.
        let mut stash: BTreeMap<u64, Vec<T>> = BTreeMap::new();
        let mut snaps: Vec<Snapshot> = Vec::new();
        let mut values: Vec<T::V> = Vec::new();
        let mut emitted: Vec<W> = Vec::new();
        // At the end of the input: the keys still to close, last first. A chunk is closed
        // per activation so that the steps downstream take each chunk's results before the
        // next; closing every key at once queued all of them (a peak of memory).
        let mut at_eof: Option<Vec<T::K>> = None;
        move |frontiers| {
            enter_step(step_index);
            if failure.should_stop() {
                return;
            }
            let Some(cap) = held.as_mut() else { return };
            let frontier = frontiers[0].frontier().first().copied();
            // Items of the oldest open epoch (or of closed ones) can be applied now.
            let ready = |e: u64| frontier.is_none_or(|f| e <= f);
            let mut out = output.activate();
            let mut keys = Keys {
                logics: &mut logics,
                timers: &mut timers,
                builder: &*builder,
                values: &mut values,
                emitted: &mut emitted,
            };
            let mut result = Ok(());

            // Stashed epochs that became ready, oldest first, each after the snapshot of
            // the epochs before it (and before newer items of its own epoch, for order).
            while let Some(mut entry) = stash.first_entry() {
                let epoch = *entry.key();
                if !ready(epoch) {
                    break;
                }
                let mut items = std::mem::take(entry.get_mut());
                entry.remove();
                result = result.and(take_snapshots(
                    &mut touched,
                    epoch,
                    keys.logics,
                    &step_id,
                    me,
                    &mut snaps,
                ));
                let at = cap.delayed(&epoch);
                let mut session = out.session_with_builder(&at);
                let set = touched.entry(epoch).or_default();
                keys.apply(
                    items.drain(..),
                    &mut |k, w| session.give((k, w)),
                    Some((epoch, set)),
                );
            }
            if let Some(f) = frontier
                && *cap.time() < f
            {
                cap.downgrade(&f);
            }

            input.for_each(|in_cap, data| {
                let epoch = in_cap.least().copied().unwrap_or_default();
                if !snapshots_on {
                    let mut session = out.session_with_builder(&in_cap);
                    keys.apply(data.drain(..), &mut |k, w| session.give((k, w)), None);
                    return;
                }
                if !ready(epoch) {
                    stash.entry(epoch).or_default().append(data);
                    return;
                }
                result = std::mem::replace(&mut result, Ok(())).and(take_snapshots(
                    &mut touched,
                    epoch,
                    keys.logics,
                    &step_id,
                    me,
                    &mut snaps,
                ));
                let mut session = out.session_with_builder(&in_cap);
                let set = touched.entry(epoch).or_default();
                keys.apply(
                    data.drain(..),
                    &mut |k, w| session.give((k, w)),
                    Some((epoch, set)),
                );
            });

            let now = SystemTime::now();
            // Wake-ups stop at the end of the input: every key is closed then.
            if at_eof.is_none() {
                let mut session = out.session_with_builder(&*cap);
                let epoch = *cap.time();
                let mut set = snapshots_on.then(|| touched.entry(epoch).or_default());
                while let Some(key) = keys.timers.pop_due(now) {
                    let Some(live) = keys.logics.get_mut(&key) else {
                        continue;
                    };
                    let action = live.logic.on_notify(keys.emitted);
                    let wake = live.logic.notify_at();
                    let first = live.touch(epoch);
                    for w in keys.emitted.drain(..) {
                        session.give((key.clone(), w));
                    }
                    match action {
                        StateAction::Retain => keys.timers.set(&key, wake),
                        StateAction::Discard => {
                            keys.logics.remove(&key);
                        }
                    }
                    if first && let Some(set) = set.as_mut() {
                        set.push(key);
                    }
                }
            }

            // A graceful stop is not the end of the input: state is kept for the resume.
            if frontier.is_none() && (at_eof.is_some() || !stop.load(Ordering::Relaxed)) {
                let pending = at_eof.get_or_insert_with(|| {
                    let mut pending: Vec<T::K> = keys.logics.keys().cloned().collect();
                    pending.reverse();
                    pending
                });
                let mut session = out.session_with_builder(&*cap);
                let epoch = *cap.time();
                let mut set = snapshots_on.then(|| touched.entry(epoch).or_default());
                for _ in 0..EOF_CHUNK {
                    let Some(key) = pending.pop() else { break };
                    let Some(live) = keys.logics.get_mut(&key) else {
                        continue;
                    };
                    let action = live.logic.on_eof(keys.emitted);
                    // A key whose EOF neither emits nor discards is taken as unchanged, so
                    // that a resumed flow reaching EOF does not rewrite every key's state.
                    let changed = !keys.emitted.is_empty() || action == StateAction::Discard;
                    for w in keys.emitted.drain(..) {
                        session.give((key.clone(), w));
                    }
                    let first = changed && live.touch(epoch);
                    if action == StateAction::Discard {
                        keys.logics.remove(&key);
                    }
                    if first && let Some(set) = set.as_mut() {
                        set.push(key);
                    }
                }
            }
            let closing = at_eof.as_ref().is_some_and(|pending| !pending.is_empty());

            if let (Some(snap), Some(sc)) = (snap_out.as_mut(), snap_cap.as_ref()) {
                let limit = frontier.unwrap_or(u64::MAX);
                result = result.and(take_snapshots(
                    &mut touched,
                    limit,
                    keys.logics,
                    &step_id,
                    me,
                    &mut snaps,
                ));
                if !snaps.is_empty() {
                    snap.activate()
                        .session_with_builder(sc)
                        .give_container(&mut snaps);
                    snaps.clear();
                }
            }
            if let Err(err) = result {
                failure.fail(err);
                return;
            }

            match frontier {
                Some(f) => {
                    for c in snap_cap.iter_mut() {
                        if *c.time() < f {
                            c.downgrade(&f);
                        }
                    }
                    if let Some(at) = keys.timers.next() {
                        activator.activate_after(at.duration_since(SystemTime::now()).unwrap_or_default());
                    }
                }
                None if closing => activator.activate(),
                None => {
                    held = None;
                    snap_cap = None;
                }
            }
        }
    });
    if let Some(s) = snap_stream {
        ctx.add_snapshots(s);
    }
    Ok(out_stream)
}

/// Keys closed per activation at the end of the input.
const EOF_CHUNK: usize = 4096;

/// Batches with fewer items say too little about whether combining pays.
const BYPASS_SAMPLE: usize = 64;
/// How many batches to pass through after a batch combined less than 10 %.
const BYPASS_BATCHES: u32 = 32;
/// The per-key logic of one stateful operator and its scratch buffers.
struct Keys<'a, K, V, W, L, B> {
    logics: &'a mut FxHashMap<K, Live<L>>,
    timers: &'a mut Timers<K>,
    builder: &'a B,
    values: &'a mut Vec<V>,
    emitted: &'a mut Vec<W>,
}

impl<K: Key, V, W, L, B> Keys<'_, K, V, W, L, B>
where
    L: StatefulBatchLogic<V, W>,
    B: Fn(Option<L::State>) -> L,
{
    /// Runs a batch of items through their keys' logic (consecutive items of one key as
    /// one batch), emitting outputs and recording touched keys.
    #[inline]
    fn apply<T: KeyedItem<K = K, V = V>>(
        &mut self,
        data: impl Iterator<Item = T>,
        emit: &mut impl FnMut(K, W),
        mut touched: Option<(u64, &mut Vec<K>)>,
    ) {
        let mut items = data.map(KeyedItem::into_parts).peekable();
        while let Some((key, first)) = items.next() {
            self.values.push(first);
            while let Some((_, v)) = items.next_if(|(k, _)| *k == key) {
                self.values.push(v);
            }
            let live = match self.logics.get_mut(&key) {
                Some(live) => live,
                None => self.logics.entry(key.clone()).or_insert_with(|| Live {
                    logic: (self.builder)(None),
                    touched: NEVER,
                }),
            };
            let action = live.logic.on_batch(self.values.drain(..), self.emitted);
            let wake = live.logic.notify_at();
            let first = touched.as_ref().is_some_and(|(epoch, _)| live.touch(*epoch));
            for w in self.emitted.drain(..) {
                emit(key.clone(), w);
            }
            match action {
                StateAction::Retain => self.timers.set(&key, wake),
                StateAction::Discard => {
                    self.logics.remove(&key);
                    self.timers.set(&key, None);
                }
            }
            if first && let Some((_, keys)) = touched.as_mut() {
                keys.push(key);
            }
        }
    }
}

/// "Never touched", for [`Live::touched`].
const NEVER: u64 = u64::MAX;

/// A key's logic and the last epoch it was touched in, so that the keys to snapshot are
/// collected without a second hash lookup per item.
struct Live<L> {
    logic: L,
    touched: u64,
}

impl<L> Live<L> {
    /// Marks the key touched in `epoch`; true the first time in that epoch.
    #[inline]
    fn touch(&mut self, epoch: u64) -> bool {
        let first = self.touched != epoch;
        self.touched = epoch;
        first
    }
}

/// Snapshots the keys touched in every epoch before `limit`, with their current state
/// (`None` for discarded keys).
fn take_snapshots<K: Key, V, W, L: StatefulBatchLogic<V, W>>(
    touched: &mut BTreeMap<u64, Vec<K>>,
    limit: u64,
    logics: &FxHashMap<K, Live<L>>,
    step_id: &crate::flow::StepId,
    worker: usize,
    out: &mut Vec<Snapshot>,
) -> Result<(), FlowError> {
    while let Some(entry) = touched.first_entry() {
        let epoch = *entry.key();
        if epoch >= limit {
            break;
        }
        for key in entry.remove() {
            let state = match logics.get(&key) {
                Some(live) => {
                    Some(
                        codec::encode(&live.logic.snapshot()).map_err(|e| FlowError::Connector {
                            step: step_id.to_string(),
                            worker,
                            part: "-".into(),
                            message: format!("cannot encode the state of key {key:?}: {e}"),
                        })?,
                    )
                }
                None => None,
            };
            out.push(Snapshot {
                step_id: step_id.clone(),
                key: codec::encode_key(&key),
                epoch,
                state,
            });
        }
    }
    Ok(())
}

/// Combines values per key within each batch before the exchange, for associative
/// aggregations: the exchange then carries one item per key and batch.
pub(crate) fn pre_aggregate<'s, K, V, F>(
    stream: TStream<'s, (K, V)>,
    name: &str,
    step: usize,
    combine: Arc<F>,
) -> TStream<'s, (K, V)>
where
    K: Key,
    V: Data,
    F: Fn(V, V) -> V + Send + Sync + 'static,
{
    let mut acc: FxHashMap<K, Option<V>> = FxHashMap::default();
    // Batches still to pass through untouched because combining recently found (almost)
    // nothing to combine, e.g. when the upstream already aggregated per batch.
    let mut bypass: u32 = 0;
    stream.unary(Pipeline, name, move |_cap, _info| {
        move |input, output| {
            enter_step(step);
            input.for_each(|cap, data| {
                if bypass > 0 {
                    bypass -= 1;
                    output.session(&cap).give_container(data);
                    return;
                }
                let items = data.len();
                for (k, v) in data.drain(..) {
                    let slot = acc.entry(k).or_insert(None);
                    *slot = Some(match slot.take() {
                        Some(old) => combine(old, v),
                        None => v,
                    });
                }
                if items >= BYPASS_SAMPLE && acc.len() * 10 >= items * 9 {
                    bypass = BYPASS_BATCHES;
                }
                output
                    .session(&cap)
                    .give_iterator(acc.drain().filter_map(|(k, v)| Some((k, v?))));
            });
        }
    })
}
