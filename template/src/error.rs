//! [`LinesError`]: every error names the file and what was being done.

use std::path::PathBuf;

/// An error of the line-file connectors. It names the file; the I/O error is its
/// [`source`](std::error::Error::source), so a flow's error report shows both.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinesError {
    /// A file or directory operation failed.
    #[error("cannot {doing} {path}")]
    Io {
        /// What the connector was doing.
        doing: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not UTF-8.
    #[error("{path}: the line at byte offset {offset} is not UTF-8")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the line starts.
        offset: u64,
    },
    /// A stored position is past the end of its file: the file was replaced or cut.
    #[error("{path} is {len} bytes long, shorter than the stored position {position}")]
    PastEnd {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The stored position.
        position: u64,
    },
}

impl LinesError {
    /// `doing` on `path` failed with `source`.
    pub(crate) fn io(
        doing: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> LinesError {
        let path = path.to_path_buf();
        move |source| LinesError::Io { doing, path, source }
    }
}
