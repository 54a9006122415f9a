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
/// use bwx_runtime::windowing::{SlidingWindower, TumblingWindower, Windower};
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

    /// When window `id` opens (inclusive), ms since the epoch.
    pub fn open_time(&self, id: WindowId) -> i64 {
        start_of(self.align_to, id, self.offset)
    }

    /// When window `id` closes (exclusive), ms since the epoch.
    pub fn close_time(&self, id: WindowId) -> i64 {
        self.open_time(id).saturating_add(self.length)
    }
}
