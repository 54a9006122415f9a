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
    check_store_id(store_id)?;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(p) = parts.iter().find(|p| !seen.insert(**p)) {
        return Err(RecoveryError::Usage(format!("partition {p} is listed twice")));
    }
    if parts.is_empty() {
        return Err(RecoveryError::Usage(
            "no partitions to create: list at least one (for example `0,2` or `0-3`)".into(),
        ));
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

/// Parses a list of partitions as `recovery init --parts` takes it: indexes and inclusive
/// ranges separated by commas (`0,2`, `0-3`, `0-1,4`), each partition once.
///
/// ```
/// use bwx::recovery::parse_parts;
///
/// assert_eq!(parse_parts("0-2,5").unwrap(), vec![0, 1, 2, 5]);
/// assert!(parse_parts("3-1").unwrap_err().to_string().contains("'3-1'"));
/// ```
pub fn parse_parts(list: &str) -> Result<Vec<usize>, RecoveryError> {
    let bad = |item: &str, why: &str| {
        RecoveryError::Usage(format!(
            "bad partition list '{list}': {why} '{item}' (write indexes and ranges such as `0,2` or `0-3`)"
        ))
    };
    let index = |item: &str, text: &str| {
        text.trim()
            .parse::<usize>()
            .map_err(|_| bad(item, "not a partition index:"))
    };
    let mut parts = Vec::new();
    for item in list.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(bad(item, "an empty item"));
        }
        match item.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (index(item, first)?, index(item, last)?);
                if first > last {
                    return Err(bad(item, "a range that ends before it starts:"));
                }
                parts.extend(first..=last);
            }
            None => parts.push(index(item, item)?),
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(p) = parts.iter().find(|p| !seen.insert(**p)) {
        return Err(bad(&p.to_string(), "a partition listed twice:"));
    }
    Ok(parts)
}

/// The longest store id [`init_parts`] accepts.
const MAX_STORE_ID: usize = 128;

/// A store id names one store on every host, in file contents and messages: printable,
/// shell-safe characters only.
fn check_store_id(id: &str) -> Result<(), RecoveryError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if id.is_empty() || id.len() > MAX_STORE_ID || !id.chars().all(allowed) {
        return Err(RecoveryError::Usage(format!(
            "bad store id {id:?}: use 1 to {MAX_STORE_ID} letters, digits, '-', '_', '.' or ':' \
             (make one with `bwx recovery store-id`)"
        )));
    }
    Ok(())
}

/// The store id of the partitions in `dir` (they must all share it), to give the same id to
/// the partitions of another host with [`init_parts`].
///
/// ```
/// use bwx::recovery::{init_parts, store_id_of};
///
/// let dir = tempfile::tempdir().unwrap();
/// init_parts(dir.path(), 4, &[1, 3], "orders-2026").unwrap();
/// assert_eq!(store_id_of(dir.path()).unwrap(), "orders-2026");
/// ```
pub fn store_id_of(dir: impl AsRef<Path>) -> Result<String, RecoveryError> {
    let set = plan::open_set(dir.as_ref(), None, false)?;
    Ok(set.ids[0].store_id.clone())
}

/// A fresh store id: 128 bits from the operating system's randomness (through the keys of
/// `RandomState`), the time and the process id, in hex. Give it to [`init_parts`] on every
/// host of one store.
///
/// ```
/// let id = bwx::recovery::new_store_id();
/// assert_eq!(id.len(), 32);
/// assert_ne!(id, bwx::recovery::new_store_id());
/// ```
pub fn new_store_id() -> String {
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
        assert!(ids.iter().all(|id| check_store_id(id).is_ok()));
    }

    #[test]
    fn part_lists() {
        assert_eq!(parse_parts("0").unwrap(), vec![0]);
        assert_eq!(parse_parts("0,2").unwrap(), vec![0, 2]);
        assert_eq!(parse_parts("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_parts(" 4 , 0-1 ,7-7").unwrap(), vec![4, 0, 1, 7]);
        for (list, says) in [
            ("", "an empty item ''"),
            ("0,,1", "an empty item ''"),
            ("0,", "an empty item ''"),
            ("x", "not a partition index: 'x'"),
            ("-1", "not a partition index: '-1'"),
            ("1-", "not a partition index: '1-'"),
            ("0-2-4", "not a partition index: '0-2-4'"),
            ("3-1", "a range that ends before it starts: '3-1'"),
            ("0-2,1", "a partition listed twice: '1'"),
            ("2,2", "a partition listed twice: '2'"),
        ] {
            let err = parse_parts(list).unwrap_err().to_string();
            assert!(err.contains(says), "{list:?}: {err}");
            assert!(err.contains(&format!("'{list}'")), "{list:?}: {err}");
        }
    }

    #[test]
    fn bad_store_ids_and_part_lists_are_refused_before_anything_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        for (id, parts, says) in [
            ("", &[0][..], "bad store id \"\""),
            ("a b", &[0][..], "bad store id \"a b\""),
            ("x/../y", &[0][..], "bad store id"),
            (&"x".repeat(129)[..], &[0][..], "1 to 128"),
            ("s", &[0, 0][..], "partition 0 is listed twice"),
            ("s", &[][..], "no partitions to create"),
            ("s", &[1, 3][..], "partition 3 is not in a set of 3"),
        ] {
            let err = init_parts(&dir, 3, parts, id).unwrap_err().to_string();
            assert!(err.contains(says), "{id:?} {parts:?}: {err}");
            assert!(!dir.exists(), "{id:?} {parts:?} created the directory");
        }
        assert_eq!(init_parts(&dir, 3, &[0, 2], "s.1:a_b-C").unwrap().len(), 2);
    }

    #[test]
    fn a_host_cannot_take_partitions_of_another_store() {
        let tmp = tempfile::tempdir().unwrap();
        init_parts(tmp.path(), 3, &[0], "one").unwrap();
        // Running it again is a no-op; another partition of the same store may join.
        init_parts(tmp.path(), 3, &[0, 1], "one").unwrap();
        assert_eq!(store_id_of(tmp.path()).unwrap(), "one");
        let err = init_parts(tmp.path(), 3, &[0], "two").unwrap_err().to_string();
        assert!(
            err.contains("part-0.sqlite3 belongs to store 'one', not to store 'two'"),
            "{err}"
        );
        let err = init_parts(tmp.path(), 4, &[1], "one").unwrap_err().to_string();
        assert!(err.contains("is partition 1 of 3, not partition 1 of 4"), "{err}");
    }
}
