//! The flow binary's own tools: visualize, recovery init and inspect, --version.

use crate::harness::{flow, run};

#[test]
fn visualize_prints_mermaid_dot_and_json() {
    let mermaid = run("quick", &["visualize"], &[]);
    assert!(mermaid.status.success(), "{}", mermaid.stderr);
    assert_eq!(mermaid.stdout, flow("quick").to_mermaid());
    assert!(
        mermaid
            .stdout
            .starts_with("flowchart TD\nsubgraph \"ops (Dataflow)\"\n")
    );
    assert!(mermaid.stdout.contains("ops.keep -- \"down → up\" --> ops.key\n"));

    let dot = run("quick", &["visualize", "--format", "dot"], &[]);
    assert_eq!(dot.stdout, flow("quick").to_dot());
    let json = run("quick", &["visualize", "-o", "json"], &[]);
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(parsed["typ"], "RenderedDataflow");
    assert_eq!(parsed["substeps"].as_array().unwrap().len(), 7);

    let bad = run("quick", &["visualize", "--format", "svg"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(bad.stderr.contains("invalid value 'svg'"), "{}", bad.stderr);
}

#[test]
fn version_names_the_flow_binary_and_bwx() {
    let version = run("quick", &["--version"], &[]);
    assert!(version.status.success());
    assert_eq!(
        version.stdout.trim(),
        format!("ops-flow 7.8.9 (bwx {})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn recovery_init_and_inspect_work_from_the_flow_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let dir_arg = dir.to_str().unwrap();
    assert!(
        run("quick", &["recovery", "init", dir_arg, "2"], &[])
            .status
            .success()
    );
    let empty = run("quick", &["recovery", "inspect", dir_arg], &[]);
    assert!(empty.status.success(), "{}", empty.stderr);
    assert!(empty.stdout.contains("2 partitions"), "{}", empty.stdout);

    let done = run("quick", &["run", "-r", dir_arg, "-s", "100ms", "-b", "1m"], &[]);
    assert!(done.status.success(), "{}", done.stderr);
    let inspected = run("quick", &["recovery", "inspect", dir_arg, "--json"], &[]);
    assert!(inspected.status.success(), "{}", inspected.stderr);
    let found: serde_json::Value = serde_json::from_str(&inspected.stdout).unwrap();
    assert_eq!(found["flow_id"], "ops");
    assert_eq!(found["executions"].as_array().unwrap().len(), 1);
    let steps: Vec<&str> = found["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert!(steps.contains(&"ops.sum"), "{steps:?}");

    // One key's state: the sum of the kept doubles with that remainder.
    let expected: u64 = (0..crate::harness::ITEMS)
        .map(|x| x * 2)
        .filter(|x| x % 3 != 0 && x % 7 == 3)
        .sum();
    let key = run(
        "quick",
        &["recovery", "inspect", dir_arg, "--step", "ops.sum", "--key", "3"],
        &[],
    );
    assert!(key.status.success(), "{}", key.stderr);
    assert_eq!(key.stdout.trim(), format!("ops.sum \"3\": {expected}"));

    let missing = run(
        "quick",
        &["recovery", "inspect", tmp.path().join("nope").to_str().unwrap()],
        &[],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stderr.starts_with("error: "), "{}", missing.stderr);
}
