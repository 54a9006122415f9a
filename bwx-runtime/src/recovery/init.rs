//! `recovery init DIR N`: creating a set of partitions.

use std::path::{Path, PathBuf};

use super::RecoveryError;
use super::{resume, store};

/// Creates `dir` (mode 0700) if needed and `count` empty partitions `part-0.sqlite3` …
/// (mode 0600). Running it again with the same count on a complete set changes nothing
/// (so an init step may run before every start); any other existing partition is an error.
///
/// Create at least as many partitions as the most workers you expect to run with: the
/// partitions are the unit of write parallelism and their number is fixed.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let files = bwx_runtime::recovery::init_dir(dir.path().join("db"), 3).unwrap();
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
        let set = resume::open_set(dir, None)?;
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
    (0..count)
        .map(|i| {
            store::create_partition(dir, i, count)?;
            Ok(store::part_path(dir, i))
        })
        .collect()
}
