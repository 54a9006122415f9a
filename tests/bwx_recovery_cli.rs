//! The `bwx recovery` tool against a directory a real flow wrote.

use std::process::Command;
use std::time::Duration;

use bwx::prelude::*;
use bwx::recovery::SqliteRecovery;
use bwx::testing::{TestingSink, TestingSource};

fn bwx(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bwx"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn init_then_inspect_a_written_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let d = dir.to_str().unwrap();
    let (ok, out, _) = bwx(&["recovery", "init", d, "3"]);
    assert!(ok && out.contains("3 recovery partitions"), "{out}");

    let flow = Dataflow::new("sums");
    let items = vec![
        ("a".to_string(), 1u64),
        ("b".to_string(), 2),
        ("a".to_string(), 3),
    ];
    flow.input("inp", TestingSource::new(items))
        .stateful_map("sum", |s: Option<u64>, v: u64| {
            let t = s.unwrap_or(0) + v;
            (Some(t), t)
        })
        .output("out", TestingSink::new());
    let hook = SqliteRecovery::open(&dir, Duration::ZERO, "sums").unwrap();
    bwx::run_workers(&flow, 2, RunConfig::default().recovery(hook)).unwrap();

    let (ok, out, err) = bwx(&["recovery", "inspect", d, "--json"]);
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["flow_id"], "sums");
    assert_eq!(json["executions"][0]["worker_count"], 2);
    let steps = json["steps"].as_array().unwrap();
    let sum = steps.iter().find(|s| s["step"] == "sums.sum").unwrap();
    assert_eq!(sum["keys"], 2);

    let (ok, out, _) = bwx(&["recovery", "inspect", d]);
    assert!(
        ok && out.contains("sums.sum: 2 keys") && out.contains("2 workers"),
        "{out}"
    );

    let (ok, out, err) = bwx(&["recovery", "inspect", d, "--step", "sums.sum", "--key", "a"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "sums.sum \"a\": 4");

    let (ok, _, err) = bwx(&["recovery", "inspect", d, "--step", "sums.sum", "--key", "zz"]);
    assert!(!ok && err.contains("no stored state for key zz"), "{err}");
}
