//! Sliding windows: fixed length, starting every `offset`.

use std::collections::BTreeSet;
use std::time::Duration;

use super::super::{WindowId, WindowMetadata, duration_ms};
use super::{Grid, Windower, WindowerError, WindowerLogic};

/// Sliding windows of `length`, one starting every `offset`, aligned so that window 0
/// starts at `align_to` (ms since the epoch). Window `w` covers
/// `[align_to + w·offset, align_to + w·offset + length)`; an item at `ts` is in windows
/// `floor((ts − align_to − length) / offset) + 1 ..= floor((ts − align_to) / offset)`.
/// With `offset == length` this is a tumbling window; `offset > length` is rejected.
///
/// ```
/// use std::time::Duration;
/// use bwx::windowing::{SlidingWindower, WindowerError};
///
/// let ok = SlidingWindower::new(Duration::from_secs(10), Duration::from_secs(2), 0);
/// assert!(ok.is_ok());
/// let err = SlidingWindower::new(Duration::from_secs(2), Duration::from_secs(10), 0).unwrap_err();
/// assert_eq!(err, WindowerError::OffsetLongerThanLength { offset_ms: 10_000, length_ms: 2_000 });
/// assert!(err.to_string().contains("must not exceed its length"));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SlidingWindower {
    length: i64,
    offset: i64,
    align_to: i64,
}

impl SlidingWindower {
    fn as_grid(&self) -> Grid {
        Grid::new(self.length, self.offset, self.align_to)
    }

    /// Windows of `length` starting every `offset` (both at least 1 ms,
    /// `offset <= length`), one of them at `align_to`.
    pub fn new(length: Duration, offset: Duration, align_to: i64) -> Result<Self, WindowerError> {
        let (length, offset) = (duration_ms(length), duration_ms(offset));
        for (what, ms) in [("length", length), ("offset", offset)] {
            if ms < 1 {
                return Err(WindowerError::TooShort {
                    windower: "sliding",
                    what,
                    ms,
                });
            }
        }
        if offset > length {
            return Err(WindowerError::OffsetLongerThanLength {
                offset_ms: offset,
                length_ms: length,
            });
        }
        Ok(SlidingWindower {
            length,
            offset,
            align_to,
        })
    }
}

/// The per-key logic of [`SlidingWindower`].
#[derive(Debug)]
pub struct SlidingLogic {
    grid: Grid,
    /// Open windows and their close times, by id.
    open: Vec<(WindowId, i64)>,
}

impl Windower for SlidingWindower {
    type Logic = SlidingLogic;

    fn grid(&self) -> Option<Grid> {
        Some(self.as_grid())
    }

    fn build(&self, resume: Option<Vec<(WindowId, i64)>>) -> SlidingLogic {
        SlidingLogic {
            grid: self.as_grid(),
            open: resume.unwrap_or_default(),
        }
    }
}

impl SlidingLogic {
    /// The first and last window holding `ts`.
    #[inline(always)]
    fn range(&self, ts: i64) -> (WindowId, WindowId) {
        let ids = self.grid.ids(ts);
        (*ids.start(), *ids.end())
    }

    /// Opens the windows `first..=last` that are not open yet; `start` is where `first`
    /// belongs in the open list.
    #[inline(never)]
    fn open(&mut self, start: usize, first: WindowId, last: WindowId) {
        // The item's windows are consecutive ids: walk them alongside the sorted open list.
        for (at, id) in (start..).zip(first..=last) {
            if self.open.get(at).is_none_or(|(w, _)| *w != id) {
                self.open.insert(at, (id, self.grid.close_time(id)));
            }
        }
    }
}

impl WindowerLogic for SlidingLogic {
    type State = Vec<(WindowId, i64)>;
    type Ids = std::ops::RangeInclusive<WindowId>;

