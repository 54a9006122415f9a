//! Windowers: which windows an item belongs to, and when windows close.

mod grid;
mod session;
mod sliding;
mod tumbling;

pub use grid::Grid;
pub(crate) use grid::{CloseCache, SpanCache};
pub use session::{LATE_SESSION_ID, SessionLogic, SessionState, SessionWindower};
pub use sliding::{SlidingLogic, SlidingWindower};
pub use tumbling::{TumblingLogic, TumblingWindower};

use crate::inputs::State;

use super::{WindowId, WindowMetadata};

/// Makes a key's [`WindowerLogic`] from its resume state (`None` for a new key).
pub trait Windower: Send + Sync + 'static {
    /// The per-key logic.
    type Logic: WindowerLogic;

    /// Builds the logic of one key.
    fn build(&self, resume: Option<<Self::Logic as WindowerLogic>::State>) -> Self::Logic;

    /// The windows as a [`Grid`] if they are the same for every key (tumbling and sliding
    /// windows); a [`PerWorker`](super::PerWorker) clock needs that. `None` (the default)
    /// for windows that depend on a key's items, like sessions.
    fn grid(&self) -> Option<Grid> {
        None
    }
}

/// A key's windows: assignment of items, merging, and closing.
///
/// All times are ms since the epoch. The operator calls these per item, so keep them cheap.
pub trait WindowerLogic: 'static {
    /// What recovery stores for the windower.
    type State: State;

    /// The ids of the windows of one item (owned, so that no allocation is needed for
    /// one window or a range: `std::iter::Once`, `RangeInclusive`, or `vec::IntoIter`).
    type Ids: Iterator<Item = WindowId>;

    /// Opens (or finds) the windows an on-time item at `ts` belongs to and returns their
    /// ids. If the item joins windows together (sessions), calls `merged(from, into)` for
    /// every window merged away, before returning.
    fn open_for(&mut self, ts: i64, merged: &mut impl FnMut(WindowId, WindowId)) -> Self::Ids;

    /// The ids of the windows a late item at `ts` would have fallen into.
    fn late_for(&self, ts: i64) -> Self::Ids;

    /// Closes every window that no on-time item can enter any more once the watermark is
    /// `watermark`, calling `closed` for each in order of closing time. A watermark of
    /// `i64::MAX` (EOF) closes every window.
    fn close_for(&mut self, watermark: i64, closed: &mut impl FnMut(WindowId, WindowMetadata));

    /// The smallest watermark at which [`close_for`](Self::close_for) would close a window.
    fn next_close(&self) -> Option<i64>;

    /// Whether no window is open.
    fn is_empty(&self) -> bool;

    /// The windower's state for recovery.
    fn snapshot(&self) -> Self::State;
}

/// A windower was configured wrongly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowerError {
    /// A window length or slide of zero.
    #[error("the {what} of a {windower} windower must be at least 1 ms, got {ms} ms")]
    TooShort {
        /// Which windower.
        windower: &'static str,
        /// `length` or `offset`.
        what: &'static str,
        /// The value given.
        ms: i64,
    },
    /// A sliding window whose offset is longer than its length would leave gaps.
    #[error(
        "a sliding windower's offset ({offset_ms} ms) must not exceed its length ({length_ms} ms): items between windows would fall into no window"
    )]
    OffsetLongerThanLength {
        /// The offset given.
        offset_ms: i64,
        /// The length given.
        length_ms: i64,
    },
}

/// Keeps `wide` in the `i64` range.
#[inline]
fn clamp_i64(wide: i128) -> i64 {
    wide.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// `floor((x - origin) / step)`, exact even when `x - origin` overflows `i64` (an
/// `align_to` far in the past; Bytewax #413).
#[inline]
fn floor_div(x: i64, origin: i64, step: i64) -> i64 {
    match x.checked_sub(origin) {
        Some(d) => d.div_euclid(step),
        None => clamp_i64((x as i128 - origin as i128).div_euclid(step as i128)),
    }
}

/// `origin + n * step`, saturating.
#[inline]
fn start_of(origin: i64, n: i64, step: i64) -> i64 {
    clamp_i64(origin as i128 + n as i128 * step as i128)
}
