//! The `custom_source` example (a source written with `#[bwx::source]`): in-process, and
//! as its binary with recovery, SIGKILLed mid-run and resumed, with every reading in the
//! output file exactly once and every running total right.

#[allow(dead_code)]
#[path = "../examples/custom_source.rs"]
mod custom_source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bwx::prelude::RunConfig;
use custom_source::{Meters, build_flow, watts};

/// The lines a complete run writes, per meter, in reading order.
fn expected(meters: u32, readings: u64) -> BTreeMap<u32, Vec<String>> {
    (0..meters)
        .map(|m| {
            let mut total = 0;
            let lines = (0..readings)
                .map(|seq| {
                    total += watts(m, seq);
                    format!("{m} {seq} {} {total}", watts(m, seq))
                })
                .collect();
            (m, lines)
        })
        .collect()
}

/// The lines of `path` grouped by meter, ordered by reading number (a duplicate stays).
fn by_meter(path: &Path) -> BTreeMap<u32, Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.split(' ');
        let meter = fields.next().unwrap().parse().unwrap();
        let seq = fields.next().unwrap().parse().unwrap();
        out.entry(meter).or_default().push((seq, line.to_string()));
    }
    out.into_iter()
        .map(|(meter, mut lines)| {
            lines.sort();
            (meter, lines.into_iter().map(|(_, line)| line).collect())
        })
        .collect()
}

#[test]
fn the_example_flow_writes_every_reading_with_its_running_total() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let meters = Meters {
        meters: 3,
        readings: 20,
        every: Duration::ZERO,
    };
    let flow = build_flow(meters, out.clone());
    bwx::run_workers(&flow, 2, RunConfig::default()).unwrap();
    assert_eq!(by_meter(&out), expected(3, 20));
}

/// The example's binary, brought up to date (as `tests/examples.rs` does for wordcount).
fn example_binary() -> PathBuf {
    let built = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--workspace", "--example", "custom_source"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(built.success(), "cannot build the custom_source example");
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    profile_dir
        .join("examples")
        .join(format!("custom_source{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn killed_mid_run_and_resumed_it_writes_every_reading_exactly_once() {
    const METERS: u32 = 3;
    const READINGS: u64 = 300;
    let binary = example_binary();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = dir.path().join("meters.txt");
    let init = Command::new(&binary)
        .args(["recovery", "init"])
        .arg(&state)
        .arg("1")
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));

    let run = |workers: &str| {
        let mut command = Command::new(&binary);
        command
            .args(["run", "-w", workers, "-s", "50ms", "-b", "1s", "-r"])
            .arg(&state)
            .env("BWX_OUTPUT", &out)
            .env("BWX_METERS", METERS.to_string())
            .env("BWX_READINGS", READINGS.to_string())
            .env("BWX_EVERY_MS", "10");
        command
    };

    // About 3 s of readings; kill the process once a quarter of them are in the file.
    let mut child = run("1").spawn().unwrap();
    let started = Instant::now();
    let written = |path: &Path| std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
    while written(&out) < (METERS as usize * READINGS as usize) / 4 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first run wrote too little"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the first run ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: no chance to flush or snapshot.
    child.wait().unwrap();
    let at_kill = written(&out);
    assert!(
        at_kill < METERS as usize * READINGS as usize,
        "killed after the end ({at_kill} lines)"
    );

    // The meters' stored positions (their `#[state]` field, as the bare reading number):
    // the resumed run starts mid-way, not from the beginning.
    for meter in 0..METERS {
        let inspect = Command::new(env!("CARGO_BIN_EXE_bwx"))
            .args(["recovery", "inspect"])
            .arg(&state)
            .args(["--step", "meters.readings", "--key", &format!("meter-{meter}")])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&inspect.stdout);
        assert!(
            inspect.status.success(),
            "{}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        let next: u64 = stdout.rsplit(": ").next().unwrap().trim().parse().unwrap();
        assert!(0 < next && next < READINGS, "meter-{meter} stored at {next}");
    }

    // Resume on two workers: the file is truncated to the last snapshot, the meters
    // continue from their stored reading numbers, the totals from their stored state.
    let resumed = run("2").output().unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(by_meter(&out), expected(METERS, READINGS));
}
