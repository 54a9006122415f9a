//! The built-in file and stdio connectors on the conformance kit
//! (`bwx_runtime::testing::conformance`): each passes every check that applies to it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use bwx_connectors::files::{CsvSource, DirSink, DirSource, FileSink, FileSource};
use bwx_connectors::stdio::{StdInSource, StdOutSink};
use bwx_runtime::inputs::ConnectorError;
use bwx_runtime::operators::{DynamicKind, FixedKind};
use bwx_runtime::testing::conformance::{
    Case, Ending, SinkCheck, SinkKit, SinkSystem, SourceCheck, SourceKit, SourceSystem, Verdict,
};

fn append_lines(path: &Path, records: &[u64]) -> Result<(), ConnectorError> {
    let mut file = OpenOptions::new().append(true).open(path)?;
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    file.write_all(text.as_bytes())?;
    Ok(())
}

fn parse_lines(text: &str) -> Result<Vec<u64>, ConnectorError> {
    Ok(text.lines().map(str::parse).collect::<Result<Vec<u64>, _>>()?)
}

// ---- FileSource ----

struct OneFile;

impl SourceSystem for OneFile {
    type Kind = FixedKind;
    type Source = FileSource;

    fn describe(&self) -> String {
        "FileSource".into()
    }
    fn ending(&self) -> Ending {
        Ending::AtEof
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        File::create(case.dir().join("in.txt"))?;
        Ok(())
    }
    fn append(&self, case: &Case, _: usize, records: &[u64]) -> Result<(), ConnectorError> {
        append_lines(&case.dir().join("in.txt"), records)
    }
    fn source(&self, case: &Case) -> Result<FileSource, ConnectorError> {
        Ok(FileSource::new(case.dir().join("in.txt")).batch_size(2))
    }
    fn record(&self, line: &String) -> Option<u64> {
        line.parse().ok()
    }
    fn missing(&self, case: &Case) -> Option<Result<FileSource, ConnectorError>> {
        Some(Ok(FileSource::new(case.dir().join("no-such-file.txt"))))
    }
}

#[test]
fn file_source_conforms() {
    let report = SourceKit::new(OneFile, "file_source_conforms").run();
    report.assert_passed();
    let Some(Verdict::Passed(why)) = report.verdict(SourceCheck::MissingResource) else {
        unreachable!()
    };
    assert!(why.contains("no-such-file.txt"), "{why}");
}

// ---- DirSource ----

struct Dir;

impl SourceSystem for Dir {
    type Kind = FixedKind;
    type Source = DirSource;

    fn describe(&self) -> String {
        "DirSource".into()
    }
    fn partitions(&self) -> usize {
        3
    }
    fn ending(&self) -> Ending {
        Ending::AtEof
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        std::fs::create_dir_all(case.dir().join("in/sub"))?;
        for part in ["in/a.log", "in/b.log", "in/sub/c.log"] {
            File::create(case.dir().join(part))?;
        }
        // Not matched by the pattern.
        std::fs::write(case.dir().join("in/notes.txt"), "not a record\n")?;
        Ok(())
    }
    fn append(&self, case: &Case, part: usize, records: &[u64]) -> Result<(), ConnectorError> {
        let file = ["in/a.log", "in/b.log", "in/sub/c.log"][part];
        append_lines(&case.dir().join(file), records)
    }
    fn source(&self, case: &Case) -> Result<DirSource, ConnectorError> {
        Ok(DirSource::new(case.dir().join("in"), "**/*.log")?.batch_size(2))
    }
    fn record(&self, line: &String) -> Option<u64> {
        line.parse().ok()
    }
    fn missing(&self, case: &Case) -> Option<Result<DirSource, ConnectorError>> {
        // A directory where nothing matches: the run must not read nothing silently.
        std::fs::create_dir_all(case.dir().join("empty")).ok()?;
        Some(DirSource::new(case.dir().join("empty"), "*.log").map_err(Into::into))
    }
}

#[test]
fn dir_source_conforms() {
    SourceKit::new(Dir, "dir_source_conforms").run().assert_passed();
}

// ---- CsvSource ----

#[derive(Clone, Debug, serde::Deserialize)]
struct Row {
    record: u64,
    label: String,
}

struct Csv;

impl SourceSystem for Csv {
    type Kind = FixedKind;
    type Source = CsvSource<Row>;

    fn describe(&self) -> String {
        "CsvSource".into()
    }
    fn ending(&self) -> Ending {
        Ending::AtEof
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        std::fs::write(case.dir().join("in.csv"), "label,record\n")?;
        Ok(())
    }
    fn append(&self, case: &Case, _: usize, records: &[u64]) -> Result<(), ConnectorError> {
        let mut file = OpenOptions::new().append(true).open(case.dir().join("in.csv"))?;
        for r in records {
            // A quoted field with a comma and a newline: records are not lines.
            writeln!(file, "\"r,\n{r}\",{r}")?;
        }
        Ok(())
    }
    fn source(&self, case: &Case) -> Result<CsvSource<Row>, ConnectorError> {
        Ok(CsvSource::new(case.dir().join("in.csv")).batch_size(2))
    }
    fn record(&self, row: &Row) -> Option<u64> {
        (row.label == format!("r,\n{}", row.record)).then_some(row.record)
    }
    fn missing(&self, case: &Case) -> Option<Result<CsvSource<Row>, ConnectorError>> {
        Some(Ok(CsvSource::new(case.dir().join("no-such-file.csv"))))
    }
}

#[test]
fn csv_source_conforms() {
    SourceKit::new(Csv, "csv_source_conforms").run().assert_passed();
}

