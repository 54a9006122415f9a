//! Creating, listing, opening and checking partition files.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use super::schema::{CREATE, FORMAT_VERSION};
use crate::cause::Cause;
use crate::recovery::RecoveryError;

/// How long a writer waits for another writer's transaction on the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The path of partition `index` in `dir`.
pub(crate) fn part_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("part-{index}.sqlite3"))
}

/// Maps a SQLite error on `file` to a recovery error: damage is `Corrupt`, the rest `Io`.
pub(crate) fn sql_err(file: &Path) -> impl Fn(rusqlite::Error) -> RecoveryError + '_ {
    move |e| match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => RecoveryError::Corrupt {
            file: file.to_path_buf(),
            why: e.to_string(),
        },
        _ => RecoveryError::Io {
            file: file.to_path_buf(),
            doing: "SQLite failed".into(),
            cause: Cause::new(e),
        },
    }
}

fn io_err(file: &Path) -> impl Fn(std::io::Error) -> RecoveryError + '_ {
    move |e| RecoveryError::Io {
        file: file.to_path_buf(),
        doing: "cannot access it".into(),
        cause: Cause::new(e),
    }
}

/// Creates `dir` (0700) if needed.
pub(crate) fn create_dir(dir: &Path) -> Result<(), RecoveryError> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
}

/// Creates partition `index` of `count` of the store `store_id` in `dir`: a 0600 file with
/// the tables and identity.
pub(crate) fn create_partition(
    dir: &Path,
    index: usize,
    count: usize,
    store_id: &str,
) -> Result<(), RecoveryError> {
    create_dir(dir)?;
    let path = part_path(dir, index);
    // Create the file ourselves so that it is 0600 from the start; SQLite gives its WAL
    // and shared-memory files the permissions of the database file.
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(&path))?;
    let mut conn = Connection::open(&path).map_err(sql_err(&path))?;
    configure(&conn, &path)?;
    let tx = conn.transaction().map_err(sql_err(&path))?;
    tx.execute_batch(CREATE).map_err(sql_err(&path))?;
    tx.execute(
        "INSERT INTO meta(name, value) VALUES ('format_version', ?1)",
        [FORMAT_VERSION.to_string()],
    )
    .map_err(sql_err(&path))?;
    tx.execute(
        "INSERT INTO parts(part_index, part_count) VALUES (?1, ?2)",
        [index as i64, count as i64],
    )
    .map_err(sql_err(&path))?;
    tx.execute(
        "INSERT INTO meta(name, value) VALUES ('store_id', ?1)",
        [store_id],
    )
    .map_err(sql_err(&path))?;
    tx.execute("INSERT INTO gc(gc_epoch) VALUES (0)", [])
        .map_err(sql_err(&path))?;
    tx.commit().map_err(sql_err(&path))
}

fn configure(conn: &Connection, path: &Path) -> Result<(), RecoveryError> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err(path))?;
    // WAL lets readers and one writer at a time work concurrently; FULL makes every
    // committed epoch survive a power loss, so a frontier never outlives its snapshots.
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(sql_err(path))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(RecoveryError::Io {
            file: path.to_path_buf(),
            doing: "cannot switch to WAL mode".into(),
            cause: Cause::new(format!("SQLite answered journal mode {mode}")),
        });
    }
    // A 64 MiB page cache keeps the B-tree pages of a large snapshot in memory.
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;")
        .map_err(sql_err(path))
}

/// What a partition file says about itself.
#[derive(Clone, Debug)]
pub(crate) struct PartIdentity {
    pub(crate) index: usize,
    pub(crate) count: usize,
    pub(crate) store_id: String,
    pub(crate) flow_id: Option<String>,
}

