//! The conformance kit on connectors made for it: correct ones pass every check, and each
//! deliberately broken one fails the check that names its flaw.
//!
//! The connectors keep records as lines of files, one file per partition, so that the kill
//! check's child processes see the same data.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bwx_runtime::StepId;
use bwx_runtime::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use bwx_runtime::operators::{DynamicKind, FixedKind};
use bwx_runtime::outputs::{
    Delivery, DynamicSink, FixedPartitionedSink, StatefulSinkPartition, StatelessSinkPartition,
};
use bwx_runtime::testing::conformance::{
    Case, Ending, SinkCheck, SinkKit, SinkSystem, SourceCheck, SourceKit, SourceSystem, Verdict,
};

/// A flaw built into a test connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flaw {
    None,
    /// Skips a line after resuming.
    LosesOnResume,
    /// Stores the position of the line before the last one read.
    Duplicates,
    /// Each instance lists the partitions without one of them.
    ListsInconsistently,
    /// A missing directory is read as an empty one.
    SwallowsMissing,
    /// (Sinks) does not truncate to the stored position on resume, yet declares exactly-once.
    AppendsOnResume,
    /// (Sinks) writes every value twice.
    WritesTwice,
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);

// ---- a source: the lines of `dir/p<i>.txt`, one partition per file ----

struct Lines {
    dir: PathBuf,
    flaw: Flaw,
    instance: u64,
}

struct LinesPart {
    reader: BufReader<File>,
    offset: u64,
    previous: u64,
    flaw: Flaw,
}

impl FixedPartitionedSource for Lines {
    type Item = String;
    type State = u64;
    type Partition = LinesPart;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(_) if self.flaw == Flaw::SwallowsMissing => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot read {}: {e}", self.dir.display()).into()),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".txt"))
            .collect();
        names.sort();
        if self.flaw == Flaw::ListsInconsistently && !names.is_empty() {
            names.remove(self.instance as usize % names.len());
        }
        Ok(names)
    }

    fn may_be_empty(&self) -> bool {
        self.flaw == Flaw::SwallowsMissing
    }

    fn build_part(&self, _: &StepId, part: &str, resume: Option<u64>) -> Result<LinesPart, ConnectorError> {
        let mut file = File::open(self.dir.join(part))?;
        let offset = resume.unwrap_or(0);
        file.seek(SeekFrom::Start(offset))?;
        let mut part = LinesPart {
            reader: BufReader::new(file),
            offset,
            previous: offset,
            flaw: self.flaw,
        };
        if resume.is_some() && self.flaw == Flaw::LosesOnResume {
            let mut skipped = String::new();
            part.offset += part.reader.read_line(&mut skipped)? as u64;
        }
        Ok(part)
    }
}

impl StatefulSourcePartition for LinesPart {
    type Item = String;
    type State = u64;

    fn next_batch(&mut self, batch: &mut Vec<String>) -> Result<BatchStatus, ConnectorError> {
        for _ in 0..2 {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line)?;
            if n == 0 {
                return Ok(BatchStatus::Eof);
            }
            self.previous = self.offset;
            self.offset += n as u64;
            batch.push(line.trim_end().to_string());
        }
        Ok(BatchStatus::Active)
    }

    fn snapshot(&self) -> u64 {
        match self.flaw {
            Flaw::Duplicates => self.previous,
            _ => self.offset,
        }
    }
}

struct LinesSystem(Flaw);

fn append_lines(path: &Path, records: &[u64]) -> Result<(), ConnectorError> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    for r in records {
        writeln!(f, "{r}")?;
    }
    Ok(())
}

impl SourceSystem for LinesSystem {
    type Kind = FixedKind;
    type Source = Lines;

