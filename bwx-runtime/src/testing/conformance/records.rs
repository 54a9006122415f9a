//! Records: the numbers the kit writes and expects back, and how what came back compares.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Records of partition `p` are `p * PART_STRIDE + seq`.
pub const PART_STRIDE: u64 = 1_000_000;

/// The `seq`-th record of partition `part`.
pub fn record(part: usize, seq: u64) -> u64 {
    part as u64 * PART_STRIDE + seq
}

/// The partition a record belongs to.
pub fn record_part(record: u64) -> usize {
    (record / PART_STRIDE) as usize
}

/// A record's place in its partition.
pub fn record_seq(record: u64) -> u64 {
    record % PART_STRIDE
}

/// `p<part>#<seq>`, as messages show records.
pub(crate) fn show(record: u64) -> String {
    format!("p{}#{}", record_part(record), record_seq(record))
}

/// Records `from..to` of every one of `parts` partitions, partition by partition.
pub(crate) fn range(parts: usize, from: u64, to: u64) -> Vec<Vec<u64>> {
    (0..parts)
        .map(|p| (from..to).map(|s| record(p, s)).collect())
        .collect()
}

/// What came back compared with what was expected.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Expected and missing.
    pub lost: Vec<u64>,
    /// Expected and seen more than once: (record, times).
    pub duplicated: Vec<(u64, usize)>,
    /// Seen and not expected.
    pub unexpected: Vec<u64>,
}

impl Tally {
    /// Compares `got` (in any order) with `expected` (each once).
    pub fn of(expected: impl IntoIterator<Item = u64>, got: impl IntoIterator<Item = u64>) -> Tally {
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for r in got {
            *counts.entry(r).or_default() += 1;
        }
        let mut tally = Tally::default();
        for r in expected {
            match counts.remove(&r) {
                None => tally.lost.push(r),
                Some(1) => {}
                Some(n) => tally.duplicated.push((r, n)),
            }
        }
        tally.unexpected = counts.into_keys().collect();
        tally.lost.sort_unstable();
        tally
    }

    /// Nothing lost, duplicated or unexpected.
    pub fn exact(&self) -> bool {
        self.lost.is_empty() && self.duplicated.is_empty() && self.unexpected.is_empty()
    }

    /// What is wrong, in one sentence; empty when exact. With `duplicates_allowed`,
    /// duplicates are not mentioned.
    pub fn describe(&self, duplicates_allowed: bool) -> String {
        let mut parts = Vec::new();
        if !self.lost.is_empty() {
            parts.push(format!(
                "lost {} ({})",
                self.lost.len(),
                sample(self.lost.iter().copied())
            ));
        }
        if !duplicates_allowed && !self.duplicated.is_empty() {
            let mut s = format!("duplicated {} (", self.duplicated.len());
            for (i, (r, n)) in self.duplicated.iter().take(5).enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "{} x{n}", show(*r));
            }
            if self.duplicated.len() > 5 {
                s.push_str(", ...");
            }
            s.push(')');
            parts.push(s);
        }
        if !self.unexpected.is_empty() {
            parts.push(format!(
                "unexpected {} ({})",
                self.unexpected.len(),
                sample(self.unexpected.iter().copied())
            ));
        }
        parts.join(", ")
    }
}

/// Up to 5 records, then `...`.
pub(crate) fn sample(records: impl Iterator<Item = u64>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut more = false;
    for (i, r) in records.enumerate() {
        if i == 5 {
            more = true;
            break;
        }
        out.push(show(r));
    }
    if more {
        out.push("...".into());
    }
    out.join(", ")
}

/// The first place where a partition's records came out of order in `got` (in arrival
/// order), as a message.
pub(crate) fn order_violation(got: impl IntoIterator<Item = u64>) -> Option<String> {
    let mut last: BTreeMap<usize, u64> = BTreeMap::new();
    for r in got {
        let part = record_part(r);
        if let Some(prev) = last.insert(part, r)
            && prev >= r
        {
            return Some(format!(
                "partition {part} gave {} after {}: the records of a partition must come in order",
                show(r),
                show(prev)
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_encode_partition_and_place() {
        let r = record(3, 17);
        assert_eq!((record_part(r), record_seq(r)), (3, 17));
        assert_eq!(show(r), "p3#17");
        assert_eq!(range(2, 1, 3), vec![vec![1, 2], vec![1_000_001, 1_000_002]]);
    }

    #[test]
    fn a_tally_names_lost_duplicated_and_unexpected_records() {
        let t = Tally::of([1, 2, 3, 4], [1, 1, 3, 9, 4]);
        assert_eq!(t.lost, vec![2]);
        assert_eq!(t.duplicated, vec![(1, 2)]);
        assert_eq!(t.unexpected, vec![9]);
        assert!(!t.exact());
        assert_eq!(
            t.describe(false),
            "lost 1 (p0#2), duplicated 1 (p0#1 x2), unexpected 1 (p0#9)"
        );
        assert_eq!(t.describe(true), "lost 1 (p0#2), unexpected 1 (p0#9)");
        assert!(Tally::of([1, 2], [2, 1]).exact());
    }

    #[test]
    fn order_is_checked_per_partition() {
        assert_eq!(order_violation([1, record(1, 0), 2, record(1, 1)]), None);
        let msg = order_violation([1, 3, 2]).unwrap();
        assert!(msg.starts_with("partition 0 gave p0#2 after p0#3"), "{msg}");
    }
}
