//! The keyed stateful operator under every stateful step, and the local pre-aggregation
//! that runs before the exchange of associative aggregations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use rustc_hash::{FxHashMap, FxHashSet};
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

    #[inline]
    fn set(&mut self, key: &K, at: Option<SystemTime>) {
        // Most logic never asks for a wake-up: skip the lookup then.
        if at.is_none() && self.by_key.is_empty() {
            return;
        }
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

    let mut logics: FxHashMap<T::K, L> = FxHashMap::default();
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
            logics.insert(key, logic);
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

    op.build(move |mut caps| {
        let mut snap_cap = if snapshots_on { caps.pop() } else { None };
        let mut held = caps.pop();
        for c in held.iter_mut().chain(snap_cap.iter_mut()) {
            c.downgrade(&start);
        }
        // Keys touched per open epoch; only tracked with recovery on.
        let mut touched: BTreeMap<u64, FxHashSet<T::K>> = BTreeMap::new();
        let mut values: Vec<T::V> = Vec::new();
        let mut emitted: Vec<W> = Vec::new();
        // The newest epoch whose items were applied. The held capability follows the
        // frontier only at the end of an activation, so it can lag behind it; changes made
        // after those items (timers, EOF) belong to this epoch or later, never earlier.
        let mut newest = start;
        move |frontiers| {
            enter_step(step_index);
            if failure.should_stop() {
                return;
            }
            let mut out = output.activate();
            input.for_each(|cap, data| {
                let epoch = cap.least().copied().unwrap_or_default();
                newest = newest.max(epoch);
                let mut session = out.session_with_builder(&cap);
                let mut items = data.drain(..).map(KeyedItem::into_parts).peekable();
                while let Some((key, first)) = items.next() {
                    values.push(first);
                    while let Some((_, v)) = items.next_if(|(k, _)| *k == key) {
                        values.push(v);
                    }
                    let logic = match logics.get_mut(&key) {
                        Some(logic) => logic,
                        None => logics.entry(key.clone()).or_insert_with(|| builder(None)),
                    };
                    let action = logic.on_batch(values.drain(..), &mut emitted);
                    let wake = logic.notify_at();
                    for w in emitted.drain(..) {
                        session.give((key.clone(), w));
                    }
                    match action {
                        StateAction::Retain => timers.set(&key, wake),
                        StateAction::Discard => {
                            logics.remove(&key);
                            timers.set(&key, None);
                        }
                    }
                    if snapshots_on {
                        touched.entry(epoch).or_default().insert(key);
                    }
                }
            });

            let Some(cap) = held.as_mut() else { return };
            let now = SystemTime::now();
            {
                let mut session = out.session_with_builder(&*cap);
                while let Some(key) = timers.pop_due(now) {
                    let Some(logic) = logics.get_mut(&key) else {
                        continue;
                    };
                    let action = logic.on_notify(&mut emitted);
                    let wake = logic.notify_at();
                    for w in emitted.drain(..) {
                        session.give((key.clone(), w));
                    }
                    match action {
                        StateAction::Retain => timers.set(&key, wake),
                        StateAction::Discard => {
                            logics.remove(&key);
                        }
                    }
                    if snapshots_on {
                        touched.entry(newest.max(*cap.time())).or_default().insert(key);
                    }
                }
            }

            let frontier = frontiers[0].frontier().first().copied();
            if frontier.is_none() {
                let mut session = out.session_with_builder(&*cap);
                let mut gone = Vec::new();
                for (key, logic) in logics.iter_mut() {
                    let action = logic.on_eof(&mut emitted);
                    for w in emitted.drain(..) {
                        session.give((key.clone(), w));
                    }
                    if action == StateAction::Discard {
                        gone.push(key.clone());
                    }
                    if snapshots_on {
                        touched
                            .entry(newest.max(*cap.time()))
                            .or_default()
                            .insert(key.clone());
                    }
                }
                for key in gone {
                    logics.remove(&key);
                }
            }

            if let (Some(snap), Some(sc)) = (snap_out.as_mut(), snap_cap.as_ref()) {
                let mut snap = snap.activate();
                let mut session = snap.session_with_builder(sc);
                let closed: Vec<u64> = touched
                    .keys()
                    .copied()
                    .take_while(|e| frontier.is_none_or(|f| *e < f))
                    .collect();
                for epoch in closed {
                    for key in touched.remove(&epoch).into_iter().flatten() {
                        let state = match logics.get(&key) {
                            Some(logic) => match codec::encode(&logic.snapshot()) {
                                Ok(bytes) => Some(bytes),
                                Err(e) => {
                                    failure.fail(FlowError::Connector {
                                        step: step_id.to_string(),
                                        worker: me,
                                        part: "-".into(),
                                        message: format!("cannot encode the state of key {key:?}: {e}"),
                                    });
                                    return;
                                }
                            },
                            None => None,
                        };
                        session.give(Snapshot {
                            step_id: step_id.clone(),
                            key: codec::encode_key(&key),
                            epoch,
                            state,
                        });
                    }
                }
            }

            match frontier {
                Some(f) => {
                    for c in held.iter_mut().chain(snap_cap.iter_mut()) {
                        if *c.time() < f {
                            c.downgrade(&f);
                        }
                    }
                    if let Some(at) = timers.next() {
                        activator.activate_after(at.duration_since(SystemTime::now()).unwrap_or_default());
                    }
                }
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
