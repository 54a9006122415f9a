//! [`Case`]: the resources of one check.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The resources of one check: a name unique to it and an empty directory of its own.
///
/// A system names what it creates for the case after [`name`](Self::name) (a table, a
/// topic, a stream, a directory under [`dir`](Self::dir)), so that checks never see each
/// other's records, and a child process of the kill check finds the same resources: the
/// kit hands the child the same case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    name: String,
    dir: PathBuf,
}

impl Case {
    /// A case named `name` (letters, digits and `_`) with its directory `dir` (created).
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> std::io::Result<Case> {
        let case = Case {
            name: name.into(),
            dir: dir.into(),
        };
        std::fs::create_dir_all(&case.dir)?;
        Ok(case)
    }

    /// A fresh case under `base` for `check`: the name is `bwx_<run>_<n>_<check>`, lowercase,
    /// at most 48 characters, starting with a letter, so that it is a valid table name,
    /// Kafka topic, NATS stream, Redis key and MQTT topic.
    pub(crate) fn fresh(base: &Path, run: &str, check: &str) -> std::io::Result<Case> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let mut name = format!("bwx_{run}_{n}_{check}");
        name.truncate(48);
        let dir = base.join(&name);
        Case::new(name, dir)
    }

    /// The case's name: letters, digits and `_`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The case's own directory, empty when the check starts.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A name part unique to this process and moment: `<pid base 36><time base 36>`.
pub(crate) fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    format!(
        "{}{}",
        base36(std::process::id() as u64),
        base36(nanos % 36u64.pow(6))
    )
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_names_are_unique_identifiers() {
        let dir = tempfile::tempdir().unwrap();
        let run = run_id();
        let a = Case::fresh(dir.path(), &run, "resume").unwrap();
        let b = Case::fresh(dir.path(), &run, "resume").unwrap();
        assert_ne!(a.name(), b.name());
        for case in [&a, &b] {
            assert!(case.name().len() <= 48);
            assert!(case.name().starts_with("bwx_"));
            assert!(
                case.name()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            );
            assert!(case.dir().is_dir());
        }
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36 * 36 + 35), "10z");
    }
}