    fn describe(&self) -> String {
        format!("test lines source ({:?})", self.0)
    }
    fn partitions(&self) -> usize {
        3
    }
    fn ending(&self) -> Ending {
        Ending::AtEof
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        std::fs::create_dir_all(case.dir().join("src"))?;
        for p in 0..3 {
            File::create(case.dir().join(format!("src/p{p}.txt")))?;
        }
        Ok(())
    }
    fn append(&self, case: &Case, part: usize, records: &[u64]) -> Result<(), ConnectorError> {
        append_lines(&case.dir().join(format!("src/p{part}.txt")), records)
    }
    fn source(&self, case: &Case) -> Result<Lines, ConnectorError> {
        Ok(Lines {
            dir: case.dir().join("src"),
            flaw: self.0,
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
        })
    }
    fn record(&self, item: &String) -> Option<u64> {
        item.parse().ok()
    }
    fn missing(&self, case: &Case) -> Option<Result<Lines, ConnectorError>> {
        Some(Ok(Lines {
            dir: case.dir().join("no-such-dir"),
            flaw: self.0,
            instance: 0,
        }))
    }
}

#[test]
fn a_correct_source_passes_every_check() {
    let report = SourceKit::new(LinesSystem(Flaw::None), "a_correct_source_passes_every_check").run();
    report.assert_passed();
    for check in [
        SourceCheck::PartitionsListed,
        SourceCheck::ReadsOnce,
        SourceCheck::ResumeFromEverySnapshot,
        SourceCheck::EofAndTailing,
        SourceCheck::Rescale,
        SourceCheck::KillAndResume,
        SourceCheck::MissingResource,
    ] {
        assert!(
            matches!(report.verdict(check), Some(Verdict::Passed(_))),
            "{check:?}: {report}"
        );
    }
    assert!(matches!(
        report.verdict(SourceCheck::WrongAddress),
        Some(Verdict::NotApplicable(_))
    ));
}

#[test]
fn a_source_that_loses_records_on_resume_fails() {
    let report = SourceKit::new(
        LinesSystem(Flaw::LosesOnResume),
        "a_source_that_loses_records_on_resume_fails",
    )
    .only([
        SourceCheck::ResumeFromEverySnapshot,
        SourceCheck::EofAndTailing,
        SourceCheck::KillAndResume,
    ])
    .run();
    assert_eq!(
        report.failures(),
        vec![
            SourceCheck::ResumeFromEverySnapshot,
            SourceCheck::EofAndTailing,
            SourceCheck::KillAndResume
        ],
        "{report}"
    );
    let Some(Verdict::Failed(why)) = report.verdict(SourceCheck::ResumeFromEverySnapshot) else {
        unreachable!()
    };
    assert!(why.contains("lost"), "{why}");
}

#[test]
fn a_source_that_duplicates_records_on_resume_fails() {
    let report = SourceKit::new(
        LinesSystem(Flaw::Duplicates),
        "a_source_that_duplicates_records_on_resume_fails",
    )
    .only([
        SourceCheck::ReadsOnce,
        SourceCheck::ResumeFromEverySnapshot,
        SourceCheck::Rescale,
    ])
    .run();
    assert_eq!(
        report.failures(),
        vec![SourceCheck::ResumeFromEverySnapshot, SourceCheck::Rescale],
        "{report}"
    );
    let Some(Verdict::Failed(why)) = report.verdict(SourceCheck::Rescale) else {
        unreachable!()
    };
    assert!(why.contains("duplicated"), "{why}");
}

#[test]
fn a_source_that_lists_partitions_inconsistently_fails() {
    let report = SourceKit::new(LinesSystem(Flaw::ListsInconsistently), "unused")
        .only([SourceCheck::PartitionsListed])
        .run();
    assert!(report.failed(SourceCheck::PartitionsListed), "{report}");
}

#[test]
fn a_source_that_swallows_a_missing_resource_fails() {
    let report = SourceKit::new(LinesSystem(Flaw::SwallowsMissing), "unused")
        .only([SourceCheck::MissingResource])
        .run();
    let Some(Verdict::Failed(why)) = report.verdict(SourceCheck::MissingResource) else {
        panic!("{report}")
    };
    assert!(why.contains("not an empty run"), "{why}");
}

// ---- a sink: lines of `dir/out-<i>.txt`, one partition per file, truncated on resume ----

struct Files {
    dir: PathBuf,
    flaw: Flaw,
    instance: u64,
}

struct FilesPart {
    file: Option<File>,
    len: u64,
    flaw: Flaw,
}

