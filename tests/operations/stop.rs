//! Stopping says so: the stop line, the exit codes, resuming.

use std::time::Duration;

use crate::harness::{Flow, run};

/// Starts the slow flow and waits until it has written something.
fn started(args: &[&str]) -> Flow {
    let mut flow = Flow::start("slow", args, &[("RUST_LOG", "info")]);
    flow.wait_for_stderr("starting flow 'ops'", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(700));
    flow
}

/// The last line on stderr.
fn last_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or_default()
}

#[test]
fn sigterm_stops_with_143_and_says_at_which_epoch() {
    let flow = started(&["run", "-s", "100ms"]);
    flow.signal(libc::SIGTERM);
    let done = flow.finish(Duration::from_secs(20));
    assert_eq!(done.status.code(), Some(143), "{}", done.stderr);
    let line = last_line(&done.stderr);
    assert!(
        line.starts_with("stopped: flow 'ops' stopped at epoch "),
        "{line}"
    );
    assert!(
        line.ends_with(
            "before the end of its input (SIGTERM); it has no recovery directory (-r), so \
             running it again starts from the beginning"
        ),
        "{line}"
    );
    let epoch: u64 = line["stopped: flow 'ops' stopped at epoch ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(epoch >= 3, "{line}");
}

#[test]
fn sigint_with_recovery_exits_130_and_the_same_command_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let dir_arg = dir.to_str().unwrap();
    assert!(
        run("quick", &["recovery", "init", dir_arg, "1"], &[])
            .status
            .success()
    );
    let args = ["run", "-r", dir_arg, "-s", "100ms", "-b", "1m"];
    let flow = started(&args);
    flow.signal(libc::SIGINT);
    let stopped = flow.finish(Duration::from_secs(20));
    assert_eq!(stopped.status.code(), Some(130), "{}", stopped.stderr);
    let line = last_line(&stopped.stderr);
    assert!(line.contains("before the end of its input (SIGINT)"), "{line}");
    assert!(
        line.contains("; its state is saved through epoch ")
            && line.ends_with(&format!(
                "in {dir_arg}: run the same command to resume from there"
            )),
        "{line}"
    );

    let resumed = run("slow", &args, &[]);
    assert!(resumed.status.success(), "{}", resumed.stderr);
    assert_eq!(resumed.stderr, "");
    // Every key's last sum, over both runs, is the sum of all its kept items.
    let mut last = std::collections::BTreeMap::new();
    for line in stopped.stdout.lines().chain(resumed.stdout.lines()) {
        if let Some((k, s)) = line.strip_prefix("out: ").and_then(|l| l.split_once(' ')) {
            last.insert(k.to_string(), s.parse::<u64>().unwrap());
        }
    }
    for (key, sum) in &last {
        let expected: u64 = (0..crate::harness::ITEMS)
            .map(|x| x * 2)
            .filter(|x| x % 3 != 0 && (x % 7).to_string() == *key)
            .sum();
        assert_eq!(*sum, expected, "key {key}");
    }
    assert_eq!(last.len(), 7);
}

#[test]
fn a_stopped_local_cluster_prints_one_line() {
    // The supervisor's exit code names the signal it got, as a single process's does.
    for (signal, code, name) in [(libc::SIGTERM, 143, "SIGTERM"), (libc::SIGINT, 130, "SIGINT")] {
        let flow = started(&["run", "--processes", "2", "-s", "100ms"]);
        flow.signal(signal);
        let done = flow.finish(Duration::from_secs(20));
        assert_eq!(done.status.code(), Some(code), "{name}: {}", done.stderr);
        let stops: Vec<&str> = done
            .stderr
            .lines()
            .filter(|l| l.starts_with("stopped: "))
            .collect();
        assert_eq!(stops.len(), 1, "{}", done.stderr);
        assert!(!done.stderr.contains("error"), "{}", done.stderr);
        let last = last_line(&done.stderr);
        assert!(
            last.starts_with("stopped: flow 'ops' stopped at epoch ") && last.contains(name),
            "{name}: {}",
            done.stderr
        );
    }
}

#[test]
fn a_finished_run_exits_0_without_a_stop_line() {
    let done = run("quick", &["run"], &[("RUST_LOG", "info")]);
    assert_eq!(done.status.code(), Some(0));
    assert!(!done.stderr.contains("stopped"), "{}", done.stderr);
}
