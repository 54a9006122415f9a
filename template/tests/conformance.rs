//! The connectors on the bwx conformance kit: every check a connector must pass.
//! Keep this file when you replace the connectors: change the two systems below to create,
//! fill and read back resources of your system (read its address from an environment
//! variable, and skip with a message when it is not set).

use std::fs::{File, OpenOptions};
use std::io::Write;

use bwx::inputs::ConnectorError;
use bwx::operators::FixedKind;
use bwx::testing::conformance::{Case, Ending, SinkKit, SinkSystem, SourceKit, SourceSystem};
use bwx_connector_template::{LinesSink, LinesSource};

/// A directory `in` with three files, one per partition.
struct Files;

impl SourceSystem for Files {
    type Kind = FixedKind;
    type Source = LinesSource;

    fn describe(&self) -> String {
        "LinesSource".into()
    }
    fn partitions(&self) -> usize {
        3
    }
    fn ending(&self) -> Ending {
        Ending::AtEof
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        std::fs::create_dir_all(case.dir().join("in"))?;
        for p in 0..3 {
            File::create(case.dir().join(format!("in/{p}.txt")))?;
        }
        Ok(())
    }
    fn append(&self, case: &Case, part: usize, records: &[u64]) -> Result<(), ConnectorError> {
        let mut file = OpenOptions::new()
            .append(true)
            .open(case.dir().join(format!("in/{part}.txt")))?;
        for r in records {
            writeln!(file, "{r}")?;
        }
        Ok(())
    }
    fn source(&self, case: &Case) -> Result<LinesSource, ConnectorError> {
        // Small batches: several epochs, so several positions to resume from.
        Ok(LinesSource::new(case.dir().join("in")).batch_size(2))
    }
    fn record(&self, line: &String) -> Option<u64> {
        line.parse().ok()
    }
    fn missing(&self, case: &Case) -> Option<Result<LinesSource, ConnectorError>> {
        Some(Ok(LinesSource::new(case.dir().join("no-such-dir"))))
    }
}

#[test]
fn the_source_conforms() {
    SourceKit::new(Files, "the_source_conforms").run().assert_passed();
}

/// A directory `out` of three files.
struct Out;

impl SinkSystem for Out {
    type Kind = FixedKind;
    type Item = (u64, String);
    type Sink = LinesSink;

    fn describe(&self) -> String {
        "LinesSink".into()
    }
    fn prepare(&self, _: &Case) -> Result<(), ConnectorError> {
        Ok(())
    }
    fn sink(&self, case: &Case) -> Result<LinesSink, ConnectorError> {
        Ok(LinesSink::new(case.dir().join("out"), 3))
    }
    fn item(&self, record: u64) -> (u64, String) {
        (record % 5, record.to_string())
    }
    fn read_back(&self, case: &Case) -> Result<Vec<u64>, ConnectorError> {
        let mut out = Vec::new();
        for p in 0..3 {
            let text =
                std::fs::read_to_string(case.dir().join(format!("out/part-{p}.txt"))).unwrap_or_default();
            for line in text.lines() {
                out.push(line.parse()?);
            }
        }
        Ok(out)
    }
    fn missing(&self, case: &Case) -> Option<Result<LinesSink, ConnectorError>> {
        // Its directory would be inside a regular file.
        std::fs::write(case.dir().join("a-file"), "").ok()?;
        Some(Ok(LinesSink::new(case.dir().join("a-file/out"), 3)))
    }
}

#[test]
fn the_sink_conforms() {
    SinkKit::new(Out, "the_sink_conforms").run().assert_passed();
}
