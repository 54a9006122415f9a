//! `recovery init DIR N`: creating a set of partitions.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{file as store, plan};
use crate::recovery::RecoveryError;

/// Creates `dir` (mode 0700) if needed and `count` empty partitions `part-0.sqlite3` …
/// (mode 0600), which all carry the id of this new store: a partition copied in from
/// another store (even of the same flow) is refused when the store is opened. Running it
/// again with the same count on a complete set changes nothing (so an init step may run
/// before every start); any other existing partition is an error.
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
        let set = plan::open_set(dir, None, true)?;
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

/// Creates the partitions `parts` of a set of `count` in `dir`, for a host that keeps its
/// own partitions on its own disk: every host of the cluster runs it for its partitions with
/// the same `store_id` (any name unique to this store, the same on every host). Partitions
/// already there are checked, not changed, so it may run before every start.
///
/// ```
/// use bwx::recovery::init_parts;
///
/// let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
/// // Host a keeps partitions 0 and 1 of 3, host b partition 2.
/// init_parts(a.path(), 3, &[0, 1], "orders-2026").unwrap();
/// init_parts(b.path(), 3, &[2], "orders-2026").unwrap();
/// assert!(b.path().join("part-2.sqlite3").exists());
/// ```
pub fn init_parts(
    dir: impl AsRef<Path>,
    count: usize,
    parts: &[usize],
    store_id: &str,
) -> Result<Vec<PathBuf>, RecoveryError> {
    let dir = dir.as_ref();
    if count == 0 {
        return Err(RecoveryError::Usage(
            "the number of recovery partitions must be at least 1".into(),
        ));
    }
    if let Some(p) = parts.iter().find(|p| **p >= count) {
        return Err(RecoveryError::Usage(format!(
            "partition {p} is not in a set of {count} partitions (they are numbered from 0)"
        )));
    }
    if store_id.trim().is_empty() {
        return Err(RecoveryError::Usage("the store id must not be empty".into()));
    }
    store::create_dir(dir)?;
    let mut files = Vec::with_capacity(parts.len());
    for &p in parts {
        let path = store::part_path(dir, p);
        if path.exists() {
            let (_, id) = store::open_partition(&path)?;
            if id.count != count || id.index != p {
                return Err(RecoveryError::Inconsistent {
                    dir: dir.to_path_buf(),
                    why: format!(
                        "{} is partition {} of {}, not partition {p} of {count}",
                        path.display(),
                        id.index,
                        id.count
                    ),
                });
            }
            if id.store_id != store_id {
                return Err(RecoveryError::Inconsistent {
                    dir: dir.to_path_buf(),
                    why: format!(
                        "{} belongs to store '{}', not to store '{store_id}'",
                        path.display(),
                        id.store_id
                    ),
                });
            }
        } else {
            store::create_partition(dir, p, count, store_id)?;
        }
        files.push(path);
    }
    Ok(files)
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
