//! The keyed stateful operator under every stateful step, and the local pre-aggregation
//! that runs before the exchange of associative aggregations.

use std::collections::BTreeMap;
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
use crate::inputs::State;
use crate::operators::KeyedItem;
use crate::recovery::{Snapshot, codec};
use crate::stateful::StatefulBatchLogic;
use crate::{Data, ExchangeData, Key, worker_for_key};

use super::failure::enter_step;
use super::per_key::PerKey;
use super::{BuildCtx, TStream};

/// Keys changed in the current epoch (each once), for its snapshot; `None` when recovery
/// is off.
pub(crate) type Touched<'a, K> = Option<(u64, &'a mut Vec<K>)>;

/// What a worker keeps for one keyed stateful step, and what the keyed operator asks of
/// it. The operator owns routing, epochs, snapshots, wake-up scheduling and the end of the
/// input; the store owns the keys' state. Most steps keep one logic per key
/// ([`PerKey`]); a store may also lay state out across keys (per-worker windows).
pub(crate) trait KeyedStore<T, W>: 'static {
    /// The key of the state (and of every output).
    type Key: Key;

    /// A key's state as recovery stores it.
    type State: State;

    /// Whether [`resume_other`](Self::resume_other) wants the stored states of the keys
    /// other workers own (they are decoded only then).
    const SEES_OTHER_KEYS: bool = false;

    /// The routing hash of an item: of `n` workers, worker `hash % n` gets it (as
    /// [`worker_for_key`] for a key's [`route_hash`]).
    fn route(item: &T) -> u64;

    /// Puts back a key's stored state when a flow resumes.
    fn resume(&mut self, key: Self::Key, state: Self::State);

    /// Sees the stored state of a key another worker owns, e.g. to restore a watermark
    /// that all keys share.
    fn resume_other(&mut self, state: Self::State) {
        let _ = state;
    }

    /// Runs a batch of items, emitting outputs and recording the keys it changed.
    fn apply(
        &mut self,
        items: impl Iterator<Item = T>,
        emit: &mut impl FnMut(Self::Key, W),
        touched: Touched<'_, Self::Key>,
    );

    /// Runs the wake-ups due at `now`.
    fn wake(&mut self, now: SystemTime, emit: &mut impl FnMut(Self::Key, W), touched: Touched<'_, Self::Key>);

    /// When the next wake-up is due.
    fn next_wake(&self) -> Option<SystemTime>;

    /// At the end of the input, closes a share of the state (so that the steps downstream
    /// take each share's results before the next); true while some is left.
    fn close_at_eof(&mut self, emit: &mut impl FnMut(Self::Key, W), touched: Touched<'_, Self::Key>) -> bool;

    /// How many keys hold state, if the store counts them (for the `bwx_step_keys` gauge).
    fn held_keys(&self) -> Option<usize> {
        None
    }

    /// The current state of each of `keys` (`None` for a key that has none left).
    fn snapshot_keys(&self, keys: Vec<Self::Key>, each: &mut impl FnMut(Self::Key, Option<Self::State>));
}

/// Builds the keyed stateful operator with one [`StatefulBatchLogic`] per key, made by
/// `builder` from the key's resume state.
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
    let store = PerKey::<T::K, T::V, W, L, _>::new(move |resume| builder(resume));
    keyed_operator::<T, W, _>(ctx, step, stream, store)
}

