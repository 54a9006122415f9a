//! The tables of a partition file and the row checksum.

use std::hash::Hasher;

use twox_hash::XxHash64;

use crate::recovery::Route;

/// The format version this build reads and writes. Version 1 kept each worker's progress
/// in one partition only, so a restored backup of another could not pull the resume back.
pub(crate) const FORMAT_VERSION: u32 = 2;

/// Creates the tables of a new partition file:
/// - `meta(name, value)`: `format_version`, `store_id` (the set made by one `recovery
///   init`), `flow_id` (once a flow has written), `gc_done` (garbage collection progress);
/// - `parts(part_index, part_count)`: which partition of the set this file is;
/// - `exs(ex_num, worker_count, resume_epoch, frontier, complete)`: every execution that
///   wrote to this partition, and how far this partition is complete in it: it holds every
///   snapshot of the epochs before `frontier`, or all of them once `complete` is 1;
/// - `gc(gc_epoch)`: superseded snapshots older than it are gone, so no execution may
///   resume before it;
/// - `snaps(step_id, state_key, snap_epoch, route_kind, route_hash, ser_change, checksum)`:
///   the state of a key at the close of an epoch (`NULL` when the key's state was
///   discarded), and where it goes on resume (a partition's primary, or the worker owning
///   a key's routing hash, also seen by every worker).
pub(crate) const CREATE: &str = "
CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE parts(part_index INTEGER NOT NULL, part_count INTEGER NOT NULL);
CREATE TABLE exs(ex_num INTEGER PRIMARY KEY, worker_count INTEGER NOT NULL, resume_epoch INTEGER NOT NULL,
    frontier INTEGER NOT NULL, complete INTEGER NOT NULL);
CREATE TABLE gc(gc_epoch INTEGER NOT NULL);
CREATE TABLE snaps(step_id TEXT NOT NULL, state_key BLOB NOT NULL, snap_epoch INTEGER NOT NULL,
    route_kind INTEGER NOT NULL, route_hash INTEGER NOT NULL, ser_change BLOB, checksum INTEGER NOT NULL,
    PRIMARY KEY (step_id, state_key, snap_epoch)) WITHOUT ROWID;
CREATE INDEX snaps_by_epoch ON snaps(snap_epoch);
";

/// Seed of the row checksum, so that it differs from the routing hash.
const CHECKSUM_SEED: u64 = 0x0062_7778_5f72_6563;

/// The checksum of one snapshot row: XXH64 over every field, length-prefixed.
pub(crate) fn checksum(step: &str, key: &[u8], epoch: u64, route: Route, state: Option<&[u8]>) -> i64 {
    let mut h = XxHash64::with_seed(CHECKSUM_SEED);
    h.write(&(step.len() as u64).to_le_bytes());
    h.write(step.as_bytes());
    h.write(&(key.len() as u64).to_le_bytes());
    h.write(key);
    h.write(&epoch.to_le_bytes());
    let (kind, hash) = route_columns(route);
    h.write(&kind.to_le_bytes());
    h.write(&hash.to_le_bytes());
    match state {
        None => h.write(&[0]),
        Some(s) => {
            h.write(&[1]);
            h.write(&(s.len() as u64).to_le_bytes());
            h.write(s);
        }
    }
    h.finish() as i64
}

/// A stored route: its kind and hash columns.
pub(crate) fn route_columns(route: Route) -> (i64, i64) {
    match route {
        Route::Partition => (0, 0),
        Route::Key(hash) => (1, hash as i64),
        Route::KeyForAll(hash) => (2, hash as i64),
    }
}

/// The route of a stored row's kind and hash columns; `None` for an unknown kind.
pub(crate) fn route_from(kind: i64, hash: i64) -> Option<Route> {
    match kind {
        0 => Some(Route::Partition),
        1 => Some(Route::Key(hash as u64)),
        2 => Some(Route::KeyForAll(hash as u64)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_covers_every_field() {
        let r = Route::Key(7);
        let base = checksum("s", b"k", 1, r, Some(b"v"));
        assert_ne!(base, checksum("s2", b"k", 1, r, Some(b"v")));
        assert_ne!(base, checksum("s", b"k2", 1, r, Some(b"v")));
        assert_ne!(base, checksum("s", b"k", 2, r, Some(b"v")));
        assert_ne!(base, checksum("s", b"k", 1, Route::Key(8), Some(b"v")));
        assert_ne!(base, checksum("s", b"k", 1, Route::KeyForAll(7), Some(b"v")));
        assert_ne!(base, checksum("s", b"k", 1, r, Some(b"w")));
        assert_ne!(base, checksum("s", b"k", 1, r, None));
    }
}
