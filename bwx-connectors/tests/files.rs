//! The file connectors in whole flows: across workers, and resumed from stored positions.

use std::path::Path;
use std::time::Duration;

use bwx_connectors::files::{CsvPosition, CsvSource, DirSink, DirSource, FileSink, FileSource};
use bwx_runtime::prelude::*;
use bwx_runtime::recovery::codec;
use bwx_runtime::testing::{MemoryStore, TestingEvent, TestingSink, TestingSource};

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn copy_upper(input: &Path, output: &Path, workers: usize) {
    let flow = Dataflow::new("copy");
    flow.input("inp", FileSource::new(input).batch_size(7))
        .map("upper", |line: String| (line.len(), line.to_uppercase()))
        .output("out", FileSink::new(output));
    bwx_runtime::run_workers(&flow, workers, RunConfig::default()).unwrap();
}

#[test]
fn file_to_file_gives_the_same_lines_on_one_and_three_workers() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let text: String = (0..500).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&input, format!("{text}tail without newline")).unwrap();
    let (one, three) = (dir.path().join("one.txt"), dir.path().join("three.txt"));
    copy_upper(&input, &one, 1);
    copy_upper(&input, &three, 3);
    let mut want: Vec<String> = (0..500).map(|i| format!("LINE {i}")).collect();
    want.push("TAIL WITHOUT NEWLINE".into());
    // One partition is read by one worker and written by one worker: order is kept.
    assert_eq!(lines_of(&one), want);
    assert_eq!(lines_of(&three), want);
}

#[test]
fn file_source_resumes_from_a_stored_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "skip me\nand me\nfirst kept\nlast kept\n").unwrap();
    let store = MemoryStore::new(2);
    let part = std::fs::canonicalize(&input)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    store.put_position("resume.inp", &part, codec::encode(&15u64).unwrap());
    let flow = Dataflow::new("resume");
    let out = TestingSink::new();
    flow.input("inp", FileSource::new(&input))
        .output("out", out.clone());
    bwx_runtime::run_main_with(&flow, RunConfig::default().recovery(store.resume())).unwrap();
    assert_eq!(out.take(), vec!["first kept", "last kept"]);
}

#[test]
fn a_bad_line_stops_the_flow_naming_step_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.txt");
    std::fs::write(&input, b"good\nbad \xfe byte\n").unwrap();
    let flow = Dataflow::new("bad");
    flow.input("inp", FileSource::new(&input))
        .output("out", TestingSink::new());
    let err = bwx_runtime::run_workers(&flow, 2, RunConfig::default())
        .unwrap_err()
        .report();
    let file = std::fs::canonicalize(&input).unwrap();
    let file = file.display();
    assert!(
        err.starts_with("step 'bad.inp' on worker ")
            && err.ends_with(&format!(
                "partition '{file}': cannot read the next batch: {file}: invalid UTF-8 at byte offset 9"
            )),
        "{err}"
    );
}

#[test]
fn a_line_over_the_maximum_stops_the_flow_naming_step_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.txt");
    std::fs::write(&input, format!("ok\n{}\n", "x".repeat(100))).unwrap();
    let flow = Dataflow::new("long");
    flow.input("inp", FileSource::new(&input).max_line_length(64))
        .output("out", TestingSink::new());
    let err = bwx_runtime::run_main(&flow).unwrap_err().report();
    let file = std::fs::canonicalize(&input).unwrap();
    let file = file.display();
    assert!(
        err.starts_with("step 'long.inp' on worker 0")
            && err.ends_with(&format!(
                "partition '{file}': cannot read the next batch: {file}: the line at byte offset 3 is longer than the maximum of 64 bytes; raise it with `max_line_length`"
            )),
        "{err}"
    );
}

/// Items 0..40 with pauses so that epochs close on the way, and an abort after item 29 the
/// first time through.
fn numbers_with_abort() -> TestingSource<u32> {
    let mut events = Vec::new();
    for i in 0..40 {
        events.push(TestingEvent::Item(i));
        if i % 10 == 9 {
            events.push(TestingEvent::Pause(Duration::from_millis(60)));
        }
        if i == 29 {
            events.push(TestingEvent::Abort);
        }
    }
    TestingSource::from_events(events)
}

