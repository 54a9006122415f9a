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
        match self.span_in_i64(ts) {
            Some((first, last, lo, hi)) => (first..=last, lo, hi),
            None => self.span_in_i128(ts),
        }
    }

    /// [`span`](Self::span) where every step fits in `i64` (all but times within a window
    /// length or so of the `i64` range's ends): two divisions at most.
    #[inline]
    fn span_in_i64(&self, ts: i64) -> Option<(WindowId, WindowId, i64, i64)> {
        let from_align = ts.checked_sub(self.align_to)?;
        let last = from_align.div_euclid(self.offset);
        let first = if self.offset == self.length {
            last
        } else {
            from_align.checked_sub(self.length)?.div_euclid(self.offset) + 1
        };
        let open = |id: i64| id.checked_mul(self.offset)?.checked_add(self.align_to);
        let close = |id: i64| open(id)?.checked_add(self.length);
        let lo = open(last)?.max(close(first.checked_sub(1)?)?);
        let hi = open(last.checked_add(1)?)?.min(close(first)?);
        Some((first, last, lo, hi))
    }

    fn span_in_i128(&self, ts: i64) -> (RangeInclusive<WindowId>, i64, i64) {
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

    /// The newest window that a watermark of `watermark` has closed (every window up to
    /// it has a close time at or before `watermark`), and the watermarks `[lo, hi)` that
    /// have closed the same. At `i64::MAX` (the end of the input) every window is closed.
    pub(crate) fn closed_through(&self, watermark: i64) -> (WindowId, i64, i64) {
        if watermark == i64::MAX {
            return (WindowId::MAX, i64::MAX, i64::MAX);
        }
        // close(id) = align_to + id·offset + length <= watermark, exact in i128.
        let (align, offset, length) = (
            i128::from(self.align_to),
            i128::from(self.offset),
            i128::from(self.length),
        );
        let id = (i128::from(watermark) - align - length).div_euclid(offset);
        let close = |id: i128| align + id * offset + length;
        let (lo, hi) = (clamp_i64(close(id)), clamp_i64(close(id + 1)));
        let id = WindowId::try_from(id).unwrap_or(if id < 0 { WindowId::MIN } else { WindowId::MAX });
        (id, lo, hi)
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

/// The newest window closed by the watermarks of the last items (see
/// [`Grid::closed_through`]): the watermarks of a step's keys are mostly close to each
/// other, so this costs two comparisons instead of a division.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CloseCache {
    /// `(lo, hi, id)`: every watermark in `[lo, hi)` has closed the windows up to `id`.
    last: (i64, i64, WindowId),
}

impl CloseCache {
    pub(crate) fn new() -> Self {
        CloseCache { last: (0, 0, 0) }
    }

    /// The newest window of `grid` that `watermark` has closed (windows close in the
    /// order of their ids).
    #[inline(always)]
    pub(crate) fn closed_through(&mut self, grid: &Grid, watermark: i64) -> WindowId {
        let (lo, hi, id) = self.last;
        if lo <= watermark && watermark < hi {
            return id;
        }
        self.miss(grid, watermark)
    }

    #[inline(never)]
    fn miss(&mut self, grid: &Grid, watermark: i64) -> WindowId {
        let (id, lo, hi) = grid.closed_through(watermark);
        self.last = (lo, hi, id);
        id
    }
}

/// The windows of the last two spans of time items fell into (see [`Grid::span`]): most
/// items fall into the same windows as one of the items just before, also while out-of-order
/// items straddle a window boundary, so their ids cost two comparisons instead of divisions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpanCache {
    /// `(lo, hi, first id, last id)`, the most recent first.
    spans: [(i64, i64, WindowId, WindowId); 2],
}

impl SpanCache {
    pub(crate) fn new() -> Self {
        SpanCache {
            spans: [(0, 0, 0, 0); 2],
        }
    }

    /// The first and last window of an item at `ts` on `grid`.
    #[inline(always)]
    pub(crate) fn ids(&mut self, grid: &Grid, ts: i64) -> (WindowId, WindowId) {
        let [(lo, hi, first, last), (lo2, hi2, first2, last2)] = self.spans;
        if lo <= ts && ts < hi {
            return (first, last);
        }
        if lo2 <= ts && ts < hi2 {
            self.spans.swap(0, 1);
            return (first2, last2);
        }
        self.miss(grid, ts)
    }

    #[inline(never)]
    fn miss(&mut self, grid: &Grid, ts: i64) -> (WindowId, WindowId) {
        let (ids, lo, hi) = grid.span(ts);
        self.spans[1] = self.spans[0];
        self.spans[0] = (lo, hi, *ids.start(), *ids.end());
        (*ids.start(), *ids.end())
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
                assert_eq!((ids.clone(), lo, hi), grid.span_in_i128(ts), "{grid:?} {ts}");
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

    #[test]
    fn the_i64_span_agrees_with_the_exact_one() {
        // SplitMix64, for times and grids all over the i64 range and near its ends.
        let mut state = 0x5eed_u64;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        for _ in 0..20_000 {
            let length = 1 + (next() % 100_000) as i64;
            let offset = 1 + (next() % length as u64) as i64;
            let align_to = match next() % 3 {
                0 => next() as i64,
                1 => (next() % 1000) as i64 - 500,
                _ => i64::MIN + (next() % 1000) as i64,
            };
            let grid = Grid::new(length, offset, align_to);
            let ts = match next() % 3 {
                0 => next() as i64,
                1 => align_to.wrapping_add((next() % 1_000_000) as i64),
                _ => i64::MAX - (next() % 1000) as i64,
            };
            if let Some((first, last, lo, hi)) = grid.span_in_i64(ts) {
                assert_eq!((first..=last, lo, hi), grid.span_in_i128(ts), "{grid:?} {ts}");
            }
        }
    }

    #[test]
    fn the_span_cache_gives_the_grid_s_ids() {
        let grid = Grid::new(10, 2, 3);
        let mut cache = SpanCache::new();
        for ts in [0, 1, 12, 11, 12, 25, 11, -40, 25, 26, 0] {
            let ids = grid.ids(ts);
            assert_eq!(cache.ids(&grid, ts), (*ids.start(), *ids.end()), "{ts}");
        }
    }
}
