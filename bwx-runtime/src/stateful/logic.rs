//! The logic traits of keyed stateful operators.

use std::time::SystemTime;

use crate::inputs::State;

/// Whether a key's state lives on after a callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateAction {
    /// Keep the state; the logic is called again for the key's next items.
    Retain,
    /// Drop the state; the key's next item builds fresh logic with no state.
    Discard,
}

/// Keyed logic that sees one value at a time (Bytewax's `StatefulLogic`).
///
/// A logic value exists per key. It is built by the operator's builder from the key's
/// resume state (`None` for a new key), and emits output by pushing into `out`; every
/// output is paired with the key.
pub trait StatefulLogic<V, W>: 'static {
    /// What [`snapshot`](Self::snapshot) returns and the builder resumes from.
    type State: State;

    /// Called for each value of the key.
    fn on_item(&mut self, value: V, out: &mut Vec<W>) -> StateAction;

    /// Called once the system time from [`notify_at`](Self::notify_at) has passed.
    fn on_notify(&mut self, out: &mut Vec<W>) -> StateAction {
        let _ = out;
        StateAction::Retain
    }

    /// Called when the input ends.
    fn on_eof(&mut self, out: &mut Vec<W>) -> StateAction {
        let _ = out;
        StateAction::Retain
    }

    /// The system time at which to call [`on_notify`](Self::on_notify), if any. Asked after
    /// every callback; the operator wakes at that time without polling.
    fn notify_at(&self) -> Option<SystemTime> {
        None
    }

    /// The key's state, taken when an epoch closes if recovery is on.
    fn snapshot(&self) -> Self::State;
}

/// Keyed logic that sees a key's values in batches (Bytewax's `StatefulBatchLogic`).
///
/// `on_batch` receives consecutive values of one key from one incoming batch, in arrival
/// order; a key's values of one batch may come in several calls.
pub trait StatefulBatchLogic<V, W>: 'static {
    /// What [`snapshot`](Self::snapshot) returns and the builder resumes from.
    type State: State;

    /// Called with values of the key; drain them.
    fn on_batch(&mut self, values: std::vec::Drain<'_, V>, out: &mut Vec<W>) -> StateAction;

    /// See [`StatefulLogic::on_notify`].
    fn on_notify(&mut self, out: &mut Vec<W>) -> StateAction {
        let _ = out;
        StateAction::Retain
    }

    /// See [`StatefulLogic::on_eof`].
    fn on_eof(&mut self, out: &mut Vec<W>) -> StateAction {
        let _ = out;
        StateAction::Retain
    }

    /// See [`StatefulLogic::notify_at`].
    fn notify_at(&self) -> Option<SystemTime> {
        None
    }

    /// See [`StatefulLogic::snapshot`].
    fn snapshot(&self) -> Self::State;
}

/// Runs a per-item [`StatefulLogic`] as batch logic: after an item discards the state, the
/// key's next item in the same batch gets fresh logic from the builder.
pub(crate) struct PerItem<L, B> {
    logic: Option<L>,
    builder: std::sync::Arc<B>,
}

impl<L, B> PerItem<L, B> {
    pub(crate) fn new(logic: L, builder: std::sync::Arc<B>) -> Self {
        PerItem {
            logic: Some(logic),
            builder,
        }
    }
}

impl<V, W, L, B> StatefulBatchLogic<V, W> for PerItem<L, B>
where
    L: StatefulLogic<V, W>,
    B: Fn(Option<L::State>) -> L + 'static,
{
    type State = L::State;

    #[inline]
    fn on_batch(&mut self, values: std::vec::Drain<'_, V>, out: &mut Vec<W>) -> StateAction {
        for value in values {
            let logic = self.logic.get_or_insert_with(|| (self.builder)(None));
            if logic.on_item(value, out) == StateAction::Discard {
                self.logic = None;
            }
        }
        self.action()
    }

    fn on_notify(&mut self, out: &mut Vec<W>) -> StateAction {
        if let Some(logic) = self.logic.as_mut()
            && logic.on_notify(out) == StateAction::Discard
        {
            self.logic = None;
        }
        self.action()
    }

    fn on_eof(&mut self, out: &mut Vec<W>) -> StateAction {
        if let Some(logic) = self.logic.as_mut()
            && logic.on_eof(out) == StateAction::Discard
        {
            self.logic = None;
        }
        self.action()
    }

    #[inline]
    fn notify_at(&self) -> Option<SystemTime> {
        self.logic.as_ref().and_then(L::notify_at)
    }

    fn snapshot(&self) -> Self::State {
        // The engine asks only for retained keys, and a retained key has logic.
        match &self.logic {
            Some(logic) => logic.snapshot(),
            None => (self.builder)(None).snapshot(),
        }
    }
}

impl<L, B> PerItem<L, B> {
    #[inline]
    fn action(&self) -> StateAction {
        if self.logic.is_some() {
            StateAction::Retain
        } else {
            StateAction::Discard
        }
    }
}