#[test]
fn file_sink_is_exactly_once_across_an_abort_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.txt");
    let store = MemoryStore::new(2);
    let flow = Dataflow::new("once");
    flow.input("inp", numbers_with_abort())
        .key_on("key", |_| ())
        .output("out", FileSink::new(&output));
    let config = RunConfig::default().epoch_interval(Duration::from_millis(15));

    bwx_runtime::run_main_with(&flow, config.clone().recovery(store.clone())).unwrap();
    let written = lines_of(&output);
    assert!(
        written.len() >= 30 && written.len() < 40,
        "aborted after item 29: {written:?}"
    );
    // Lines written after the last snapshot, as if the process died before the epoch closed.
    std::fs::write(
        &output,
        format!("{}not snapshotted\n", std::fs::read_to_string(&output).unwrap()),
    )
    .unwrap();

    // The same flow object: its TestingSource aborts only once.
    bwx_runtime::run_main_with(&flow, config.recovery(store.resume())).unwrap();
    let want: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    assert_eq!(lines_of(&output), want);
}

#[test]
fn dir_source_reads_every_file_once_and_dir_sink_routes_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("nested")).unwrap();
    let mut want = Vec::new();
    for f in 0..5 {
        let name = if f == 4 {
            "nested/f4.log".to_string()
        } else {
            format!("f{f}.log")
        };
        let body: String = (0..20).map(|i| format!("{f} {i}\n")).collect();
        std::fs::write(input.join(name), body).unwrap();
        want.extend((0..20).map(|i| format!("{f} {i}")));
    }
    std::fs::write(input.join("ignored.txt"), "not a log\n").unwrap();
    want.sort();

    for workers in [1, 3] {
        let out_dir = dir.path().join(format!("out{workers}"));
        let flow = Dataflow::new("logs");
        flow.input("inp", DirSource::new(&input, "**/*.log").unwrap().batch_size(3))
            .key_on("by_file", |line: &String| {
                line.split(' ').next().unwrap_or("").parse::<u64>().unwrap_or(0)
            })
            .output("out", DirSink::new(&out_dir, 3).assign_file(|k: &u64| *k));
        bwx_runtime::run_workers(&flow, workers, RunConfig::default()).unwrap();
        let mut got = Vec::new();
        for file in 0..3u64 {
            let lines = lines_of(&out_dir.join(format!("part_{file}")));
            assert!(
                lines
                    .iter()
                    .all(|l| l.split(' ').next().unwrap().parse::<u64>().unwrap() % 3 == file)
            );
            got.extend(lines);
        }
        got.sort();
        assert_eq!(got, want, "{workers} workers");
    }
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
struct Reading {
    sensor: String,
    value: f64,
}

#[test]
fn csv_rows_sum_per_key_on_two_workers_and_resume_mid_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("r.csv");
    std::fs::write(&input, "sensor,value\na,1.5\nb,2\na,3\nb,-1\n").unwrap();
    let run = |store: Option<std::sync::Arc<MemoryStore>>| {
        let flow = Dataflow::new("csv");
        let out = TestingSink::new();
        flow.input("inp", CsvSource::<Reading>::new(&input).batch_size(1))
            .map("kv", |r: Reading| (r.sensor, r.value))
            .reduce_final("sum", |a, b| a + b)
            .output("out", out.clone());
        let mut config = RunConfig::default();
        if let Some(store) = store {
            config = config.recovery(store);
        }
        bwx_runtime::run_workers(&flow, 2, config).unwrap();
        let mut got = out.take();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        got
    };
    assert_eq!(run(None), vec![("a".to_string(), 4.5), ("b".to_string(), 1.0)]);

    // Resume after the first two records ("sensor,value\na,1.5\nb,2\n" is 23 bytes).
    let store = MemoryStore::new(2);
    let part = std::fs::canonicalize(&input)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let position = CsvPosition { byte: 23, line: 4 };
    store.put_position("csv.inp", &part, codec::encode(&position).unwrap());
    assert_eq!(
        run(Some(store.resume())),
        vec![("a".to_string(), 3.0), ("b".to_string(), -1.0)]
    );
}

#[test]
fn dir_source_resumes_each_file_from_its_own_offset() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), "a1\na2\n").unwrap();
    std::fs::write(dir.path().join("b.log"), "b1\nb2\nb3\n").unwrap();
    let store = MemoryStore::new(2);
    // a.log was read to its end, b.log up to "b2".
    store.put_position("dirs.inp", "a.log", codec::encode(&6u64).unwrap());
    store.put_position("dirs.inp", "b.log", codec::encode(&3u64).unwrap());
    let flow = Dataflow::new("dirs");
    let out = TestingSink::new();
    flow.input("inp", DirSource::new(dir.path(), "*.log").unwrap())
        .output("out", out.clone());
    bwx_runtime::run_workers(&flow, 2, RunConfig::default().recovery(store.resume())).unwrap();
    let mut got = out.take();
    got.sort();
    assert_eq!(got, vec!["b2", "b3"]);
}
