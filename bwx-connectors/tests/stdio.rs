//! Standard input and output of a real process: this test binary runs itself as the child.

use std::io::Write;
use std::process::{Command, Stdio};

use bwx_connectors::stdio::{StdInSource, StdOutSink};
use bwx_runtime::prelude::*;

const CHILD: &str = "BWX_STDIO_TEST_CHILD";

/// In the child: stdin → uppercase → stdout on two workers. Output lines carry a prefix so
/// the parent can tell them from the test harness's own lines.
fn child_flow() {
    let flow = Dataflow::new("echo");
    flow.input("inp", StdInSource::new().batch_size(2))
        .map("upper", |line: String| format!("out: {}", line.to_uppercase()))
        .output("out", StdOutSink::new());
    bwx_runtime::run_workers(&flow, 2, RunConfig::default()).unwrap();
}

#[test]
fn stdin_lines_come_out_on_stdout_in_order() {
    if std::env::var_os(CHILD).is_some() {
        child_flow();
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stdin_lines_come_out_on_stdout_in_order",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = (0..100).map(|i| format!("line {i}\n")).collect();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    stdin.write_all(b"no newline at the end").unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The harness prints "test NAME ... " before the first line, without a newline.
    let got: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once("out: ").map(|(_, rest)| rest))
        .collect();
    let mut want: Vec<String> = (0..100).map(|i| format!("LINE {i}")).collect();
    want.push("NO NEWLINE AT THE END".into());
    // One worker reads and the map is pipelined, so the printed order is the input order.
    assert_eq!(got, want);
}