/// Opens an existing partition file for reading and writing, and checks that it is one.
pub(crate) fn open_partition(path: &Path) -> Result<(Connection, PartIdentity), RecoveryError> {
    let len = fs::metadata(path).map_err(io_err(path))?.len();
    if len == 0 {
        return Err(RecoveryError::EmptyFile {
            file: path.to_path_buf(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_err(path))?;
    configure(&conn, path)?;
    let identity = identity(&conn, path)?;
    Ok((conn, identity))
}

/// Runs SQLite's structural check over the whole file (finds truncation and page damage).
pub(crate) fn quick_check(conn: &Connection, path: &Path) -> Result<(), RecoveryError> {
    let result: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(sql_err(path))?;
    if result == "ok" {
        Ok(())
    } else {
        Err(RecoveryError::Corrupt {
            file: path.to_path_buf(),
            why: result,
        })
    }
}

fn identity(conn: &Connection, path: &Path) -> Result<PartIdentity, RecoveryError> {
    let not_a_partition = |why: String| RecoveryError::Corrupt {
        file: path.to_path_buf(),
        why: format!("not a bwx recovery partition ({why})"),
    };
    let version: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE name = 'format_version'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| match sql_err(path)(e) {
            RecoveryError::Io { cause, .. } => not_a_partition(cause.to_string()),
            other => other,
        })?;
    let version = version.ok_or_else(|| not_a_partition("no format version".into()))?;
    if version != FORMAT_VERSION.to_string() {
        return Err(RecoveryError::FormatVersion {
            file: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let (index, count): (i64, i64) = conn
        .query_row("SELECT part_index, part_count FROM parts", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(|e| not_a_partition(format!("no partition identity: {e}")))?;
    let store_id: String = conn
        .query_row("SELECT value FROM meta WHERE name = 'store_id'", [], |r| r.get(0))
        .optional()
        .map_err(sql_err(path))?
        .ok_or_else(|| not_a_partition("no store id".into()))?;
    let flow_id: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE name = 'flow_id'", [], |r| r.get(0))
        .optional()
        .map_err(sql_err(path))?;
    Ok(PartIdentity {
        index: index as usize,
        count: count as usize,
        store_id,
        flow_id,
    })
}

/// The partition files in `dir`, by index (`part-N.sqlite3`; WAL and SHM files skipped).
pub(crate) fn list_partitions(dir: &Path) -> Result<Vec<(usize, PathBuf)>, RecoveryError> {
    if !dir.is_dir() {
        return Err(RecoveryError::NoPartitions {
            dir: dir.to_path_buf(),
        });
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(index) = name
            .strip_prefix("part-")
            .and_then(|r| r.strip_suffix(".sqlite3"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        out.push((index, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Checks that the opened partitions belong to one set of one flow, and with `complete`
/// that all of the set is there.
pub(crate) fn check_set(
    dir: &Path,
    parts: &[(PathBuf, PartIdentity)],
    flow_id: Option<&str>,
    complete: bool,
) -> Result<usize, RecoveryError> {
    let Some((_, first)) = parts.first() else {
        return Err(RecoveryError::NoPartitions {
            dir: dir.to_path_buf(),
        });
    };
    let count = first.count;
    for (path, id) in parts {
        if id.count != count {
            return Err(RecoveryError::Inconsistent {
                dir: dir.to_path_buf(),
                why: format!(
                    "{} says the set has {} partitions, {} says {count}",
                    path.display(),
                    id.count,
                    part_path(dir, first.index).display()
                ),
            });
        }
        if id.store_id != first.store_id {
            return Err(RecoveryError::ForeignStore {
                file: path.clone(),
                other: part_path(dir, first.index),
            });
        }
        if part_path(dir, id.index) != *path {
            return Err(RecoveryError::Inconsistent {
                dir: dir.to_path_buf(),
                why: format!(
                    "{} holds partition {} (was it renamed?)",
                    path.display(),
                    id.index
                ),
            });
        }
        if let (Some(stored), Some(expected)) = (&id.flow_id, flow_id)
            && stored != expected
        {
            return Err(RecoveryError::ForeignFlow {
                file: path.clone(),
                stored: stored.clone(),
                expected: expected.to_string(),
            });
        }
    }
    let present: Vec<usize> = parts.iter().map(|(_, id)| id.index).collect();
    if let Some(extra) = present.iter().find(|i| **i >= count) {
        return Err(RecoveryError::Inconsistent {
            dir: dir.to_path_buf(),
            why: format!("part-{extra}.sqlite3 is outside the set of {count} partitions"),
        });
    }
    let missing: Vec<usize> = (0..count).filter(|i| !present.contains(i)).collect();
    if complete && !missing.is_empty() {
        return Err(RecoveryError::MissingPartitions {
            dir: dir.to_path_buf(),
            count,
            missing,
        });
    }
    Ok(count)
}