impl FixedPartitionedSink for Files {
    type Key = u64;
    type Value = u64;
    type State = u64;
    type Partition = FilesPart;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        let mut parts: Vec<String> = (0..3).map(|i| format!("out-{i}.txt")).collect();
        if self.flaw == Flaw::ListsInconsistently {
            parts.remove(self.instance as usize % 3);
        }
        Ok(parts)
    }

    fn build_part(&self, _: &StepId, part: &str, resume: Option<u64>) -> Result<FilesPart, ConnectorError> {
        let opened = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(self.dir.join(part));
        let mut file = match opened {
            Ok(file) => file,
            Err(_) if self.flaw == Flaw::SwallowsMissing => {
                return Ok(FilesPart {
                    file: None,
                    len: 0,
                    flaw: self.flaw,
                });
            }
            Err(e) => return Err(format!("cannot open {part} in {}: {e}", self.dir.display()).into()),
        };
        let len = match (resume, self.flaw) {
            (_, Flaw::AppendsOnResume) => file.metadata()?.len(),
            (Some(len), _) => len,
            (None, _) => 0,
        };
        file.set_len(len)?;
        file.seek(SeekFrom::Start(len))?;
        Ok(FilesPart {
            file: Some(file),
            len,
            flaw: self.flaw,
        })
    }

    fn delivery(&self) -> Delivery {
        Delivery::ExactlyOnce
    }
}

impl StatefulSinkPartition for FilesPart {
    type Value = u64;
    type State = u64;

    fn write_batch(&mut self, values: &mut Vec<u64>) -> Result<(), ConnectorError> {
        let Some(file) = &mut self.file else {
            values.clear();
            return Ok(());
        };
        let mut buf = String::new();
        for v in values.drain(..) {
            buf.push_str(&format!("{v}\n"));
            if self.flaw == Flaw::WritesTwice {
                buf.push_str(&format!("{v}\n"));
            }
        }
        file.write_all(buf.as_bytes())?;
        self.len += buf.len() as u64;
        Ok(())
    }

    fn snapshot(&self) -> u64 {
        self.len
    }
}

