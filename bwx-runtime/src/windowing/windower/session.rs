//! Session windows: a key's items separated by less than a gap.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::super::{WindowId, WindowMetadata, duration_ms};
use super::{Windower, WindowerLogic};

/// The window id given to late items by [`SessionWindower`] (Bytewax's
/// `LATE_SESSION_ID`): a late item belongs to no session.
pub const LATE_SESSION_ID: WindowId = -1;

/// Session windows: items of a key whose timestamps are at most `gap` apart belong to the
/// same session. An item that falls within `gap` of two sessions merges them (the merged
/// session keeps the smaller id and lists the other in
/// [`merged_ids`](super::super::WindowMetadata::merged_ids)). A session's `close_time` is
/// its last item's timestamp (inclusive); it closes once the watermark is past
/// `close_time + gap`. Ids count a key's sessions from 0.
///
/// ```
/// use std::time::Duration;
/// use bwx::windowing::{EventClock, SessionWindower};
/// use bwx::prelude::*;
/// use bwx::testing::{TestingSink, TestingSource};
///
/// let flow = Dataflow::new("f");
/// let out = TestingSink::new();
/// let clock = EventClock::replay(|ts: &i64| *ts, Duration::ZERO);
/// let sessions = SessionWindower::new(Duration::from_millis(5));
/// flow.input("inp", TestingSource::new(vec![("u", 1i64), ("u", 4), ("u", 20), ("u", 22)]))
///     .map("own", |(k, ts): (&str, i64)| (k.to_string(), ts))
///     .collect_window("sessions", clock, sessions, true)
///     .down
///     .output("out", out.clone());
/// bwx::run_main(&flow).unwrap();
/// let u = "u".to_string();
/// assert_eq!(out.take(), vec![(u.clone(), (0, vec![1, 4])), (u, (1, vec![20, 22]))]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SessionWindower {
    gap: i64,
}

impl SessionWindower {
    /// Sessions that end after `gap` without items (a zero gap joins only equal
    /// timestamps).
    pub fn new(gap: Duration) -> Self {
        SessionWindower {
            gap: duration_ms(gap),
        }
    }
}

/// One open session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    id: WindowId,
    open: i64,
    close: i64,
    merged: BTreeSet<WindowId>,
}

/// What a [`SessionWindower`] stores per key for recovery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    sessions: Vec<Session>,
    next_id: WindowId,
}

/// The per-key logic of [`SessionWindower`].
#[derive(Debug)]
pub struct SessionLogic {
    gap: i64,
    /// Open sessions, by open time; they never overlap within `gap`.
    state: SessionState,
}

impl Windower for SessionWindower {
    type Logic = SessionLogic;

    fn build(&self, resume: Option<SessionState>) -> SessionLogic {
        SessionLogic {
            gap: self.gap,
            state: resume.unwrap_or_default(),
        }
    }
}

impl SessionLogic {
    /// The watermark past which a session closes.
    #[inline]
    fn closes_after(&self, s: &Session) -> i64 {
        s.close.saturating_add(self.gap)
    }
}

impl WindowerLogic for SessionLogic {
    type State = SessionState;
    type Ids = std::iter::Once<WindowId>;

    fn open_for(&mut self, ts: i64, merged: &mut impl FnMut(WindowId, WindowId)) -> Self::Ids {
        let gap = self.gap;
        let sessions = &mut self.state.sessions;
        // Sessions are sorted by open time and disjoint, so those within `gap` of `ts`
        // form one run.
        let first = sessions.partition_point(|s| s.close.saturating_add(gap) < ts);
        let end = first
            + sessions[first..]
                .iter()
                .take_while(|s| s.open.saturating_sub(gap) <= ts)
                .count();
        let id = match end - first {
            0 => {
                let id = self.state.next_id;
                self.state.next_id += 1;
                let session = Session {
                    id,
                    open: ts,
                    close: ts,
                    merged: BTreeSet::new(),
                };
                sessions.insert(first, session);
                id
            }
            _ => {
                let mut joined = sessions.drain(first..end);
                let mut into = joined.next().unwrap_or(Session {
                    id: 0,
                    open: ts,
                    close: ts,
                    merged: BTreeSet::new(),
                });
                for other in joined {
                    // The survivor is the session with the smaller id.
                    let (keep, gone) = if other.id < into.id {
                        (other, into)
                    } else {
                        (into, other)
                    };
                    into = keep;
                    merged(gone.id, into.id);
                    into.open = into.open.min(gone.open);
                    into.close = into.close.max(gone.close);
                    into.merged.insert(gone.id);
                    into.merged.extend(gone.merged);
                }
                into.open = into.open.min(ts);
                into.close = into.close.max(ts);
                let id = into.id;
                sessions.insert(first, into);
                id
            }
        };
        std::iter::once(id)
    }

    fn late_for(&self, _ts: i64) -> Self::Ids {
        std::iter::once(LATE_SESSION_ID)
    }

    fn close_for(&mut self, watermark: i64, closed: &mut impl FnMut(WindowId, WindowMetadata)) {
        let eof = watermark == i64::MAX;
        let gap = self.gap;
        // Sessions are disjoint and sorted, so their close times are sorted too.
        let n = self
            .state
            .sessions
            .iter()
            .take_while(|s| eof || s.close.saturating_add(gap) < watermark)
            .count();
        for s in self.state.sessions.drain(..n) {
            closed(
                s.id,
                WindowMetadata {
                    open_time: s.open,
                    close_time: s.close,
                    merged_ids: s.merged,
                },
            );
        }
    }

    #[inline]
    fn next_close(&self) -> Option<i64> {
        self.state
            .sessions
            .first()
            .map(|s| self.closes_after(s).saturating_add(1))
    }

    fn is_empty(&self) -> bool {
        self.state.sessions.is_empty()
    }

    fn snapshot(&self) -> SessionState {
        self.state.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_between_two_sessions_merges_them() {
        let w = SessionWindower::new(Duration::from_millis(5));
        let mut logic = w.build(None);
        let mut ids = Vec::new();
        let mut merges = Vec::new();
        for ts in [0, 20, 10, 15] {
            ids.extend(logic.open_for(ts, &mut |from, into| merges.push((from, into))));
        }
        // 0 and 20 start sessions 0 and 1; 10 starts 2; 15 joins 2 and 1 (into 1).
        assert_eq!(ids, vec![0, 1, 2, 1]);
        assert_eq!(merges, vec![(2, 1)]);
        let mut closed = Vec::new();
        logic.close_for(i64::MAX, &mut |id, m| closed.push((id, m)));
        assert_eq!(closed.len(), 2);
        assert_eq!(
            (closed[0].0, closed[0].1.open_time, closed[0].1.close_time),
            (0, 0, 0)
        );
        let m = &closed[1].1;
        assert_eq!((closed[1].0, m.open_time, m.close_time), (1, 10, 20));
        assert_eq!(m.merged_ids, BTreeSet::from([2]));
        assert!(logic.is_empty());
    }

    #[test]
    fn a_session_closes_once_the_watermark_is_past_its_gap() {
        let w = SessionWindower::new(Duration::from_millis(5));
        let mut logic = w.build(None);
        logic.open_for(10, &mut |_, _| {});
        assert_eq!(logic.next_close(), Some(16));
        let mut n = 0;
        logic.close_for(15, &mut |_, _| n += 1);
        assert_eq!(n, 0);
        logic.close_for(16, &mut |_, _| n += 1);
        assert_eq!(n, 1);
    }
}
