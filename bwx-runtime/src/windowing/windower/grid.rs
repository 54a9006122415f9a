//! Windows that are the same for every key: a grid of fixed-length windows.

use std::ops::RangeInclusive;

use super::super::WindowId;
use super::{clamp_i64, floor_div, start_of};

/// Windows of `length` ms, one starting every `offset` ms (`offset <= length`), window 0
/// starting at `align_to`: what tumbling (`offset == length`) and sliding windows have in
/// common. Window `w` covers `[align_to + w·offset, align_to + w·offset + length)`.
///
/// A windower that is a grid ([`Windower::grid`](super::Windower::grid)) opens the same
/// windows for every key, so a [`PerWorker`](crate::windowing::PerWorker) clock can keep
/// all keys' windows together and close them at once.
///
/// ```
/// use std::time::Duration;
/// use bwx::windowing::{SlidingWindower, TumblingWindower, Windower};
///
/// let sliding = SlidingWindower::new(Duration::from_millis(10), Duration::from_millis(2), 0).unwrap();
/// let grid = sliding.grid().unwrap();
/// assert_eq!(grid.ids(11), 1..=5);
/// assert_eq!((grid.open_time(5), grid.close_time(5)), (10, 20));
/// let tumbling = TumblingWindower::new(Duration::from_millis(10), 3).unwrap().grid().unwrap();
/// assert_eq!(tumbling.ids(2), -1..=-1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    length: i64,
    offset: i64,
    align_to: i64,
}

impl Grid {
    /// A grid; the windowers check `1 <= offset <= length` before making one.
    pub(crate) fn new(length: i64, offset: i64, align_to: i64) -> Self {
        Grid {
            length,
            offset,
            align_to,
        }
    }

    /// The ids of the windows an item at `ts` is in, in increasing order.
    #[inline(always)]
    pub fn ids(&self, ts: i64) -> RangeInclusive<WindowId> {
        let last = floor_div(ts, self.align_to, self.offset);
        if self.offset == self.length {
            return last..=last;
        }
        let first = match ts
            .checked_sub(self.align_to)
            .and_then(|d| d.checked_sub(self.length))
        {
            Some(d) => d.div_euclid(self.offset),
            None => clamp_i64(
                (ts as i128 - self.align_to as i128 - self.length as i128).div_euclid(self.offset as i128),
            ),
        }
        .saturating_add(1);
        first..=last
    }

    /// The ids of the windows of an item at `ts`, and the times `[lo, hi)` around `ts` at
    /// which items have the same windows: a caller can skip the divisions for those.
    pub(crate) fn span(&self, ts: i64) -> (RangeInclusive<WindowId>, i64, i64) {
        let ids = self.ids(ts);
        let (first, last) = (i128::from(*ids.start()), i128::from(*ids.end()));
        // Exact in i128: `last` is the newest window once it has opened and until the next
        // opens; `first` the oldest since the one before it closed and until it closes.
        let open = |id: i128| i128::from(self.align_to) + id * i128::from(self.offset);
        let close = |id: i128| open(id) + i128::from(self.length);
        let lo = open(last).max(close(first - 1));
        let hi = open(last + 1).min(close(first));
        (ids, clamp_i64(lo), clamp_i64(hi))
    }

    /// When window `id` opens (inclusive), ms since the epoch.
    pub fn open_time(&self, id: WindowId) -> i64 {
        start_of(self.align_to, id, self.offset)
    }

    /// When window `id` closes (exclusive), ms since the epoch.
    pub fn close_time(&self, id: WindowId) -> i64 {
        self.open_time(id).saturating_add(self.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_holds_exactly_the_times_with_the_same_windows() {
        let grids = [
            Grid::new(10, 10, 0),
            Grid::new(10, 3, 7),
            Grid::new(10, 2, -5),
            Grid::new(7, 7, i64::MIN),
            Grid::new(3_600_000, 60_000, i64::MIN + 17),
        ];
        let times = [
            -31,
            -1,
            0,
            1,
            9,
            10,
            11,
            29,
            1_700_000_000_123,
            i64::MIN,
            i64::MIN + 5,
            i64::MAX,
            i64::MAX - 4,
        ];
        for grid in grids {
            for ts in times {
                let (ids, lo, hi) = grid.span(ts);
                assert_eq!(ids, grid.ids(ts));
                // A span clamped to i64 cannot hold i64::MAX itself (callers then recompute).
                assert!(
                    lo <= ts && (ts < hi || hi == i64::MAX),
                    "{grid:?} {ts}: {lo}..{hi}"
                );
                let inside = if lo < hi {
                    vec![lo, hi - 1, lo + (hi - lo) / 2]
                } else {
                    vec![]
                };
                for inside in inside {
                    assert_eq!(grid.ids(inside), ids, "{grid:?} {ts} at {inside}");
                }
                // The span ends where the windows change (unless the i64 range ends first).
                if lo > i64::MIN {
                    assert_ne!(grid.ids(lo - 1), ids, "{grid:?} {ts} below {lo}");
                }
                if hi < i64::MAX {
                    assert_ne!(grid.ids(hi), ids, "{grid:?} {ts} at {hi}");
                }
            }
        }
    }
}
