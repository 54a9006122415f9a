//! Every example's flow, run in-process and checked; and the wordcount binary end to end.
//!
//! The examples are compiled in here as modules, so the test runs the very `build_flow`
//! that `cargo run --example NAME` runs, with a `TestingSink` in place of stdout.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bwx::prelude::*;
use bwx::testing::TestingSink;

#[allow(dead_code)]
#[path = "../examples/wordcount.rs"]
mod wordcount;

#[allow(dead_code)]
#[path = "../examples/basic.rs"]
mod basic;

#[allow(dead_code)]
#[path = "../examples/running_mean.rs"]
mod running_mean;

#[allow(dead_code)]
#[path = "../examples/join.rs"]
mod join;

#[allow(dead_code)]
#[path = "../examples/custom_logic.rs"]
mod custom_logic;

fn bundled(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/data")
        .join(name)
}

/// Runs `flow` on `workers` threads and returns its output lines, sorted.
fn sorted_output(flow: &Dataflow, out: &TestingSink<String>, workers: usize) -> Vec<String> {
    bwx::run_workers(flow, workers, RunConfig::default()).unwrap();
    let mut lines = out.take();
    lines.sort();
    lines
}

/// Word counts computed without bwx: lowercase runs of letters.
fn count_words(text: &str) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    let mut word = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_alphabetic() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            *counts.entry(std::mem::take(&mut word)).or_insert(0) += 1;
        }
    }
    counts
}

/// `word count` lines → map, failing on a repeated word.
fn parse_counts(lines: &[String]) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for line in lines {
        let (word, n) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let previous = counts.insert(word.to_string(), n.parse::<u64>().unwrap());
        assert!(previous.is_none(), "{word} printed twice");
    }
    counts
}

#[test]
fn wordcount_matches_an_independent_count_on_one_and_three_workers() {
    let path = bundled("wordcount.txt");
    let want = count_words(&std::fs::read_to_string(&path).unwrap());
    assert!(
        want.len() > 200 && want["the"] > 50,
        "the bundled text is a real text"
    );
    for workers in [1, 3] {
        let out = TestingSink::new();
        let flow = wordcount::build_flow(&path, out.clone());
        let got = parse_counts(&sorted_output(&flow, &out, workers));
        assert_eq!(got, want, "{workers} workers");
    }
}

/// The wordcount example's binary, brought up to date. `cargo test --workspace` has built it
/// already, and building it with the same package selection is then a no-op; running
/// `cargo run` instead would rebuild dependencies with the features of `bwx` alone.
fn wordcount_binary() -> std::path::PathBuf {
    let built = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--workspace", "--example", "wordcount"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(built.success(), "cannot build the wordcount example");
    // Test binaries live in `<target>/<profile>/deps`, examples in `<target>/<profile>/examples`.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    profile_dir
        .join("examples")
        .join(format!("wordcount{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn wordcount_binary_prints_the_counts_of_bwx_input() {
    let binary = wordcount_binary();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "To be, or not to be:\nthat is the question.\nBE").unwrap();
    // Two worker threads, then two processes of two workers: the same counts.
    for args in [&["run", "-w", "2"][..], &["run", "--processes", "2", "-w", "2"]] {
        let output = Command::new(&binary)
            .args(args)
            .env("BWX_INPUT", &input)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stderr}");
        let mut lines: Vec<String> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "be 3",
                "is 1",
                "not 1",
                "or 1",
                "question 1",
                "that 1",
                "the 1",
                "to 2"
            ],
            "{args:?}"
        );
    }

    // Without BWX_INPUT it reads the bundled text.
    let bundled_run = Command::new(&binary)
        .arg("run")
        .env_remove("BWX_INPUT")
        .output()
        .unwrap();
    assert!(bundled_run.status.success());
    let want = count_words(&std::fs::read_to_string(bundled("wordcount.txt")).unwrap());
    let lines: Vec<String> = String::from_utf8(bundled_run.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(parse_counts(&lines), want);

    // A missing input fails with exit code 1 and names the step and the file.
    let missing = dir.path().join("missing.txt");
    let failed = Command::new(&binary)
        .arg("run")
        .env("BWX_INPUT", &missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("wordcount.lines") && stderr.contains(&missing.display().to_string()),
        "{stderr}"
    );
}

#[test]
fn basic_drops_bad_lines_and_splits_alerts_from_the_rest() {
    let out = TestingSink::new();
    let flow = basic::build_flow(out.clone());
    let want = [
        "ALERT attic: 41.0 °C (105.8 °F)",
        "ALERT garage: 35.2 °C (95.4 °F)",
        "ok cellar: 12.2 °C",
        "ok garage: 29.9 °C",
        "ok kitchen: 21.5 °C",
    ];
    assert_eq!(sorted_output(&flow, &out, 1), want);
    assert_eq!(sorted_output(&flow, &out, 2), want);
}

#[test]
fn running_mean_emits_each_sensors_mean_so_far_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("r.csv");
    std::fs::write(&input, "sensor,celsius\na,1\nb,10\na,2\na,6\nb,20\n").unwrap();
    for workers in [1, 2] {
        let out = TestingSink::new();
        bwx::run_workers(
            &running_mean::build_flow(&input, out.clone()),
            workers,
            RunConfig::default(),
        )
        .unwrap();
        let lines = out.take();
        let of = |sensor: &str| -> Vec<String> {
            lines.iter().filter(|l| l.starts_with(sensor)).cloned().collect()
        };
        // Within a key the order is the input order.
        assert_eq!(of("a "), ["a 1.00", "a 1.50", "a 3.00"], "{workers} workers");
        assert_eq!(of("b "), ["b 10.00", "b 15.00"], "{workers} workers");
        assert_eq!(lines.len(), 5);
    }
}

#[test]
fn running_mean_reads_the_bundled_readings() {
    let out = TestingSink::new();
    let flow = running_mean::build_flow(&bundled("readings.csv"), out.clone());
    let lines = sorted_output(&flow, &out, 2);
    let rows = std::fs::read_to_string(bundled("readings.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert_eq!(lines.len(), rows);
    // cellar: 11.2, 11.0, 10.8 → means 11.20, 11.10, 11.00.
    let cellar: Vec<&String> = lines.iter().filter(|l| l.starts_with("cellar ")).collect();
    assert_eq!(cellar, ["cellar 11.00", "cellar 11.10", "cellar 11.20"]);
}

#[test]
fn join_emits_orders_with_both_a_payment_and_a_shipment() {
    let out = TestingSink::new();
    let flow = join::build_flow(out.clone());
    let want = [
        "order 1001: paid 25.00 EUR, shipped to Ghent",
        "order 1002: paid 7.50 EUR, shipped to Lyon",
    ];
    assert_eq!(sorted_output(&flow, &out, 1), want);
    assert_eq!(sorted_output(&flow, &out, 3), want);
}

#[test]
fn custom_logic_ends_sessions_on_logout_timeout_and_eof() {
    // Bob's two actions come well within a second of each other, then a 3 s pause times
    // his session out.
    let out = TestingSink::new();
    let flow = custom_logic::build_flow(Duration::from_secs(1), out.clone());
    let want = [
        "alice logged out after 3 actions",
        "bob still active after 1 actions",
        "bob timed out after 2 actions",
        "carol still active after 1 actions",
    ];
    assert_eq!(sorted_output(&flow, &out, 2), want);
}