/// Builds the keyed stateful operator: items are exchanged by the store's routing hash
/// (for keyed items, the key's) and each key's state lives in `store` on the worker that
/// owns the key.
pub(crate) fn keyed_operator<'s, T, W, S>(
    ctx: &mut BuildCtx<'s>,
    step: &StepInfo,
    stream: TStream<'s, T>,
    mut store: S,
) -> Result<TStream<'s, (S::Key, W)>, FlowError>
where
    T: ExchangeData,
    W: Data,
    S: KeyedStore<T, W>,
{
    let me = ctx.worker_index();
    let peers = ctx.worker_count();
    let step_index = ctx.step_index;
    let step_id = step.id.clone();
    let snapshots_on = ctx.snapshots_enabled();

    if let Some(recovery) = &ctx.config.recovery {
        for (key, state) in recovery.resume_states(&step.id)?.iter() {
            let bad = |what: &str, e: codec::CodecError| FlowError::Connector {
                step: step.id.to_string(),
                worker: me,
                part: "-".into(),
                message: format!("cannot decode a stored {what}: {e}"),
            };
            let key: S::Key = codec::decode_key(key).map_err(|e| bad("key", e))?;
            let mine = worker_for_key(&key, peers) == me;
            if !mine && !S::SEES_OTHER_KEYS {
                continue;
            }
            let state: S::State = codec::decode(state).map_err(|e| bad("state", e))?;
            if mine {
                store.resume(key, state);
            } else {
                store.resume_other(state);
            }
        }
    }

    let mut op = OperatorBuilder::new(step.id.to_string(), ctx.scope);
    let activator = ctx.scope.activator_for(op.operator_info().address.clone());
    let mut input = op.new_input(stream, Exchange::new(S::route));
    let (output, out_stream) = op.new_output::<Vec<(S::Key, W)>>();
    let mut output = OutputBuilder::<_, CapacityContainerBuilder<Vec<(S::Key, W)>>>::from(output);
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
    let meter = ctx.meter_plan(step).keyed_meter();

    op.build(move |mut caps| {
        let mut snap_cap = if snapshots_on { caps.pop() } else { None };
        let mut held = caps.pop();
        for c in held.iter_mut().chain(snap_cap.iter_mut()) {
            c.downgrade(&start);
        }
        // Keys touched per open epoch, each once; only tracked with recovery on.
        let mut touched: BTreeMap<u64, Vec<S::Key>> = BTreeMap::new();
        // With recovery on, items of epochs after the oldest open one wait here, so that
        // each epoch's snapshot holds exactly the state at its end.
        let mut stash: BTreeMap<u64, Vec<T>> = BTreeMap::new();
        let mut snaps: Vec<Snapshot> = Vec::new();
        // Whether the end of the input was reached and the store is closing its state.
        let mut at_eof = false;
        move |frontiers| {
            enter_step(step_index);
            if failure.should_stop() {
                return;
            }
            let Some(cap) = held.as_mut() else { return };
            let frontier = frontiers[0].frontier().first().copied();
            meter.frontier(frontier);
            let mut emitted = 0;
            // Items of the oldest open epoch (or of closed ones) can be applied now.
            let ready = |e: u64| frontier.is_none_or(|f| e <= f);
            let mut out = output.activate();
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
                    &store,
                    &step_id,
                    me,
                    &mut snaps,
                ));
                let at = cap.delayed(&epoch);
                let mut session = out.session_with_builder(&at);
                let set = touched.entry(epoch).or_default();
                meter.time(|| {
                    store.apply(
                        items.drain(..),
                        &mut |k, w| {
                            emitted += 1;
                            session.give((k, w))
                        },
                        Some((epoch, set)),
                    )
                });
            }
            if let Some(f) = frontier
                && *cap.time() < f
            {
                cap.downgrade(&f);
            }

            input.for_each(|in_cap, data| {
                let epoch = in_cap.least().copied().unwrap_or_default();
                meter.items_in(data.len());
                if !snapshots_on {
                    let mut session = out.session_with_builder(&in_cap);
                    meter.time(|| {
                        store.apply(
                            data.drain(..),
                            &mut |k, w| {
                                emitted += 1;
                                session.give((k, w))
                            },
                            None,
                        )
                    });
                    return;
                }
                if !ready(epoch) {
                    stash.entry(epoch).or_default().append(data);
                    return;
                }
                result = std::mem::replace(&mut result, Ok(())).and(take_snapshots(
                    &mut touched,
                    epoch,
                    &store,
                    &step_id,
                    me,
                    &mut snaps,
                ));
                let mut session = out.session_with_builder(&in_cap);
                let set = touched.entry(epoch).or_default();
                meter.time(|| {
                    store.apply(
                        data.drain(..),
                        &mut |k, w| {
                            emitted += 1;
                            session.give((k, w))
                        },
                        Some((epoch, set)),
                    )
                });
            });

            // Wake-ups stop at the end of the input: all state is closed then.
            if !at_eof {
                let mut session = out.session_with_builder(&*cap);
                let epoch = *cap.time();
                let set = snapshots_on.then(|| (epoch, touched.entry(epoch).or_default()));
                meter.time_notify(|| {
                    store.wake(
                        SystemTime::now(),
                        &mut |k, w| {
                            emitted += 1;
                            session.give((k, w))
                        },
                        set,
                    )
                });
            }

            // A graceful stop is not the end of the input: state is kept for the resume.
            let mut closing = false;
            if frontier.is_none() && (at_eof || !stop.load(Ordering::Relaxed)) {
                at_eof = true;
                let mut session = out.session_with_builder(&*cap);
                let epoch = *cap.time();
                let set = snapshots_on.then(|| (epoch, touched.entry(epoch).or_default()));
                closing = meter.time_eof(|| {
                    store.close_at_eof(
                        &mut |k, w| {
                            emitted += 1;
                            session.give((k, w))
                        },
                        set,
                    )
                });
            }

            meter.items_out(emitted);
            meter.keys(store.held_keys());
            if let (Some(snap), Some(sc)) = (snap_out.as_mut(), snap_cap.as_ref()) {
                let limit = frontier.unwrap_or(u64::MAX);
                result =
                    result.and(meter.time_snapshot(|| {
                        take_snapshots(&mut touched, limit, &store, &step_id, me, &mut snaps)
                    }));
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
                    if let Some(at) = meter.time_notify_at(|| store.next_wake()) {
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

/// Batches with fewer items say too little about whether combining pays.
const BYPASS_SAMPLE: usize = 64;
/// How many batches to pass through after a batch combined less than 10 %.
const BYPASS_BATCHES: u32 = 32;

/// Snapshots the keys touched in every epoch before `limit`, with their current state
/// (`None` for keys whose state is gone).
fn take_snapshots<T, W, S: KeyedStore<T, W>>(
    touched: &mut BTreeMap<u64, Vec<S::Key>>,
    limit: u64,
    store: &S,
    step_id: &crate::flow::StepId,
    worker: usize,
    out: &mut Vec<Snapshot>,
) -> Result<(), FlowError> {
    let mut result = Ok(());
    while let Some(entry) = touched.first_entry() {
        let epoch = *entry.key();
        if epoch >= limit {
            break;
        }
        store.snapshot_keys(entry.remove(), &mut |key, state| {
            let state = match state.map(|s| codec::encode(&s)).transpose() {
                Ok(state) => state,
                Err(e) => {
                    if result.is_ok() {
                        result = Err(FlowError::Connector {
                            step: step_id.to_string(),
                            worker,
                            part: "-".into(),
                            message: format!("cannot encode the state of key {key:?}: {e}"),
                        });
                    }
                    return;
                }
            };
            out.push(Snapshot {
                step_id: step_id.clone(),
                key: codec::encode_key(&key),
                epoch,
                state,
            });
        });
        if result.is_err() {
            break;
        }
    }
    result
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
