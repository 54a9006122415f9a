//! [`KeyedStore`]: what a worker keeps for one keyed stateful step, below the keyed operator
//! that routes items to it and drives its epochs.

use std::time::SystemTime;

use crate::inputs::State;
use crate::key::Key;

/// Keys changed in the current epoch (each once), for its snapshot; `None` when recovery
/// is off.
pub(crate) type Touched<'a, K> = Option<(u64, &'a mut Vec<K>)>;

/// What a worker keeps for one keyed stateful step, and what the keyed operator asks of
/// it. The operator owns routing, epochs, snapshots, wake-up scheduling and the end of the
/// input; the store owns the keys' state. Most steps keep one logic per key
/// ([`PerKey`](super::per_key::PerKey)); a store may also lay state out across keys (per-worker windows).
pub(crate) trait KeyedStore<T, W>: 'static {
    /// The key of the state (and of every output).
    type Key: Key;

    /// A key's state as recovery stores it.
    type State: State;

    /// Whether [`resume_other`](Self::resume_other) wants the stored states of the keys
    /// other workers own (they are decoded only then).
    const SEES_OTHER_KEYS: bool = false;

    /// The routing hash of an item: of `n` workers, worker `hash % n` gets it (as
    /// [`worker_for_key`](crate::worker_for_key) for a key's [`route_hash`](crate::route_hash)).
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

    /// The current state of each of `keys` (`None` for a key that has none left).
    fn snapshot_keys(&self, keys: Vec<Self::Key>, each: &mut impl FnMut(Self::Key, Option<Self::State>));
}
