//! The keyed stateful operator under every stateful step, and the local pre-aggregation
//! that runs before the exchange of associative aggregations.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use rustc_hash::FxHashMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{OutputBuilder, OutputBuilderSession};
use timely::dataflow::operators::{Capability, Operator};

use crate::errors::{Cause, FlowError};
use crate::flow::{StepId, StepInfo};
use crate::monitor::meter::Meter;
use crate::operators::KeyedItem;
use crate::recovery::{Route, Snapshot, Stored, StoredStates, codec};
use crate::stateful::logic::StatefulBatchLogic;
use crate::{Data, ExchangeData, Key, route_hash};

use super::epochs::{EpochSteps, Epochs, SnapshotPort};
use super::failure::enter_step;
pub(crate) use super::keyed_store::{KeyedStore, Touched};
use super::per_key::PerKey;
use super::{BuildCtx, TStream};

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
    resume(&mut store, &ctx.resume_states(&step.id), &step.id, me, peers)?;

    let mut op = OperatorBuilder::new(step.id.to_string(), ctx.scope);
    let activator = ctx.scope.activator_for(op.operator_info().address.clone());
    let mut input = op.new_input(stream, Exchange::new(S::route));
    let (output, out_stream) = op.new_output::<Vec<(S::Key, W)>>();
    let mut output = OutputBuilder::<_, CapacityContainerBuilder<Vec<(S::Key, W)>>>::from(output);
    let (snap_output, snap_stream) = snapshots_on.then(|| op.new_output::<Vec<Snapshot>>()).unzip();
    let failure = ctx.failure.clone();
    let start = ctx.config.start_epoch;
    let stopping = ctx.config.stopping.clone();
    let meter = ctx.meter_plan(step).keyed_meter();

    op.build(move |mut caps| {
        // The snapshot output, when there is one, is the last: its capability too.
        let port = snap_output.and_then(|o| caps.pop().map(|c| SnapshotPort::new(o, c, start)));
        let mut held = caps.pop();
        if let Some(c) = held.as_mut() {
            c.downgrade(&start);
        }
        let mut epochs = Epochs::new(start, port, false);
        // With recovery on, the keys each open epoch changed, each once.
        let mut touched: BTreeMap<u64, Vec<S::Key>> = BTreeMap::new();
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
            let ended = frontier.is_none();
            // A graceful stop is not the end of the input: state is kept for the resume.
            let eof = ended && (at_eof || !stopping.load(Ordering::SeqCst));
            // Epochs before the frontier close; at the end every stashed item is applied
            // first, in the last epoch, which stays open while the state closes.
            let open_until = frontier.unwrap_or_else(|| epochs.last_open());
            let mut out = output.activate();
            let mut steps = KeyedSteps {
                store: &mut store,
                out: &mut out,
                cap,
                touched: &mut touched,
                recovering: snapshots_on,
                step: &step_id,
                worker: me,
                meter: &meter,
                emitted: 0,
                _items: PhantomData,
            };
            let mut result = epochs.advance(Some(open_until), &mut steps);
            if *steps.cap.time() < open_until {
                steps.cap.downgrade(&open_until);
            }
            input.for_each(|in_cap, data| {
                let epoch = in_cap.least().copied().unwrap_or_default();
                if result.is_ok() {
                    result = epochs.admit(epoch, data, &mut steps);
                }
                data.clear();
            });
            let now_epoch = *steps.cap.time();
            // Wake-ups stop at the end of the input: all state is closed then.
            if !at_eof && steps.wake(now_epoch) {
                epochs.touch(now_epoch);
            }
            let mut closing = false;
            if eof {
                at_eof = true;
                let (more, changed) = steps.close_at_eof(now_epoch);
                closing = more;
                if changed {
                    epochs.touch(now_epoch);
                }
            }
            if ended && !closing && result.is_ok() {
                result = epochs.advance(None, &mut steps);
            }
            meter.items_out(steps.emitted);
            drop(out);
            meter.keys(store.held_keys());
            if let Err(err) = result {
                failure.fail(err);
                return;
            }
            match frontier {
                Some(_) => {
                    if let Some(at) = meter.time_notify_at(|| store.next_wake()) {
                        activator.activate_after(at.duration_since(SystemTime::now()).unwrap_or_default());
                    }
                }
                None if closing => activator.activate(),
                None => held = None,
            }
        }
    });
    if let Some(s) = snap_stream {
        ctx.add_snapshots(s);
    }
    Ok(out_stream)
}

/// Puts back the stored state of the keys this worker owns, and shows the store the states
/// every worker sees; the routing hash says which is which, so no key this worker does not
/// own is decoded.
fn resume<T, W, S: KeyedStore<T, W>>(
    store: &mut S,
    stored: &StoredStates,
    step: &StepId,
    me: usize,
    peers: usize,
) -> Result<(), FlowError> {
    let bad = |what: &'static str, key: &[u8], e: codec::CodecError| FlowError::StateDecode {
        step: step.to_string(),
        worker: me,
        what,
        key: crate::recovery::codec::printable_key(key),
        cause: Cause::new(e),
    };
    for (key, Stored { route, state }) in stored.iter() {
        let mine = match route {
            Route::Key(hash) | Route::KeyForAll(hash) => hash % peers.max(1) as u64 == me as u64,
            Route::Partition => true,
        };
        let state: S::State = codec::decode(state).map_err(|e| bad("state", key, e))?;
        if mine {
            let decoded: S::Key = codec::decode_key(key).map_err(|e| bad("key", key, e))?;
            store.resume(decoded, state);
        } else {
            store.resume_other(state);
        }
    }
    Ok(())
}

