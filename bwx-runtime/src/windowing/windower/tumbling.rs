//! Tumbling windows: fixed length, back to back.

use std::collections::BTreeSet;
use std::time::Duration;

use super::super::{WindowId, WindowMetadata, duration_ms};
use super::{Grid, Windower, WindowerError, WindowerLogic, floor_div, start_of};

/// Tumbling windows of a fixed length, aligned so that a window starts at `align_to`
/// (ms since the epoch). Each item falls in exactly one window,
/// `floor((ts - align_to) / length)`; ids before `align_to` are negative. Open times are
/// inclusive, close times exclusive.
///
/// ```
/// use std::time::Duration;
/// use bwx::windowing::{TumblingWindower, WindowerError};
///
/// assert!(TumblingWindower::new(Duration::from_secs(10), 0).is_ok());
/// let err = TumblingWindower::new(Duration::ZERO, 0).unwrap_err();
/// assert!(matches!(err, WindowerError::TooShort { .. }));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TumblingWindower {
    length: i64,
    align_to: i64,
}

impl TumblingWindower {
    /// Windows of `length` (at least 1 ms), one of them starting at `align_to`.
    pub fn new(length: Duration, align_to: i64) -> Result<Self, WindowerError> {
        let length = duration_ms(length);
        if length < 1 {
            return Err(WindowerError::TooShort {
                windower: "tumbling",
                what: "length",
                ms: length,
            });
        }
        Ok(TumblingWindower { length, align_to })
    }
}

/// The per-key logic of [`TumblingWindower`].
#[derive(Debug)]
pub struct TumblingLogic {
    length: i64,
    align_to: i64,
    /// Open windows and their close times, by id.
    open: Vec<(WindowId, i64)>,
}

impl Windower for TumblingWindower {
    type Logic = TumblingLogic;

    fn grid(&self) -> Option<Grid> {
        Some(Grid::new(self.length, self.length, self.align_to))
    }

    fn build(&self, resume: Option<Vec<(WindowId, i64)>>) -> TumblingLogic {
        TumblingLogic {
            length: self.length,
            align_to: self.align_to,
            open: resume.unwrap_or_default(),
        }
    }
}

impl TumblingLogic {
    #[inline]
    fn id_of(&self, ts: i64) -> WindowId {
        floor_div(ts, self.align_to, self.length)
    }

    #[inline(never)]
    fn open(&mut self, id: WindowId) {
        let close = start_of(self.align_to, id.saturating_add(1), self.length);
        let at = self.open.partition_point(|(w, _)| *w < id);
        // One or two windows are open per key at a time; keep the allocation small.
        self.open.reserve_exact(if self.open.is_empty() { 2 } else { 1 });
        self.open.insert(at, (id, close));
    }
}

impl WindowerLogic for TumblingLogic {
    type State = Vec<(WindowId, i64)>;
    type Ids = std::iter::Once<WindowId>;

    /// Called per item, so inlined; opening a window (once per window) is not.
    #[inline(always)]
    fn open_for(&mut self, ts: i64, _merged: &mut impl FnMut(WindowId, WindowId)) -> Self::Ids {
        let id = self.id_of(ts);
        // Mostly the newest window: search from the back.
        if !self.open.iter().rev().any(|(w, _)| *w == id) {
            self.open(id);
        }
        std::iter::once(id)
    }

    fn late_for(&self, ts: i64) -> Self::Ids {
        std::iter::once(self.id_of(ts))
    }

    fn close_for(&mut self, watermark: i64, closed: &mut impl FnMut(WindowId, WindowMetadata)) {
        let n = self
            .open
            .iter()
            .take_while(|(_, close)| *close <= watermark)
            .count();
        for (id, close) in self.open.drain(..n) {
            closed(
                id,
                WindowMetadata {
                    open_time: start_of(self.align_to, id, self.length),
                    close_time: close,
                    merged_ids: BTreeSet::new(),
                },
            );
        }
    }

    #[inline]
    fn next_close(&self) -> Option<i64> {
        self.open.first().map(|(_, close)| *close)
    }

    fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    fn snapshot(&self) -> Self::State {
        self.open.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(w: &TumblingWindower, ts: i64) -> Vec<WindowId> {
        w.build(None).open_for(ts, &mut |_, _| {}).collect()
    }

    #[test]
    fn ids_floor_towards_minus_infinity() {
        let w = TumblingWindower::new(Duration::from_millis(10), 100).unwrap();
        assert_eq!(ids(&w, 100), vec![0]);
        assert_eq!(ids(&w, 109), vec![0]);
        assert_eq!(ids(&w, 110), vec![1]);
        assert_eq!(ids(&w, 99), vec![-1]);
        assert_eq!(ids(&w, 90), vec![-1]);
        assert_eq!(ids(&w, 89), vec![-2]);
    }

    #[test]
    fn align_to_far_in_the_past_does_not_overflow() {
        let w = TumblingWindower::new(Duration::from_secs(3600), i64::MIN).unwrap();
        let ts = 1_700_000_000_000;
        let mut logic = w.build(None);
        let id = logic.open_for(ts, &mut |_, _| {}).next().unwrap();
        assert!(id > 0);
        let mut meta = Vec::new();
        logic.close_for(i64::MAX, &mut |id, m| meta.push((id, m)));
        let (_, m) = &meta[0];
        assert!(m.open_time <= ts && ts < m.close_time, "{m:?}");
        assert_eq!(m.close_time - m.open_time, 3_600_000);
    }

    #[test]
    fn windows_close_in_order_when_the_watermark_passes_their_end() {
        let w = TumblingWindower::new(Duration::from_millis(10), 0).unwrap();
        let mut logic = w.build(None);
        let ids: Vec<_> = [25, 3, 14]
            .into_iter()
            .flat_map(|ts| logic.open_for(ts, &mut |_, _| {}))
            .collect();
        assert_eq!(ids, vec![2, 0, 1]);
        assert_eq!(logic.next_close(), Some(10));
        let mut closed = Vec::new();
        logic.close_for(20, &mut |id, m| closed.push((id, m.open_time, m.close_time)));
        assert_eq!(closed, vec![(0, 0, 10), (1, 10, 20)]);
        assert_eq!(logic.next_close(), Some(30));
        assert!(!logic.is_empty());
    }
}
