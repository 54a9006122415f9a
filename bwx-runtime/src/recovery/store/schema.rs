//! The tables of a partition file, the row checksum and the partition routing hash.

use std::hash::Hasher;

use twox_hash::XxHash64;

/// The format version this build reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Creates the tables of a new partition file.
pub(crate) const CREATE: &str = "
CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE parts(part_index INTEGER NOT NULL, part_count INTEGER NOT NULL);
CREATE TABLE exs(ex_num INTEGER PRIMARY KEY, worker_count INTEGER NOT NULL, resume_epoch INTEGER NOT NULL);
CREATE TABLE fronts(ex_num INTEGER NOT NULL, worker_index INTEGER NOT NULL, worker_frontier INTEGER NOT NULL,
    PRIMARY KEY (ex_num, worker_index));
CREATE TABLE commits(part_index INTEGER PRIMARY KEY, commit_epoch INTEGER NOT NULL);
CREATE TABLE snaps(step_id TEXT NOT NULL, state_key BLOB NOT NULL, snap_epoch INTEGER NOT NULL,
    ser_change BLOB, checksum INTEGER NOT NULL,
    PRIMARY KEY (step_id, state_key, snap_epoch)) WITHOUT ROWID;
CREATE INDEX snaps_by_epoch ON snaps(snap_epoch);
";

/// Seed of the row checksum, so that it differs from the routing hash.
const CHECKSUM_SEED: u64 = 0x0062_7778_5f72_6563;

/// The checksum of one snapshot row: XXH64 over every field, length-prefixed.
pub(crate) fn checksum(step: &str, key: &[u8], epoch: u64, state: Option<&[u8]>) -> i64 {
    let mut h = XxHash64::with_seed(CHECKSUM_SEED);
    h.write(&(step.len() as u64).to_le_bytes());
    h.write(step.as_bytes());
    h.write(&(key.len() as u64).to_le_bytes());
    h.write(key);
    h.write(&epoch.to_le_bytes());
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

/// The stable hash that routes a snapshot to a partition: `route_hash(&(step, key))` with
/// the key's encoded bytes, computed without allocating the tuple.
pub(crate) fn partition_of(step: &str, key: &[u8], parts: usize) -> usize {
    let mut h = XxHash64::with_seed(0);
    h.write(step.as_bytes());
    h.write(&(step.len() as u64).to_le_bytes());
    h.write(key);
    h.write(&(key.len() as u64).to_le_bytes());
    (h.finish() % parts.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_routing_is_the_route_hash_of_step_and_key() {
        let (step, key) = ("f.sum".to_string(), vec![1u8, 2, 3]);
        let expected = (crate::route_hash(&(step.clone(), key.clone())) % 7) as usize;
        assert_eq!(partition_of(&step, &key, 7), expected);
    }

    #[test]
    fn checksum_covers_every_field() {
        let base = checksum("s", b"k", 1, Some(b"v"));
        assert_ne!(base, checksum("s2", b"k", 1, Some(b"v")));
        assert_ne!(base, checksum("s", b"k2", 1, Some(b"v")));
        assert_ne!(base, checksum("s", b"k", 2, Some(b"v")));
        assert_ne!(base, checksum("s", b"k", 1, Some(b"w")));
        assert_ne!(base, checksum("s", b"k", 1, None));
    }
}
