//! Errors of the file connectors; each names the file and, where it applies, the position.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// What went wrong reading or writing a file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FileError {
    /// An I/O operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done ("open", "read", "write", ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not valid UTF-8.
    #[error("{}: invalid UTF-8 at byte offset {offset}", path.display())]
    BadUtf8 {
        /// The file.
        path: PathBuf,
        /// The offset of the first invalid byte from the start of the file.
        offset: u64,
    },
    /// A line is longer than the source's maximum line length.
    #[error(
        "{}: the line at byte offset {offset} is longer than the maximum of {max} bytes; raise it with `max_line_length`",
        path.display()
    )]
    LineTooLong {
        /// The file.
        path: PathBuf,
        /// The offset of the line's first byte.
        offset: u64,
        /// The maximum, in bytes.
        max: usize,
    },
    /// A stored position lies beyond the end of the file: the file was replaced, truncated,
    /// or lost writes since the snapshot, so resuming from it would be wrong.
    #[error(
        "{} is {len} bytes long, shorter than the stored position {position}; it changed since the snapshot was taken",
        path.display()
    )]
    PositionPastEnd {
        /// The file.
        path: PathBuf,
        /// Its length now.
        len: u64,
        /// The stored position.
        position: u64,
    },
    /// A CSV record could not be read or turned into the row type.
    #[error("{}: record at line {line} (byte offset {offset}): {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The line the record starts on (1-based).
        line: u64,
        /// The byte offset the record starts at.
        offset: u64,
        /// What is wrong with it.
        message: String,
    },
    /// An item's `Display` implementation failed while it was being written.
    #[error("{}: an item could not be formatted", path.display())]
    Format {
        /// The file.
        path: PathBuf,
    },
    /// A glob pattern is malformed.
    #[error("bad glob pattern {pattern:?}: {message}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
}

impl FileError {
    /// The canonical (absolute, resolved) form of `path`, which names its partition: the
    /// same file written as `x`, `./x` or `/abs/x` is one partition, so a resume finds it.
    pub(crate) fn canonical(path: &Path) -> Result<PathBuf, FileError> {
        std::fs::canonicalize(path).map_err(FileError::io("find", path))
    }

    /// The canonical form of a file that may not exist yet: its directory resolved, its
    /// name kept.
    pub(crate) fn canonical_new(path: &Path) -> Result<PathBuf, FileError> {
        let name = path.file_name().ok_or_else(|| FileError::Io {
            op: "write to",
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file"),
        })?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        Ok(FileError::canonical(dir)?.join(name))
    }

    /// An I/O error of `op` on `path`.
    /// The path is copied only when the error happens.
    pub(crate) fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FileError + 'a {
        move |source| FileError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}
