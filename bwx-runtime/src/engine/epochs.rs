//! The life cycle of an epoch in a stateful operator, the same for sources, keyed steps and
//! sinks: which items an epoch holds, when it closes, its snapshots, and its commit.
//!
//! Epochs are timely timestamps. An operator instance sees an epoch in four stages:
//!
//! 1. **open**: items of the epoch are applied as they come. With recovery on, items of a
//!    later epoch that arrive first wait in a stash, so that nothing of a later epoch is
//!    applied before an earlier one closes;
//! 2. **closed**: once the input frontier passes the epoch, [`EpochSteps::close`] runs:
//!    sinks pre-commit, and every operator writes what the epoch changed as [`Snapshot`]s;
//! 3. **durable**: the snapshots go to the recovery store, whose durable frontier comes
//!    back to every worker ([`super::durability`]);
//! 4. **committed**: [`EpochSteps::commit`] runs once the epoch is durable in every
//!    recovery partition (at once after `close` without recovery).
//!
//! Only epochs in which something happened ([`Epochs::touch`]) are closed and committed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pushers::Output;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;

use crate::errors::FlowError;
use crate::recovery::Snapshot;

/// What an operator does at each stage of an epoch; [`Epochs`] calls it in order.
pub(crate) trait EpochSteps<T> {
    /// Applies items of the open epoch `epoch`.
    fn apply(&mut self, epoch: u64, items: &mut Vec<T>) -> Result<(), FlowError>;

    /// `epoch` closed: every item of it is applied and none of a later one. Sinks
    /// pre-commit here; with recovery on, push what the epoch changed to `snapshots`.
    fn close(&mut self, epoch: u64, snapshots: &mut Vec<Snapshot>) -> Result<(), FlowError>;

    /// `epoch` is durable in every recovery partition (or closed, without recovery).
    fn commit(&mut self, epoch: u64) -> Result<(), FlowError> {
        let _ = epoch;
        Ok(())
    }
}

/// The output an operator writes its snapshots to, with the capability that keeps the
/// recovery store from taking an epoch as complete before the operator closed it.
pub(crate) struct SnapshotPort {
    output: OutputBuilder<u64, CapacityContainerBuilder<Vec<Snapshot>>>,
    cap: Option<Capability<u64>>,
}

impl SnapshotPort {
    /// Wraps a snapshot output and its capability, downgraded to `start`.
    pub(crate) fn new(output: Output<u64, Vec<Snapshot>>, mut cap: Capability<u64>, start: u64) -> Self {
        cap.downgrade(&start);
        SnapshotPort {
            output: OutputBuilder::from(output),
            cap: Some(cap),
        }
    }

    fn send(&mut self, at: u64, snapshots: &mut Vec<Snapshot>) {
        if snapshots.is_empty() {
            return;
        }
        if let Some(cap) = &self.cap {
            let at = cap.delayed(&at);
            self.output
                .activate()
                .session_with_builder(&at)
                .give_container(snapshots);
        }
        snapshots.clear();
    }

    fn downgrade(&mut self, frontier: Option<u64>) {
        match frontier {
            Some(f) => {
                if let Some(cap) = self.cap.as_mut().filter(|c| *c.time() < f) {
                    cap.downgrade(&f);
                }
            }
            None => self.cap = None,
        }
    }
}

/// One operator instance's epochs (see the [module docs](self)).
pub(crate) struct Epochs<T> {
    /// The oldest epoch that is not closed.
    open: u64,
    /// With recovery on, items of epochs after `open`, by epoch.
    stash: BTreeMap<u64, Vec<T>>,
    /// Epochs at or after `open` in which something happened.
    touched: BTreeSet<u64>,
    /// Closed epochs waiting for their commit, oldest first.
    uncommitted: VecDeque<u64>,
    /// With recovery on: where snapshots go. Epochs are then exact (stashed).
    snapshots: Option<SnapshotPort>,
    /// The snapshots of the epoch being closed.
    pending: Vec<Snapshot>,
    /// Whether the operator commits epochs (sinks and sources do).
    commits: bool,
    /// Whether commits wait for the durable frontier (recovery on) or follow `close`.
    wait_for_durable: bool,
}

