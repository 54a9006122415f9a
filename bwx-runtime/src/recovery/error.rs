//! Why a recovery directory cannot be used. Every message names the file and what to do:
//! recovery never guesses, because resuming from inconsistent files gives silently wrong state.

use std::path::PathBuf;

use thiserror::Error;

/// A problem with a recovery directory or one of its partition files.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// The directory holds no `part-N.sqlite3` file.
    #[error(
        "no recovery partitions in {}: create them with `bwx recovery init {} N` (or `<flow> recovery init`)",
        .dir.display(), .dir.display()
    )]
    NoPartitions {
        /// The directory.
        dir: PathBuf,
    },
    /// Some partitions of the set are not in the directory.
    #[error(
        "missing recovery partitions in {}: the set has {count} partitions but {} are absent; restore every part-*.sqlite3 file together",
        .dir.display(), .missing.iter().map(|i| format!("part-{i}.sqlite3")).collect::<Vec<_>>().join(", ")
    )]
    MissingPartitions {
        /// The directory.
        dir: PathBuf,
        /// How many partitions the set has.
        count: usize,
        /// The absent partition indexes.
        missing: Vec<usize>,
    },
    /// Partition files disagree about the set they belong to.
    #[error("inconsistent recovery partitions in {}: {why}", .dir.display())]
    Inconsistent {
        /// The directory.
        dir: PathBuf,
        /// What disagrees.
        why: String,
    },
    /// A partition belongs to another flow.
    #[error(
        "{} belongs to flow '{stored}', not to flow '{expected}': use another recovery directory for this flow",
        .file.display()
    )]
    ForeignFlow {
        /// The partition file.
        file: PathBuf,
        /// The flow id stored in it.
        stored: String,
        /// The flow id of the flow being run.
        expected: String,
    },
    /// A partition was written by another format version.
    #[error(
        "{} has recovery format version {found}, this bwx reads version {supported}: it was written by another bwx version",
        .file.display()
    )]
    FormatVersion {
        /// The partition file.
        file: PathBuf,
        /// The version found.
        found: String,
        /// The version this build reads.
        supported: u32,
    },
    /// The file is empty.
    #[error("{} is empty (zero-length): it was truncated or never initialised; restore it from a backup", .file.display())]
    EmptyFile {
        /// The partition file.
        file: PathBuf,
    },
    /// SQLite found the file damaged, or it is not a partition at all.
    #[error("{} is truncated or corrupt: {why}; restore it from a backup", .file.display())]
    Corrupt {
        /// The partition file.
        file: PathBuf,
        /// What SQLite reported.
        why: String,
    },
    /// A stored row does not match its checksum.
    #[error(
        "checksum mismatch in {}: step '{step}', key {key}, epoch {epoch}: the stored state was altered or damaged; restore the file from a backup",
        .file.display()
    )]
    Checksum {
        /// The partition file.
        file: PathBuf,
        /// The step of the row.
        step: String,
        /// The key of the row, in hex.
        key: String,
        /// The epoch of the row.
        epoch: u64,
    },
    /// Snapshots needed to resume were garbage-collected.
    #[error(
        "{} was garbage-collected through epoch {gc_epoch}, past the resume epoch {resume_epoch}: the partitions come from backups taken more than the backup interval apart; restore a consistent set",
        .file.display()
    )]
    GcPastResume {
        /// The partition file.
        file: PathBuf,
        /// Its GC commit point.
        gc_epoch: u64,
        /// The resume epoch computed over all partitions.
        resume_epoch: u64,
    },
    /// A SQLite or file-system operation failed.
    #[error("{}: {why}", .file.display())]
    Io {
        /// The file or directory.
        file: PathBuf,
        /// What failed.
        why: String,
    },
    /// Invalid arguments (e.g. zero partitions).
    #[error("{0}")]
    Usage(String),
}
