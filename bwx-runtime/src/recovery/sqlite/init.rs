//! `recovery init DIR N`: creating a set of partitions.

use std::path::{Path, PathBuf};

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::SystemTime;

use super::{file as store, plan};
use crate::recovery::RecoveryError;

/// Creates `dir` (mode 0700) if needed and `count` empty partitions `part-0.sqlite3` …
/// (mode 0600), which all carry the id of this new store: a partition copied in from
/// another store (even of the same flow) is refused when the store is opened. Running it again with the same count on a complete set changes nothing
/// (so an init step may run before every start); any other existing partition is an error.
///
/// Create at least as many partitions as the most workers you expect to run with: the
/// partitions are the unit of write parallelism and their number is fixed.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let files = bwx::recovery::init_dir(dir.path().join("db"), 3).unwrap();
/// assert_eq!(files.len(), 3);
/// assert!(files[2].ends_with("part-2.sqlite3"));
/// ```
pub fn init_dir(dir: impl AsRef<Path>, count: usize) -> Result<Vec<PathBuf>, RecoveryError> {
    let dir = dir.as_ref();
    if count == 0 {
        return Err(RecoveryError::Usage(
            "the number of recovery partitions must be at least 1".into(),
        ));
    }
    store::create_dir(dir)?;
    let existing = store::list_partitions(dir)?;
    if !existing.is_empty() {
        let set = plan::open_set(dir, None)?;
        if set.files.len() != count {
            return Err(RecoveryError::Inconsistent {
                dir: dir.to_path_buf(),
                why: format!(
                    "it already holds a set of {} partitions, not {count}; use another directory",
                    set.files.len()
                ),
            });
        }
        return Ok(set.files);
    }
    let store_id = new_store_id();
    (0..count)
        .map(|i| {
            store::create_partition(dir, i, count, &store_id)?;
            Ok(store::part_path(dir, i))
        })
        .collect()
}

/// A fresh store id: 128 bits from the operating system's randomness (through the keys of
/// `RandomState`), the time and the process id, in hex.
fn new_store_id() -> String {
    let mut id = String::with_capacity(32);
    for salt in 0..2u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        id.push_str(&format!("{:016x}", h.finish()));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_ids_differ() {
        let ids: std::collections::HashSet<String> = (0..100).map(|_| new_store_id()).collect();
        assert_eq!(ids.len(), 100);
        assert!(ids.iter().all(|id| id.len() == 32));
    }
}
