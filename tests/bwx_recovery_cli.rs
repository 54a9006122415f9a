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

#[test]
fn store_ids_are_made_read_back_and_shared_by_the_hosts_partitions() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, id, err) = bwx(&["recovery", "store-id"]);
    let id = id.trim().to_string();
    assert!(
        ok && id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id} {err}"
    );
    let (_, other, _) = bwx(&["recovery", "store-id"]);
    assert_ne!(other.trim(), id);

    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let (ok, out, err) = bwx(&["recovery", "init", a, "3", "--parts", "0-1", "--store-id", &id]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "recovery partitions part-0, part-1 of 3 in {a}, store id {id}"
        )),
        "{out}"
    );
    // A host that joins reads the id from one that has partitions.
    let (ok, read, err) = bwx(&["recovery", "store-id", a]);
    assert!(ok && read.trim() == id, "{read} {err}");
    let (ok, _, err) = bwx(&[
        "recovery",
        "init",
        b,
        "3",
        "--parts",
        "2",
        "--store-id",
        read.trim(),
    ]);
    assert!(ok, "{err}");
    assert!(std::path::Path::new(b).join("part-2.sqlite3").exists());

    let foreign = format!("belongs to store '{id}', not to store 'another'");
    for (args, says) in [
        (vec!["recovery", "init", b, "3", "--parts", "2"], "--store-id"),
        (
            vec!["recovery", "init", b, "3", "--parts", "1,1", "--store-id", "x"],
            "a partition listed twice: '1'",
        ),
        (
            vec![
                "recovery",
                "init",
                b,
                "3",
                "--parts",
                "2",
                "--store-id",
                "another",
            ],
            foreign.as_str(),
        ),
        (
            vec!["recovery", "init", b, "3", "--parts", "5", "--store-id", &id],
            "partition 5 is not in a set of 3",
        ),
        (
            vec!["recovery", "store-id", tmp.path().to_str().unwrap()],
            "no recovery partitions in",
        ),
    ] {
        let (ok, _, err) = bwx(&args);
        assert!(!ok && err.contains(says), "{args:?}: {err}");
    }
}
