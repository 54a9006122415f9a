//! Why a recovery directory cannot be used. Every message names the file and what to do:
//! recovery never guesses, because resuming from inconsistent files gives silently wrong state.

use std::path::PathBuf;

use thiserror::Error;

use crate::cause::Cause;

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
    /// A partition was made by another `recovery init` than the rest of the set.
    #[error(
        "{} belongs to another recovery store than {} (made by another `recovery init`, or copied from another directory): restore it from a backup of this store",
        .file.display(), .other.display()
    )]
    ForeignStore {
        /// The partition file that differs.
        file: PathBuf,
        /// A partition of the set it was compared with.
        other: PathBuf,
    },
    /// Two processes hold the same partition with different contents: a partition lives on
    /// one host, or on storage every process shares.
    #[error(
        "partition {partition} is held twice, with different contents: {}; keep each partition on one host (or on storage every process shares)",
        .places.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and ")
    )]
    HeldTwice {
        /// The partition index.
        partition: usize,
        /// Where it was found.
        places: Vec<PathBuf>,
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
        /// What is wrong.
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
    /// The partitions cannot agree on a resume epoch: some were garbage-collected past the
    /// epoch that others end at (backups taken further apart than the backup interval).
    #[error(
        "the partitions hold no common resume epoch: {} end at epoch {resume_epoch}, but {} was garbage-collected through epoch {gc_epoch}; \
         restore partitions backed up less than the backup interval (-b) apart",
        .behind.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        .collected.display()
    )]
    BackupsTooFarApart {
        /// The partitions whose progress sets the resume epoch.
        behind: Vec<PathBuf>,
        /// The epoch they hold everything before.
        resume_epoch: u64,
        /// A partition that no longer holds the state at that epoch.
        collected: PathBuf,
        /// Its garbage-collection point.
        gc_epoch: u64,
    },
    /// A SQLite or file-system operation failed; the cause says how.
    #[error("{}: {doing}", .file.display())]
    Io {
        /// The file or directory.
        file: PathBuf,
        /// What was being done.
        doing: String,
        /// The SQLite or I/O error.
        #[source]
        cause: Cause,
    },
    /// Invalid arguments (e.g. zero partitions).
    #[error("{0}")]
    Usage(String),
}
