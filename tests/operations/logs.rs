//! Logs: the life of a run at info, snapshot commits at debug, text or JSON, no colours
//! through a pipe, RUST_LOG in --help.

use crate::harness::run;

#[test]
fn info_logs_tell_the_life_of_a_run_without_colours_through_a_pipe() {
    let done = run(
        "quick",
        &["run", "-w", "2", "-s", "50ms"],
        &[("RUST_LOG", "info")],
    );
    assert!(done.status.success(), "{}", done.stderr);
    let log = &done.stderr;
    assert!(!log.contains('\x1b'), "ANSI codes through a pipe:\n{log}");
    for needle in [
        "starting flow 'ops': process 0 of 1, 2 worker(s) each",
        "input 'ops.inp' reached the end of its input on worker",
        "flow 'ops' finished: every input reached its end",
    ] {
        assert!(log.contains(needle), "no {needle:?} in:\n{log}");
    }
    assert!(log.lines().all(|l| l.contains(" INFO ")), "{log}");

    // Without RUST_LOG a finished run prints nothing on stderr.
    let quiet = run("quick", &["run"], &[]);
    assert!(quiet.status.success());
    assert_eq!(quiet.stderr, "");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let done = run("quick", &["run", "--log-format", "json"], &[("RUST_LOG", "info")]);
    assert!(done.status.success(), "{}", done.stderr);
    let events: Vec<serde_json::Value> = done
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let starting = events
        .iter()
        .find(|e| {
            e["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("starting flow"))
        })
        .expect("a starting event");
    assert_eq!(starting["level"], "INFO");
    assert_eq!(starting["fields"]["flow"], "ops");
    assert_eq!(starting["fields"]["workers_per_process"], 1);
    let finished = events
        .iter()
        .find(|e| {
            e["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("finished"))
        })
        .expect("a finished event");
    assert_eq!(
        finished["fields"]["items_written"],
        serde_json::Value::Null,
        "no metrics without the API"
    );
    // The variable works as well as the flag.
    let env = run(
        "quick",
        &["run"],
        &[("RUST_LOG", "info"), ("BWX_LOG_FORMAT", "json")],
    );
    assert!(env.stderr.lines().all(|l| l.starts_with('{')), "{}", env.stderr);
}

#[test]
fn the_processes_of_a_local_cluster_mark_their_log_lines() {
    let done = run(
        "quick",
        &["run", "--processes", "2", "-s", "50ms"],
        &[("RUST_LOG", "info")],
    );
    assert!(done.status.success(), "{}", done.stderr);
    let log = &done.stderr;
    for process in 0..2 {
        let starting = format!("starting flow 'ops': process {process} of 2");
        let line = log
            .lines()
            .find(|l| l.contains(&starting))
            .unwrap_or_else(|| panic!("no {starting:?} in:\n{log}"));
        assert!(line.starts_with(&format!("process {process}: ")), "{line}");
    }
    // Every line of a child says which one wrote it; the supervisor's own lines need not.
    for line in log.lines() {
        assert!(
            line.starts_with("process 0: ")
                || line.starts_with("process 1: ")
                || line.contains("bwx_runtime::cli::spawn"),
            "an unmarked line: {line}\n{log}"
        );
    }
    assert!(
        log.contains("process 0: ") && log.contains("process 1: "),
        "{log}"
    );

    let json = run(
        "quick",
        &["run", "--processes", "2", "--log-format", "json"],
        &[("RUST_LOG", "info")],
    );
    assert!(json.status.success(), "{}", json.stderr);
    let mut starts = Vec::new();
    for line in json.stderr.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let message = event["fields"]["message"].as_str().unwrap_or_default();
        if message.starts_with("starting flow") {
            assert!(
                message.contains(&format!("process {} of 2", event["process"])),
                "{line}"
            );
            starts.push(event["process"].as_u64().expect("a process field"));
        }
    }
    starts.sort_unstable();
    assert_eq!(starts, vec![0, 1], "{}", json.stderr);
}

#[test]
fn recovery_runs_log_their_directory_resume_point_and_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let dir_arg = dir.to_str().unwrap();
    assert!(
        run("quick", &["recovery", "init", dir_arg, "1"], &[])
            .status
            .success()
    );
    let args = ["run", "-r", dir_arg, "-s", "50ms", "-b", "1m"];
    let first = run("slow", &args, &[("RUST_LOG", "info,bwx::recovery=debug")]);
    assert!(first.status.success(), "{}", first.stderr);
    assert!(
        first.stderr.contains(&format!(
            "recovery directory {dir_arg}: first execution, starting at epoch 1"
        )),
        "{}",
        first.stderr
    );
    assert!(first.stderr.contains("DEBUG"), "{}", first.stderr);
    assert!(
        first
            .stderr
            .contains("committed the snapshots of the epochs before"),
        "{}",
        first.stderr
    );

    let second = run("quick", &args, &[("RUST_LOG", "info")]);
    assert!(second.status.success(), "{}", second.stderr);
    let line = second
        .stderr
        .lines()
        .find(|l| l.contains("execution 1 resumes at epoch"))
        .unwrap_or_else(|| panic!("{}", second.stderr));
    let epoch: u64 = line
        .split("resumes at epoch ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(epoch > 10, "a 3 s run of 50 ms epochs resumes late: {line}");
    assert!(!second.stderr.contains("committed the snapshots"), "debug is off");
}

#[test]
fn help_documents_rust_log_and_the_log_format() {
    let help = run("quick", &["run", "--help"], &[]);
    for needle in [
        "RUST_LOG",
        "--log-format <LOG_FORMAT>",
        "--dataflow-api",
        "BYTEWAX_DATAFLOW_API_ENABLED",
        "BYTEWAX_DATAFLOW_API_PORT",
        "BYTEWAX_DATAFLOW_API_CACHE_PATH",
        "BWX_DATAFLOW_API_BIND",
        "--no-progress",
        "130",
        "143",
    ] {
        assert!(
            help.stdout.contains(needle),
            "run --help lacks {needle:?}:\n{}",
            help.stdout
        );
    }
    let top = run("quick", &["--help"], &[]);
    assert!(top.stdout.contains("RUST_LOG"), "{}", top.stdout);
}