/// The keyed operator's output, activated for one call.
type KeyedOut<'o, K, W> = OutputBuilderSession<'o, u64, CapacityContainerBuilder<Vec<(K, W)>>>;

/// What the keyed operator does at each stage of an epoch, for one activation.
struct KeyedSteps<'a, 'o, S: KeyedStore<T, W>, T, W: Data> {
    store: &'a mut S,
    out: &'a mut KeyedOut<'o, S::Key, W>,
    /// The output capability, at the oldest open epoch.
    cap: &'a mut Capability<u64>,
    /// With recovery on, the keys each open epoch changed.
    touched: &'a mut BTreeMap<u64, Vec<S::Key>>,
    recovering: bool,
    step: &'a StepId,
    worker: usize,
    meter: &'a Meter,
    /// Items emitted in this activation, counted into the step's output once.
    emitted: usize,
    _items: PhantomData<fn(T)>,
}

impl<S: KeyedStore<T, W>, T, W: Data> KeyedSteps<'_, '_, S, T, W> {
    /// Runs the wake-ups due now, in `epoch`; true if any key changed.
    fn wake(&mut self, epoch: u64) -> bool {
        let mut session = self.out.session_with_builder(&*self.cap);
        let mut set = self
            .recovering
            .then(|| (epoch, self.touched.entry(epoch).or_default()));
        let before = set.as_ref().map_or(0, |(_, keys)| keys.len());
        let before_emitted = self.emitted;
        let emitted = &mut self.emitted;
        self.meter.time_notify(|| {
            self.store.wake(
                SystemTime::now(),
                &mut |k, w| {
                    *emitted += 1;
                    session.give((k, w))
                },
                set.as_mut().map(|(e, keys)| (*e, &mut **keys)),
            )
        });
        self.emitted > before_emitted || set.is_some_and(|(_, keys)| keys.len() > before)
    }

    /// Closes a share of the state at the end of the input, in `epoch`: whether some is
    /// left, and whether any key changed.
    fn close_at_eof(&mut self, epoch: u64) -> (bool, bool) {
        let mut session = self.out.session_with_builder(&*self.cap);
        let mut set = self
            .recovering
            .then(|| (epoch, self.touched.entry(epoch).or_default()));
        let before = set.as_ref().map_or(0, |(_, keys)| keys.len());
        let emitted = &mut self.emitted;
        let more = self.meter.time_eof(|| {
            self.store.close_at_eof(
                &mut |k, w| {
                    *emitted += 1;
                    session.give((k, w))
                },
                set.as_mut().map(|(e, keys)| (*e, &mut **keys)),
            )
        });
        (more, set.is_some_and(|(_, keys)| keys.len() > before))
    }
}

impl<S: KeyedStore<T, W>, T, W: Data> EpochSteps<T> for KeyedSteps<'_, '_, S, T, W> {
    fn apply(&mut self, epoch: u64, items: &mut Vec<T>) -> Result<(), FlowError> {
        let at = self.cap.delayed(&epoch);
        let mut session = self.out.session_with_builder(&at);
        let set = self
            .recovering
            .then(|| (epoch, self.touched.entry(epoch).or_default()));
        self.meter.items_in(items.len());
        let emitted = &mut self.emitted;
        self.meter.time(|| {
            self.store.apply(
                items.drain(..),
                &mut |k, w| {
                    *emitted += 1;
                    session.give((k, w))
                },
                set,
            )
        });
        Ok(())
    }

    fn close(&mut self, epoch: u64, snapshots: &mut Vec<Snapshot>) -> Result<(), FlowError> {
        let Some(keys) = self.touched.remove(&epoch) else {
            return Ok(());
        };
        let mut result = Ok(());
        let (step, worker, store) = (self.step, self.worker, &*self.store);
        self.meter.time_snapshot(|| {
            store.snapshot_keys(keys, &mut |key, state| {
                if result.is_err() {
                    return;
                }
                // The store routes by the key's hash (per-worker windows too): the key's owner
                // resumes it, and every worker sees it when the store asks to.
                let hash = route_hash(&key);
                let route = if S::SEES_OTHER_KEYS {
                    Route::KeyForAll(hash)
                } else {
                    Route::Key(hash)
                };
                let encoded = codec::encode_key(&key)
                    .and_then(|k| Ok((k, state.map(|s| codec::encode(&s)).transpose()?)));
                match encoded {
                    Ok((key, state)) => snapshots.push(Snapshot {
                        step_id: step.clone(),
                        key,
                        route,
                        epoch,
                        state,
                    }),
                    Err(e) => {
                        result = Err(FlowError::StateEncode {
                            step: step.to_string(),
                            worker,
                            key: format!("{key:?}"),
                            cause: Cause::new(e),
                        })
                    }
                }
            })
        });
        result
    }
}

/// Batches with fewer items say too little about whether combining pays.
const BYPASS_SAMPLE: usize = 64;
/// How many batches to pass through after a batch combined less than 10 %.
const BYPASS_BATCHES: u32 = 32;

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