// ---- StdInSource (the child's stdin is the case's file `stdin`) ----

struct Stdin;

impl SourceSystem for Stdin {
    type Kind = DynamicKind;
    type Source = StdInSource;

    fn describe(&self) -> String {
        "StdInSource".into()
    }
    fn ending(&self) -> Ending {
        Ending::AtEof
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        File::create(case.dir().join("stdin"))?;
        Ok(())
    }
    fn append(&self, case: &Case, _: usize, records: &[u64]) -> Result<(), ConnectorError> {
        append_lines(&case.dir().join("stdin"), records)
    }
    fn source(&self, _: &Case) -> Result<StdInSource, ConnectorError> {
        Ok(StdInSource::new().batch_size(2))
    }
    fn record(&self, line: &String) -> Option<u64> {
        line.parse().ok()
    }
    fn in_subprocess(&self) -> bool {
        true
    }
}

#[test]
fn stdin_source_conforms() {
    let report = SourceKit::new(Stdin, "stdin_source_conforms").run();
    report.assert_passed();
    assert!(matches!(
        report.verdict(SourceCheck::ReadsOnce),
        Some(Verdict::Passed(_))
    ));
    assert!(matches!(
        report.verdict(SourceCheck::Rescale),
        Some(Verdict::NotApplicable(_))
    ));
}

// ---- FileSink ----

struct OneFileOut;

impl SinkSystem for OneFileOut {
    type Kind = FixedKind;
    type Item = ((), String);
    type Sink = FileSink<(), String>;

    fn describe(&self) -> String {
        "FileSink".into()
    }
    fn prepare(&self, _: &Case) -> Result<(), ConnectorError> {
        Ok(())
    }
    fn sink(&self, case: &Case) -> Result<Self::Sink, ConnectorError> {
        Ok(FileSink::new(case.dir().join("out.txt")))
    }
    fn item(&self, record: u64) -> ((), String) {
        ((), record.to_string())
    }
    fn read_back(&self, case: &Case) -> Result<Vec<u64>, ConnectorError> {
        parse_lines(&std::fs::read_to_string(case.dir().join("out.txt")).unwrap_or_default())
    }
    fn missing(&self, case: &Case) -> Option<Result<Self::Sink, ConnectorError>> {
        Some(Ok(FileSink::new(case.dir().join("no/such/dir/out.txt"))))
    }
}

#[test]
fn file_sink_conforms() {
    let report = SinkKit::new(OneFileOut, "file_sink_conforms").run();
    report.assert_passed();
    let Some(Verdict::Passed(why)) = report.verdict(SinkCheck::DeliveryAcrossAborts) else {
        unreachable!()
    };
    assert!(why.contains("ExactlyOnce"), "{why}");
}

// ---- DirSink ----

struct DirOut;

impl SinkSystem for DirOut {
    type Kind = FixedKind;
    type Item = (u64, String);
    type Sink = DirSink<u64, String>;

    fn describe(&self) -> String {
        "DirSink".into()
    }
    fn prepare(&self, _: &Case) -> Result<(), ConnectorError> {
        Ok(())
    }
    fn sink(&self, case: &Case) -> Result<Self::Sink, ConnectorError> {
        Ok(DirSink::new(case.dir().join("out"), 3).suffix(".txt"))
    }
    fn item(&self, record: u64) -> (u64, String) {
        (record % 5, record.to_string())
    }
    fn read_back(&self, case: &Case) -> Result<Vec<u64>, ConnectorError> {
        let mut out = Vec::new();
        let Ok(files) = std::fs::read_dir(case.dir().join("out")) else {
            return Ok(out);
        };
        for file in files {
            out.extend(parse_lines(&std::fs::read_to_string(file?.path())?)?);
        }
        Ok(out)
    }
    fn missing(&self, case: &Case) -> Option<Result<Self::Sink, ConnectorError>> {
        // Its directory would be inside a regular file.
        std::fs::write(case.dir().join("a-file"), "").ok()?;
        Some(Ok(DirSink::new(case.dir().join("a-file/out"), 3)))
    }
}

#[test]
fn dir_sink_conforms() {
    SinkKit::new(DirOut, "dir_sink_conforms").run().assert_passed();
}

// ---- StdOutSink (the child's stdout is appended to the case's file `stdout`) ----

struct Stdout;

impl SinkSystem for Stdout {
    type Kind = DynamicKind;
    type Item = String;
    type Sink = StdOutSink<String>;

    fn describe(&self) -> String {
        "StdOutSink".into()
    }
    fn prepare(&self, _: &Case) -> Result<(), ConnectorError> {
        Ok(())
    }
    fn sink(&self, _: &Case) -> Result<Self::Sink, ConnectorError> {
        Ok(StdOutSink::new())
    }
    fn item(&self, record: u64) -> String {
        format!("record {record}")
    }
    fn read_back(&self, case: &Case) -> Result<Vec<u64>, ConnectorError> {
        let text = std::fs::read_to_string(case.dir().join("stdout")).unwrap_or_default();
        // The test harness prints its own lines there too.
        Ok(text
            .lines()
            .filter_map(|l| l.strip_prefix("record ")?.parse().ok())
            .collect())
    }
    fn in_subprocess(&self) -> bool {
        true
    }
}

#[test]
fn stdout_sink_conforms() {
    let report = SinkKit::new(Stdout, "stdout_sink_conforms").run();
    report.assert_passed();
    let Some(Verdict::Passed(why)) = report.verdict(SinkCheck::KillAndResume) else {
        unreachable!()
    };
    assert!(why.contains("AtLeastOnce"), "{why}");
}
