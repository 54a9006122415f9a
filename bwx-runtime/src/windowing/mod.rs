//! Windowing: per-key windows in event time or system time, with late items and window
//! metadata on their own streams (Bytewax's `bytewax.operators.windowing`).
//!
//! A windowing operator takes a keyed stream, a [`Clock`] (item timestamps and the
//! watermark), a [`Windower`] (which windows an item belongs to and when they close) and
//! per-window logic, and returns a [`WindowOut`] of three streams:
//! - `down`: `(key, (window_id, result))`, emitted when the window closes (or earlier if
//!   the logic emits early, as [`JoinEmitMode::Running`](crate::stateful::JoinEmitMode) does);
//! - `late`: `(key, (window_id, item))` for items older than the key's watermark, with
//!   each window they would have fallen into;
//! - `meta`: `(key, (window_id, metadata))`, once per closed window.
//!
//! Operators: [`window`](crate::Stream::window) (generic [`WindowLogic`]),
//! [`fold_window`](crate::Stream::fold_window), [`reduce_window`](crate::Stream::reduce_window),
//! [`count_window`](crate::Stream::count_window), [`collect_window`](crate::Stream::collect_window),
//! [`max_window`](crate::Stream::max_window), [`min_window`](crate::Stream::min_window) and
//! [`join_window`](crate::Dataflow::join_window).
//!
//! # Time
//!
//! Timestamps, watermarks and window bounds are `i64` milliseconds since the Unix epoch
//! (UTC). An `i64` compares and divides in one instruction and needs no time-zone check
//! on the per-item path; use [`ms_of`] and [`datetime_of`] to convert from and to
//! `chrono::DateTime<Utc>`. Durations are given as `std::time::Duration`.
//!
//! # State
//!
//! Clock and windower state are per key, so the watermark is per key (as in Bytewax); for
//! tumbling and sliding windows each key's clock and windows share one small slot. Wrap
//! the clock in [`PerWorker`] for one watermark per worker (as in Flink), with each window's
//! keys kept together (tumbling and sliding windows) or each key's sessions closed at it.
//! Items are applied in timestamp order once the watermark passes them (ordered mode), or
//! in arrival order (unordered, cheaper; for order-insensitive logic). Everything a key
//! holds (clock, windower, open windows, queued items) is its snapshot for recovery. When a
//! key has no open window and no queued item, its windows and queue are freed (Bytewax
//! kept whole session "husks" forever, #577). What a later item of the key still depends
//! on is kept: the clock and the windower (an event clock's watermark, so that an item
//! older than it stays late and cannot open a window that already closed and was emitted;
//! a session count, so that session ids are not reused), a few dozen bytes per key. A key
//! that would behave exactly as a new one (a system clock with tumbling or sliding
//! windows) is dropped entirely.
//!
//! At EOF every window closes.

mod clock;
mod derived;
mod join;
mod logic;
mod operator;
mod per_key;
mod per_worker;
mod stamp;
mod windower;
mod worker_sessions;

pub use clock::{
    Clock, ClockLogic, EventClock, EventClockLogic, EventClockState, PerWorker, SystemClock,
    SystemClockLogic, now_ms,
};
pub use join::{SideTimestamps, each_side};
pub use logic::{Emit, WindowLogic};
pub use windower::{
    Grid, LATE_SESSION_ID, SessionLogic, SessionState, SessionWindower, SlidingLogic, SlidingWindower,
    TumblingLogic, TumblingWindower, Windower, WindowerError, WindowerLogic,
};

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::flow::Stream;

/// The earliest time, in ms since the epoch: the earliest UTC date-time `chrono` can
/// represent. Watermarks never go below it.
pub const MIN_TIME: i64 = DateTime::<Utc>::MIN_UTC.timestamp_millis();

/// A window's id: tumbling and sliding ids count windows from `align_to` (negative before
/// it); session ids count the sessions of a key from 0.
pub type WindowId = i64;

/// Facts about a closed window, emitted on [`WindowOut::meta`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowMetadata {
    /// Start of the window (inclusive), ms since the epoch.
    pub open_time: i64,
    /// End of the window, ms since the epoch: exclusive for tumbling and sliding windows,
    /// inclusive (the last item's timestamp) for sessions.
    pub close_time: i64,
    /// Ids of the windows merged into this one (sessions only).
    pub merged_ids: BTreeSet<WindowId>,
}

impl WindowMetadata {
    /// The open time as a UTC date-time.
    pub fn open_datetime(&self) -> DateTime<Utc> {
        datetime_of(self.open_time)
    }

    /// The close time as a UTC date-time.
    pub fn close_datetime(&self) -> DateTime<Utc> {
        datetime_of(self.close_time)
    }
}

/// The three outputs of a windowing operator.
#[derive(Debug, Clone)]
pub struct WindowOut<K, V, R> {
    /// Results: `(key, (window_id, result))`.
    pub down: Stream<(K, (WindowId, R))>,
    /// Late items: `(key, (window_id, item))`, once per window the item would be in.
    pub late: Stream<(K, (WindowId, V))>,
    /// Metadata of every closed window: `(key, (window_id, metadata))`.
    pub meta: Stream<(K, (WindowId, WindowMetadata))>,
}

/// Milliseconds since the epoch of a UTC date-time.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// let t = Utc.with_ymd_and_hms(2023, 11, 14, 22, 13, 20).unwrap();
/// assert_eq!(bwx::windowing::ms_of(t), 1_700_000_000_000);
/// ```
pub fn ms_of(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The UTC date-time of a time in ms since the epoch (clamped to chrono's range).
pub fn datetime_of(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// A duration in whole ms, saturating at `i64::MAX`.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The system time of a time in ms since the epoch.
pub(crate) fn system_time_of(ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(d).unwrap_or(UNIX_EPOCH)
    }
}