    /// Called per item, so inlined; opening windows (once per window) is not.
    #[inline(always)]
    fn open_for(&mut self, ts: i64, _merged: &mut impl FnMut(WindowId, WindowId)) -> Self::Ids {
        let (first, last) = self.range(ts);
        // Ids and close times increase together, so the item's windows are all open when
        // its first and last are, and the open ids between them are consecutive.
        let start = self.open.partition_point(|(w, _)| *w < first);
        let last_at = last
            .checked_sub(first)
            .and_then(|span| usize::try_from(span).ok())
            .and_then(|span| start.checked_add(span));
        let all_open = self.open.get(start).is_some_and(|(w, _)| *w == first)
            && last_at.is_some_and(|at| self.open.get(at).is_some_and(|(w, _)| *w == last));
        if !all_open {
            self.open(start, first, last);
        }
        first..=last
    }

    fn late_for(&self, ts: i64) -> Self::Ids {
        let (first, last) = self.range(ts);
        first..=last
    }

    fn close_for(&mut self, watermark: i64, closed: &mut impl FnMut(WindowId, WindowMetadata)) {
        // Ids increase with close times, so the closed windows are a prefix.
        let n = self
            .open
            .iter()
            .take_while(|(_, close)| *close <= watermark)
            .count();
        for i in 0..n {
            let (id, close) = self.open[i];
            closed(
                id,
                WindowMetadata {
                    open_time: self.grid.open_time(id),
                    close_time: close,
                    merged_ids: BTreeSet::new(),
                },
            );
        }
        self.open.drain(..n);
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

    #[test]
    fn an_item_is_in_length_over_offset_windows() {
        let w = SlidingWindower::new(Duration::from_millis(10), Duration::from_millis(2), 0).unwrap();
        let mut logic = w.build(None);
        assert_eq!(logic.open_for(0, &mut |_, _| {}), -4..=0);
        assert_eq!(logic.open_for(11, &mut |_, _| {}), 1..=5);
        let mut closed = Vec::new();
        logic.close_for(10, &mut |id, m| closed.push((id, m.open_time, m.close_time)));
        assert_eq!(
            closed,
            vec![(-4, -8, 2), (-3, -6, 4), (-2, -4, 6), (-1, -2, 8), (0, 0, 10)]
        );
        assert_eq!(logic.next_close(), Some(12));
    }

    #[test]
    fn overlapping_and_out_of_order_items_open_each_window_once() {
        let w = SlidingWindower::new(Duration::from_millis(10), Duration::from_millis(2), 0).unwrap();
        let mut logic = w.build(None);
        // In order, one slot further (one new window), a gap (new windows after a hole),
        // then back into the hole (windows between open ones) and into open ones only.
        for ts in [0, 2, 30, 16, 17, 1] {
            logic.open_for(ts, &mut |_, _| {});
        }
        let ids: Vec<_> = logic.snapshot().into_iter().map(|(id, _)| id).collect();
        let expected: Vec<_> = (-4..=1).chain(4..=8).chain(11..=15).collect();
        assert_eq!(ids, expected);
        let mut closed = Vec::new();
        logic.close_for(i64::MAX, &mut |id, m| {
            closed.push((id, m.close_time - m.open_time))
        });
        assert_eq!(closed.len(), expected.len());
        assert!(closed.iter().all(|&(_, len)| len == 10), "{closed:?}");
    }

    #[test]
    fn offset_equal_to_length_is_tumbling() {
        let w = SlidingWindower::new(Duration::from_millis(10), Duration::from_millis(10), 5).unwrap();
        assert_eq!(w.build(None).late_for(4), -1..=-1);
        assert_eq!(w.build(None).late_for(5), 0..=0);
    }

    #[test]
    fn far_past_alignment_keeps_every_window() {
        let w = SlidingWindower::new(Duration::from_secs(10), Duration::from_secs(5), i64::MIN + 7).unwrap();
        let ids = w.build(None).late_for(1_700_000_000_000);
        assert_eq!(ids.end() - ids.start(), 1);
    }
}