fn read_lines(dir: &Path) -> Result<Vec<u64>, ConnectorError> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for entry in entries {
        let text = std::fs::read_to_string(entry?.path())?;
        out.extend(
            text.lines()
                .map(|l| l.parse::<u64>())
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    Ok(out)
}

struct FilesSystem(Flaw);

impl SinkSystem for FilesSystem {
    type Kind = FixedKind;
    type Item = (u64, u64);
    type Sink = Files;

    fn describe(&self) -> String {
        format!("test files sink ({:?})", self.0)
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        Ok(std::fs::create_dir_all(case.dir().join("out"))?)
    }
    fn sink(&self, case: &Case) -> Result<Files, ConnectorError> {
        Ok(Files {
            dir: case.dir().join("out"),
            flaw: self.0,
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
        })
    }
    fn item(&self, record: u64) -> (u64, u64) {
        (record % 7, record)
    }
    fn read_back(&self, case: &Case) -> Result<Vec<u64>, ConnectorError> {
        read_lines(&case.dir().join("out"))
    }
    fn missing(&self, case: &Case) -> Option<Result<Files, ConnectorError>> {
        Some(Ok(Files {
            dir: case.dir().join("no-such-dir"),
            flaw: self.0,
            instance: 0,
        }))
    }
}

#[test]
fn a_correct_exactly_once_sink_passes_every_check() {
    let report = SinkKit::new(
        FilesSystem(Flaw::None),
        "a_correct_exactly_once_sink_passes_every_check",
    )
    .run();
    report.assert_passed();
    assert!(matches!(
        report.verdict(SinkCheck::KillAndResume),
        Some(Verdict::Passed(_))
    ));
}

#[test]
fn a_sink_that_declares_exactly_once_and_appends_on_resume_fails() {
    let report = SinkKit::new(
        FilesSystem(Flaw::AppendsOnResume),
        "a_sink_that_declares_exactly_once_and_appends_on_resume_fails",
    )
    .only([
        SinkCheck::WritesOnce,
        SinkCheck::DeliveryAcrossAborts,
        SinkCheck::KillAndResume,
    ])
    .run();
    assert_eq!(
        report.failures(),
        vec![SinkCheck::DeliveryAcrossAborts, SinkCheck::KillAndResume],
        "{report}"
    );
    let Some(Verdict::Failed(why)) = report.verdict(SinkCheck::DeliveryAcrossAborts) else {
        unreachable!()
    };
    assert!(why.contains("exactly-once: duplicated"), "{why}");
}

#[test]
fn a_sink_that_writes_twice_fails() {
    let report = SinkKit::new(FilesSystem(Flaw::WritesTwice), "unused")
        .only([SinkCheck::WritesOnce])
        .run();
    assert!(report.failed(SinkCheck::WritesOnce), "{report}");
}

#[test]
fn a_sink_that_lists_partitions_inconsistently_fails() {
    let report = SinkKit::new(FilesSystem(Flaw::ListsInconsistently), "unused")
        .only([SinkCheck::PartitionsListed])
        .run();
    assert!(report.failed(SinkCheck::PartitionsListed), "{report}");
}

#[test]
fn a_sink_that_swallows_a_missing_resource_fails() {
    let report = SinkKit::new(FilesSystem(Flaw::SwallowsMissing), "unused")
        .only([SinkCheck::MissingResource])
        .run();
    assert!(report.failed(SinkCheck::MissingResource), "{report}");
}

// ---- an at-least-once dynamic sink: every worker appends to its own file ----

struct Appends {
    dir: PathBuf,
    declared: Delivery,
}

struct AppendsPart(File);

impl DynamicSink for Appends {
    type Item = u64;
    type Partition = AppendsPart;

    fn build(&self, _: &StepId, worker: usize, _: usize) -> Result<AppendsPart, ConnectorError> {
        let path = self.dir.join(format!("w{worker}-{}.log", std::process::id()));
        Ok(AppendsPart(
            OpenOptions::new().create(true).append(true).open(path)?,
        ))
    }

    fn delivery(&self) -> Delivery {
        self.declared
    }
}

impl StatelessSinkPartition for AppendsPart {
    type Item = u64;

    fn write_batch(&mut self, items: &mut Vec<u64>) -> Result<(), ConnectorError> {
        let text: String = items.drain(..).map(|v| format!("{v}\n")).collect();
        self.0.write_all(text.as_bytes())?;
        Ok(())
    }
}

struct AppendsSystem(Delivery);

impl SinkSystem for AppendsSystem {
    type Kind = DynamicKind;
    type Item = u64;
    type Sink = Appends;

    fn describe(&self) -> String {
        format!("test appending sink (declared {:?})", self.0)
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        Ok(std::fs::create_dir_all(case.dir().join("out"))?)
    }
    fn sink(&self, case: &Case) -> Result<Appends, ConnectorError> {
        Ok(Appends {
            dir: case.dir().join("out"),
            declared: self.0,
        })
    }
    fn item(&self, record: u64) -> u64 {
        record
    }
    fn read_back(&self, case: &Case) -> Result<Vec<u64>, ConnectorError> {
        read_lines(&case.dir().join("out"))
    }
}

#[test]
fn an_at_least_once_sink_passes_and_the_same_sink_declared_exactly_once_fails() {
    let report = SinkKit::new(
        AppendsSystem(Delivery::AtLeastOnce),
        "an_at_least_once_sink_passes_and_the_same_sink_declared_exactly_once_fails",
    )
    .only([
        SinkCheck::PartitionsListed,
        SinkCheck::WritesOnce,
        SinkCheck::DeliveryAcrossAborts,
    ])
    .run();
    report.assert_passed();
    let Some(Verdict::Passed(what)) = report.verdict(SinkCheck::DeliveryAcrossAborts) else {
        unreachable!()
    };
    assert!(what.contains("AtLeastOnce"), "{what}");
    let report = SinkKit::new(AppendsSystem(Delivery::ExactlyOnce), "unused")
        .only([SinkCheck::DeliveryAcrossAborts])
        .run();
    assert!(report.failed(SinkCheck::DeliveryAcrossAborts), "{report}");
}

#[test]
fn records_name_their_partition() {
    use bwx_runtime::testing::conformance::{record, record_part, record_seq};
    let all: BTreeSet<u64> = (0..3).flat_map(|p| (0..4).map(move |s| record(p, s))).collect();
    assert_eq!(all.len(), 12);
    assert!(all.iter().all(|&r| record_part(r) < 3 && record_seq(r) < 4));
}
