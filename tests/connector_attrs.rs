//! A source and a sink written with `#[source]` / `#[sink]`: they run in a flow, and
//! their generated resume state round-trips through serde and resumes where it stopped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bwx::inputs::ConnectorError;
use bwx::prelude::*;

/// Lines of named in-memory "files", one partition per file.
struct MemFiles {
    files: BTreeMap<String, Vec<String>>,
}

#[bwx::source]
struct MemFilePart {
    #[state]
    line: usize,
    lines: Vec<String>,
}

#[bwx::source]
impl MemFilePart {
    fn list_parts(source: &MemFiles) -> Vec<String> {
        source.files.keys().cloned().collect()
    }

    fn open(source: &MemFiles, part: &str) -> Result<Self, ConnectorError> {
        let lines = source
            .files
            .get(part)
            .cloned()
            .ok_or_else(|| format!("no file named {part:?}"))?;
        Ok(MemFilePart { line: 0, lines })
    }

    fn next_batch(&mut self, batch: &mut Vec<String>) -> Result<BatchStatus, ConnectorError> {
        match self.lines.get(self.line) {
            Some(line) => {
                batch.push(line.clone());
                self.line += 1;
                Ok(BatchStatus::Active)
            }
            None => Ok(BatchStatus::Eof),
        }
    }
}

/// Collects values per partition into shared memory; remembers how many it wrote.
#[derive(Clone, Default)]
struct MemSink {
    written: Arc<Mutex<BTreeMap<String, Vec<u64>>>>,
}

#[bwx::sink]
struct MemSinkPart {
    #[state]
    count: u64,
    part: String,
    sink: MemSink,
}

#[bwx::sink]
impl MemSinkPart {
    fn list_parts(_sink: &MemSink) -> Vec<String> {
        vec!["even".to_string(), "odd".to_string()]
    }

    fn part_fn(_sink: &MemSink, key: &u64) -> u64 {
        key % 2
    }

    fn open(sink: &MemSink, part: &str) -> Result<Self, ConnectorError> {
        Ok(MemSinkPart {
            count: 0,
            part: part.to_string(),
            sink: sink.clone(),
        })
    }

    fn write_batch(&mut self, batch: &mut Vec<u64>) -> Result<(), ConnectorError> {
        self.count += batch.len() as u64;
        let mut written = self.sink.written.lock().map_err(|_| "sink lock poisoned")?;
        written.entry(self.part.clone()).or_default().append(batch);
        Ok(())
    }
}

fn files() -> MemFiles {
    let mut files = BTreeMap::new();
    files.insert(
        "a.txt".to_string(),
        vec!["1".to_string(), "2".to_string(), "3".to_string()],
    );
    files.insert("b.txt".to_string(), vec!["10".to_string(), "11".to_string()]);
    MemFiles { files }
}

#[test]
fn attribute_connectors_run_in_a_flow() {
    let sink = MemSink::default();
    let flow = bwx::dataflow!(attrs {
        lines  = input(files());
        nums   = lines.map(|l: String| l.parse::<u64>().unwrap_or(0));
        keyed  = nums.key_on(|n| *n).map_value(|n| n * 100);
        out    = keyed.output(sink.clone());
    });
    bwx::run_workers(&flow, 2, RunConfig::default()).unwrap();
    let written = sink.written.lock().unwrap().clone();
    let mut even = written.get("even").cloned().unwrap_or_default();
    let mut odd = written.get("odd").cloned().unwrap_or_default();
    even.sort();
    odd.sort();
    assert_eq!(even, vec![200, 1000]);
    assert_eq!(odd, vec![100, 300, 1100]);
}

#[test]
fn source_state_snapshots_and_resumes() {
    let source = files();
    let flow = Dataflow::new("f");
    let _ = flow.input("inp", files());
    let step = flow.steps()[0].id.clone();
    assert_eq!(source.list_parts().unwrap(), vec!["a.txt", "b.txt"]);

    let mut part = source.build_part(&step, "a.txt", None).unwrap();
    let mut batch = Vec::new();
    assert_eq!(part.next_batch(&mut batch).unwrap(), BatchStatus::Active);
    let state: MemFilePartState = StatefulSourcePartition::snapshot(&part);
    assert_eq!(state.line, 1);

    // The state goes through the recovery codec and resumes on the next line.
    let bytes = bwx::recovery::codec::encode(&state).unwrap();
    let state: MemFilePartState = bwx::recovery::codec::decode(&bytes).unwrap();
    let mut resumed = source.build_part(&step, "a.txt", Some(state)).unwrap();
    let mut batch = Vec::new();
    resumed.next_batch(&mut batch).unwrap();
    assert_eq!(batch, vec!["2".to_string()]);
    assert!(source.build_part(&step, "missing.txt", None).is_err());
}

#[test]
fn sink_routes_by_part_fn_and_counts() {
    let sink = MemSink::default();
    assert_eq!(FixedPartitionedSink::part_fn(&sink, &7), 1);
    let flow = Dataflow::new("f");
    let step = {
        flow.input("inp", files());
        flow.steps()[0].id.clone()
    };
    let mut part = sink
        .build_part(&step, "odd", Some(MemSinkPartState { count: 5 }))
        .unwrap();
    part.write_batch(&mut vec![1, 3]).unwrap();
    assert_eq!(StatefulSinkPartition::snapshot(&part).count, 7);
    assert_eq!(sink.written.lock().unwrap()["odd"], vec![1, 3]);
}

/// A single-partition polling source: a counter polled every millisecond.
#[bwx::source]
struct Ticker {
    #[state]
    ticks: u32,
    stop_at: u32,
}

#[bwx::source]
impl Ticker {
    fn next_item(&mut self) -> Result<bwx::inputs::Polled<u32>, ConnectorError> {
        use bwx::inputs::Polled;
        if self.ticks == self.stop_at {
            return Ok(Polled::Eof);
        }
        self.ticks += 1;
        Ok(Polled::Item(self.ticks))
    }
}

#[test]
fn polling_source_from_the_attribute() {
    use std::time::Duration;

    use bwx::inputs::SimplePollingSource;
    use bwx::testing::TestingSink;

    let out = TestingSink::new();
    let poll = SimplePollingSource::new(|| Ticker { ticks: 0, stop_at: 3 }, Duration::from_millis(1));
    let flow = bwx::dataflow!(ticks {
        tick = input(poll);
        out  = tick.output(out.clone());
    });
    bwx::run_main(&flow).unwrap();
    assert_eq!(out.take(), vec![1, 2, 3]);

    // Resuming continues from the stored tick count.
    let mut t = Ticker { ticks: 0, stop_at: 5 };
    bwx::inputs::SimplePoller::resume(&mut t, TickerState { ticks: 4 });
    assert_eq!(bwx::inputs::SimplePoller::snapshot(&t).ticks, 4);
}

/// A partition whose state gained a field: `#[serde(default)]` on it moves to the state
/// struct, so states stored before the field existed still load.
#[bwx::source]
#[allow(dead_code)]
struct EvolvedPart {
    /// Lines read.
    #[state]
    lines: u64,
    /// Bytes read; added later.
    #[state]
    #[serde(default)]
    bytes: u64,
}

#[test]
fn serde_attributes_of_state_fields_apply_to_the_stored_state() {
    #[derive(serde::Serialize)]
    struct Before {
        lines: u64,
    }
    let stored = bwx::recovery::codec::encode(&Before { lines: 7 }).unwrap();
    let state: EvolvedPartState = bwx::recovery::codec::decode(&stored).unwrap();
    assert_eq!((state.lines, state.bytes), (7, 0));
}