impl<T> Epochs<T> {
    /// Epochs from `start` on; `snapshots` is the snapshot output with recovery on;
    /// `commits` whether [`EpochSteps::commit`] is wanted.
    pub(crate) fn new(start: u64, snapshots: Option<SnapshotPort>, commits: bool) -> Self {
        Epochs {
            open: start,
            stash: BTreeMap::new(),
            touched: BTreeSet::new(),
            uncommitted: VecDeque::new(),
            commits,
            wait_for_durable: snapshots.is_some(),
            snapshots,
            pending: Vec::new(),
        }
    }

    /// Whether recovery is on: epochs are exact and snapshots are taken.
    pub(crate) fn recovering(&self) -> bool {
        self.snapshots.is_some()
    }

    /// The newest epoch that has items waiting, or the oldest open one.
    pub(crate) fn last_open(&self) -> u64 {
        self.stash
            .last_key_value()
            .map_or(self.open, |(e, _)| (*e).max(self.open))
    }

    /// Notes that something happened in `epoch` outside [`admit`](Self::admit) (a timer,
    /// the end of the input), so that the epoch is closed and committed.
    pub(crate) fn touch(&mut self, epoch: u64) {
        self.touched.insert(epoch.max(self.open));
    }

    /// Items of `epoch` arrived: applied now, or stashed until the epochs before it close.
    pub(crate) fn admit(
        &mut self,
        epoch: u64,
        items: &mut Vec<T>,
        steps: &mut impl EpochSteps<T>,
    ) -> Result<(), FlowError> {
        if self.recovering() && epoch > self.open {
            self.stash.entry(epoch).or_default().append(items);
            return Ok(());
        }
        self.touched.insert(epoch.max(self.open));
        steps.apply(epoch, items)
    }

    /// The input frontier moved to `frontier` (`None`: the input ended): every epoch
    /// before it closes, oldest first, each after its stashed items; then the items of
    /// the new oldest open epoch are applied, and the snapshots sent.
    pub(crate) fn advance(
        &mut self,
        frontier: Option<u64>,
        steps: &mut impl EpochSteps<T>,
    ) -> Result<(), FlowError> {
        let limit = frontier.unwrap_or(u64::MAX);
        loop {
            let next = match (self.stash.first_key_value(), self.touched.first()) {
                (Some((s, _)), Some(t)) => (*s).min(*t),
                (Some((s, _)), None) => *s,
                (None, Some(t)) => *t,
                (None, None) => break,
            };
            if next >= limit {
                break;
            }
            if let Some(mut items) = self.stash.remove(&next) {
                steps.apply(next, &mut items)?;
            }
            self.touched.remove(&next);
            self.open = next;
            steps.close(next, &mut self.pending)?;
            // At the epoch's own time: the store takes the epoch as complete once its
            // input frontier passes it, so a later time could arrive after that.
            match self.snapshots.as_mut() {
                Some(port) => port.send(next, &mut self.pending),
                None => self.pending.clear(),
            }
            if self.commits {
                self.uncommitted.push_back(next);
            }
        }
        if let Some(f) = frontier {
            self.open = self.open.max(f);
            if let Some(mut items) = self.stash.remove(&f) {
                self.touched.insert(f);
                steps.apply(f, &mut items)?;
            }
        }
        if let Some(port) = self.snapshots.as_mut() {
            port.downgrade(frontier);
        }
        if !self.wait_for_durable {
            self.durable(frontier, steps)?;
        }
        Ok(())
    }

    /// The cluster's durable frontier moved to `frontier`: closed epochs before it commit.
    pub(crate) fn durable(
        &mut self,
        frontier: Option<u64>,
        steps: &mut impl EpochSteps<T>,
    ) -> Result<(), FlowError> {
        while let Some(&epoch) = self.uncommitted.front() {
            if frontier.is_some_and(|f| epoch >= f) {
                break;
            }
            self.uncommitted.pop_front();
            steps.commit(epoch)?;
        }
        Ok(())
    }

    /// Whether every closed epoch has committed.
    pub(crate) fn all_committed(&self) -> bool {
        self.uncommitted.is_empty()
    }
}
