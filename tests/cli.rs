//! The command line of a flow binary, driven end to end: each case re-executes this test
//! binary as the flow binary (the `child_process_entry` test, which calls
//! `bwx::cli::Runner`), with the arguments in an environment variable.

mod common;

use std::ffi::OsString;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bwx::cli::Runner;
use bwx::prelude::*;
use bwx::testing::{MemoryStore, TestingSink, TestingSource};
use common::PrintSink;
use common::flow_binary::{self, Finished, Running, child_command};

/// Where each process of a `--processes` cluster writes a file named by its pid.
const PID_DIR: &str = "BWX_TEST_CLI_PID_DIR";
/// Every environment variable the CLI reads.
const BYTEWAX_VARS: [&str; 9] = [
    "BYTEWAX_WORKERS_PER_PROCESS",
    "BYTEWAX_PROCESS_ID",
    "BYTEWAX_ADDRESSES",
    "BYTEWAX_SNAPSHOT_INTERVAL",
    "BYTEWAX_RECOVERY_DIRECTORY",
    "BYTEWAX_RECOVERY_BACKUP_INTERVAL",
    "BYTEWAX_POD_NAME",
    "BYTEWAX_STATEFULSET_NAME",
    "BYTEWAX_HOSTFILE_PATH",
];

/// Sums of 0..5_000 by `x % 31`, then a scenario-specific tail.
fn flow(scenario: &str) -> Dataflow {
    let flow = Dataflow::new("cli");
    let cursed = scenario == "panic";
    // About 5 s per worker: long enough to kill a supervisor while its cluster runs.
    let slow = scenario == "slow";
    let sums = flow
        .input("inp", TestingSource::new(0..5_000u64).batch_size(50))
        .map("check", move |x| {
            if x == 2_500 && cursed {
                panic!("item {x} is cursed")
            }
            if slow {
                std::thread::sleep(Duration::from_millis(2));
            }
            x
        })
        .key_on("key", |x| (*x % 31) as u32)
        .reduce_final("sum", |a, b| a + b);
    sums.map("fmt", |(k, s)| format!("{k} {s}"))
        .output("out", PrintSink::new("sum: "));
    flow
}

fn expected_sums() -> Vec<String> {
    let flow = Dataflow::new("expected");
    let out = TestingSink::new();
    flow.input("inp", TestingSource::new(0..5_000u64).batch_size(50))
        .key_on("key", |x| (*x % 31) as u32)
        .reduce_final("sum", |a, b| a + b)
        .output("out", out.clone());
    bwx::run_main(&flow).unwrap();
    let mut sums: Vec<String> = out.take().into_iter().map(|(k, s)| format!("{k} {s}")).collect();
    sums.sort();
    sums
}

/// Not a test of its own: the flow binary that the other tests run. Without `ARGS` it
/// does nothing.
#[test]
fn child_process_entry() {
    let Some((args, scenario)) = flow_binary::invocation("flowbin") else {
        return;
    };
    let supervisor = args.iter().any(|a| a == "-p" || a == "--processes");
    if let (Ok(dir), false) = (std::env::var(PID_DIR), supervisor) {
        std::fs::write(format!("{dir}/{}", std::process::id()), "").unwrap();
    }
    let mut runner = Runner::new(flow(&scenario));
    if scenario == "no-recovery" {
        runner = runner.without_recovery();
    }
    let code = runner.process_command(child_command).exit_code_from(args);
    std::process::exit(i32::from(code));
}

/// Runs the flow binary with `args` and extra environment, for at most 20 s.
fn cli(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let mut command = child_command(&args);
    for var in BYTEWAX_VARS {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    Running::spawn(command).finish(Duration::from_secs(20))
}

/// The distinct `partition: i of n` lines: which workers ran the sink.
fn partitions(output: &Finished) -> Vec<String> {
    let mut got = output.lines("partition: ");
    got.dedup();
    got
}

fn assert_success(output: &Finished) {
    assert!(
        output.status.success(),
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        &output.stdout,
        &output.stderr
    );
}

#[test]
fn run_on_one_thread_and_three_threads_gives_the_same_sums() {
    let expected = expected_sums();
    let one = cli(&["run"], &[]);
    assert_success(&one);
    assert_eq!(one.lines("sum: "), expected);
    assert_eq!(partitions(&one), vec!["0 of 1"]);

    let three = cli(&["run", "-w", "3", "-s", "100ms"], &[]);
    assert_success(&three);
    assert_eq!(three.lines("sum: "), expected);
    assert_eq!(partitions(&three), vec!["0 of 3", "1 of 3", "2 of 3"]);
}

#[test]
fn processes_flag_runs_a_local_cluster() {
    let output = cli(&["run", "--processes", "2", "-w", "2"], &[]);
    assert_success(&output);
    assert_eq!(output.lines("sum: "), expected_sums());
    assert_eq!(partitions(&output), vec!["0 of 4", "1 of 4", "2 of 4", "3 of 4"]);
}

#[test]
fn processes_flag_fails_when_a_process_fails() {
    let started = Instant::now();
    let output = cli(&["run", "-p", "2"], &[(flow_binary::SCENARIO, "panic")]);
    assert_eq!(output.status.code(), Some(1), "{}", &output.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
    let stderr = &output.stderr;
    assert!(stderr.contains("step 'cli.check' panicked on worker"), "{stderr}");
    assert!(stderr.contains("item 2500 is cursed"), "{stderr}");
    assert!(
        stderr.contains("of 2 failed (exit code 1); stopped the other processes"),
        "{stderr}"
    );
    // One line for the cluster, not one per process and one from the supervisor.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// Linux only: elsewhere there is no parent-death signal.
#[cfg(target_os = "linux")]
#[test]
fn killing_the_processes_supervisor_stops_its_cluster() {
    let pids = tempfile::tempdir().unwrap();
    let args = [OsString::from("run"), "-p".into(), "2".into()];
    let mut command = child_command(&args);
    command
        .env(flow_binary::SCENARIO, "slow")
        .env(PID_DIR, pids.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut supervisor = command.spawn().unwrap();
    let started = Instant::now();
    let children: Vec<i32> = loop {
        let found: Vec<i32> = std::fs::read_dir(pids.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
            .collect();
        if found.len() == 2 {
            break found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "children did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    supervisor.kill().unwrap();
    supervisor.wait().unwrap();
    let killed = Instant::now();
    // The flow would run for seconds more; the children must be gone well before that.
    while children.iter().any(|&pid| alive(pid)) {
        assert!(
            killed.elapsed() < Duration::from_secs(3),
            "processes {children:?} outlived their killed supervisor"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Running or stopped, but not a zombie waiting to be reaped.
#[cfg(target_os = "linux")]
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn a_flow_error_prints_one_line_naming_step_and_worker_and_exits_1() {
    let output = cli(&["run", "-w", "2"], &[(flow_binary::SCENARIO, "panic")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = &output.stderr;
    let errors: Vec<&str> = stderr.lines().collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with("error: step 'cli.check' panicked on worker "),
        "{stderr}"
    );
    assert!(errors[0].contains("item 2500 is cursed"), "{stderr}");
}

#[test]
fn bad_flags_exit_2_with_a_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--frobnicate"], "unexpected argument '--frobnicate'"),
        (&["run", "-w", "0"], "must be at least 1"),
        (&["run", "-w", "many"], "'many' is not a whole number"),
        (&["run", "-s", "soon"], "'soon' is not a duration"),
        (&["run", "-a", "localhost"], "'localhost' is not host:port"),
        (&["run", "-i", "1"], "no addresses"),
        (&["run", "-a", "a:1;b:2"], "no process id"),
        (
            &["run", "-i", "2", "-a", "a:1;b:2"],
            "process id 2 is out of range",
        ),
        (&["run", "-p", "2", "-i", "0"], "cannot be used with"),
        (&["run", "-r", "/tmp/x"], "--snapshot-interval"),
        (&["run", "--drop-unmatched-state"], "--recovery-directory"),
        (&["walk"], "unrecognized subcommand 'walk'"),
        (&[], "Usage: flowbin [OPTIONS] <COMMAND>"),
    ];
    for (args, message) in cases {
        let output = cli(args, &[]);
        let stderr = &output.stderr;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?} should say {message:?}: {stderr}"
        );
    }
}

#[test]
fn recovery_without_a_backend_is_a_clear_error() {
    let no_recovery = [(flow_binary::SCENARIO, "no-recovery")];
    let output = cli(
        &["run", "-r", "/tmp/nowhere", "-s", "10", "-b", "1m"],
        &no_recovery,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stderr.contains("recovery is not available in this build"));
    let output = cli(&["recovery", "init", "/tmp/nowhere", "2"], &no_recovery);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stderr.contains("recovery is not available in this build"));
}

#[test]
fn the_default_sqlite_backend_inits_runs_and_refuses_an_uninitialised_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("recovery");
    let dir_arg = dir.to_str().unwrap();
    let output = cli(&["run", "-r", dir_arg, "-s", "1", "-b", "1m"], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", &output.stderr);
    let stderr = &output.stderr;
    assert!(
        stderr.contains("no recovery partitions in") && stderr.contains(dir_arg),
        "{stderr}"
    );
    let output = cli(&["recovery", "init", dir_arg, "3"], &[]);
    assert_success(&output);
    assert!(dir.join("part-2.sqlite3").exists());
    let output = cli(&["run", "-w", "2", "-r", dir_arg, "-s", "1", "-b", "1m"], &[]);
    assert_success(&output);
    let mut sums: Vec<String> = output
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("sum: ").map(String::from))
        .collect();
    sums.sort();
    assert_eq!(sums, expected_sums());
}

#[test]
fn help_mentions_every_flag_and_variable() {
    let output = cli(&["run", "--help"], &[]);
    assert_success(&output);
    let help = &output.stdout;
    for needle in [
        "-w, --workers-per-process <N>",
        "-p, --processes <N>",
        "-i, --process-id <ID>",
        "-a, --addresses <ADDRESSES>",
        "-s, --snapshot-interval <DURATION>",
        "epoch-interval",
        "-r, --recovery-directory <DIR>",
        "-b, --backup-interval <DURATION>",
        "--pod-name <NAME>",
        "--statefulset-name <NAME>",
        "--hostfile-path <FILE>",
        "Usage: flowbin run",
    ]
    .into_iter()
    .chain(BYTEWAX_VARS)
    {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    let top = cli(&["--help"], &[]);
    assert_success(&top);
    assert!(
        top.stdout.contains("Runs the bwx dataflow 'cli'."),
        "{}",
        &top.stdout
    );
}

#[test]
fn environment_variables_are_honoured_and_flags_win() {
    let output = cli(&["run"], &[("BYTEWAX_WORKERS_PER_PROCESS", "2")]);
    assert_success(&output);
    assert_eq!(partitions(&output), vec!["0 of 2", "1 of 2"]);
    assert_eq!(output.lines("sum: "), expected_sums());

    let output = cli(&["run", "-w", "1"], &[("BYTEWAX_WORKERS_PER_PROCESS", "2")]);
    assert_success(&output);
    assert_eq!(partitions(&output), vec!["0 of 1"]);

    let output = cli(&["run"], &[("BYTEWAX_SNAPSHOT_INTERVAL", "whenever")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stderr.contains("'whenever' is not a duration"));
}

#[test]
fn kubernetes_pod_ordinals_and_host_file_form_a_cluster() {
    let dir = std::env::temp_dir().join(format!("bwx-cli-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hostfile = dir.join("hosts");
    let ports: Vec<std::net::TcpListener> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let hosts: Vec<String> = ports
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    drop(ports);
    std::fs::write(&hostfile, format!("{}\n{}\n", hosts[0], hosts[1])).unwrap();
    let hostfile = hostfile.to_str().unwrap().to_string();
    let pods: Vec<_> = ["flow-0", "flow-1"]
        .into_iter()
        .map(|pod| {
            let hostfile = hostfile.clone();
            std::thread::spawn(move || {
                cli(
                    &["run"],
                    &[
                        ("BYTEWAX_POD_NAME", pod),
                        ("BYTEWAX_STATEFULSET_NAME", "flow"),
                        ("BYTEWAX_HOSTFILE_PATH", &hostfile),
                    ],
                )
            })
        })
        .collect();
    let outputs: Vec<Finished> = pods.into_iter().map(|p| p.join().unwrap()).collect();
    std::fs::remove_dir_all(&dir).unwrap();
    let mut sums = Vec::new();
    let mut parts = Vec::new();
    for output in &outputs {
        assert_success(output);
        sums.extend(output.lines("sum: "));
        parts.extend(partitions(output));
    }
    sums.sort();
    parts.sort();
    assert_eq!(sums, expected_sums());
    assert_eq!(parts, vec!["0 of 2", "1 of 2"]);
}

/// Two hosts, each keeping its own share of one store's partitions (`recovery init --parts
/// --store-id`), run as pods of a StatefulSet; then what `recovery init` refuses.
#[test]
fn recovery_init_parts_gives_each_host_its_share_of_one_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<String> = (0..2)
        .map(|h| tmp.path().join(format!("host-{h}")).to_str().unwrap().to_string())
        .collect();
    for (dir, parts) in dirs.iter().zip(["0,2", "1-1,3"]) {
        let output = cli(
            &[
                "recovery",
                "init",
                dir,
                "4",
                "--parts",
                parts,
                "--store-id",
                "orders-1",
            ],
            &[],
        );
        assert_success(&output);
    }
    let held = |dir: &str| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(held(&dirs[0]), ["part-0.sqlite3", "part-2.sqlite3"]);
    assert_eq!(held(&dirs[1]), ["part-1.sqlite3", "part-3.sqlite3"]);
    assert_eq!(bwx::recovery::store_id_of(&dirs[1]).unwrap(), "orders-1");

    let ports: Vec<std::net::TcpListener> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let hosts: Vec<String> = ports
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    drop(ports);
    let hostfile = tmp.path().join("hosts");
    std::fs::write(&hostfile, format!("{}\n{}\n", hosts[0], hosts[1])).unwrap();
    let hostfile = hostfile.to_str().unwrap().to_string();
    let pods: Vec<_> = (0..2)
        .map(|h| {
            let (hostfile, dir) = (hostfile.clone(), dirs[h].clone());
            std::thread::spawn(move || {
                cli(
                    &["run", "-s", "20ms", "-b", "1m"],
                    &[
                        ("BYTEWAX_POD_NAME", &format!("flow-{h}")),
                        ("BYTEWAX_STATEFULSET_NAME", "flow"),
                        ("BYTEWAX_HOSTFILE_PATH", &hostfile),
                        ("BYTEWAX_RECOVERY_DIRECTORY", &dir),
                    ],
                )
            })
        })
        .collect();
    let mut sums = Vec::new();
    for pod in pods {
        let output = pod.join().unwrap();
        assert_success(&output);
        sums.extend(output.lines("sum: "));
    }
    sums.sort();
    assert_eq!(sums, expected_sums());
    // Each host's partitions recorded the execution.
    for dir in &dirs {
        let found = bwx::recovery::SqliteRecovery::open_store(dir, Duration::ZERO, "cli").unwrap();
        assert_eq!(found.files().len(), 2);
    }

    let d = dirs[0].as_str();
    for (args, code, says) in [
        (&["recovery", "init", d, "4", "--parts", "0"][..], 2, "--store-id"),
        (
            &[
                "recovery",
                "init",
                d,
                "4",
                "--parts",
                "2-1",
                "--store-id",
                "orders-1",
            ][..],
            2,
            "a range that ends before it starts: '2-1'",
        ),
        (
            &[
                "recovery",
                "init",
                d,
                "4",
                "--parts",
                "0,x",
                "--store-id",
                "orders-1",
            ][..],
            2,
            "not a partition index: 'x'",
        ),
        (
            &[
                "recovery",
                "init",
                d,
                "4",
                "--parts",
                "3-4",
                "--store-id",
                "orders-1",
            ][..],
            1,
            "partition 4 is not in a set of 4",
        ),
        (
            &[
                "recovery",
                "init",
                d,
                "4",
                "--parts",
                "0",
                "--store-id",
                "orders-2",
            ][..],
            1,
            "part-0.sqlite3 belongs to store 'orders-1', not to store 'orders-2'",
        ),
        (
            &[
                "recovery",
                "init",
                d,
                "4",
                "--parts",
                "1",
                "--store-id",
                "orders 1",
            ][..],
            1,
            "bad store id \"orders 1\"",
        ),
    ] {
        let output = cli(args, &[]);
        let stderr = &output.stderr;
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // Nothing was created by the refused commands; running the first again changes nothing.
    assert_eq!(held(&dirs[0]), ["part-0.sqlite3", "part-2.sqlite3"]);
    assert_success(&cli(
        &[
            "recovery",
            "init",
            d,
            "4",
            "--parts",
            "0,2",
            "--store-id",
            "orders-1",
        ],
        &[],
    ));
    // --store-id alone makes the whole set with that id.
    let whole = tmp.path().join("whole");
    let whole = whole.to_str().unwrap();
    assert_success(&cli(
        &["recovery", "init", whole, "3", "--store-id", "orders-3"],
        &[],
    ));
    assert_eq!(held(whole).len(), 3);
    assert_eq!(bwx::recovery::store_id_of(whole).unwrap(), "orders-3");
}

/// A recovery backend that records what the CLI handed it, over a store in memory.
#[derive(Default)]
struct MemoryBackend {
    opened: std::sync::Mutex<Vec<(bwx::recovery::RecoveryOptions, std::sync::Arc<MemoryStore>)>>,
    inits: std::sync::Mutex<Vec<(std::path::PathBuf, usize)>>,
}

impl bwx::recovery::RecoveryBackend for MemoryBackend {
    fn open(
        &self,
        options: &bwx::recovery::RecoveryOptions,
    ) -> Result<std::sync::Arc<dyn bwx::recovery::RecoveryStore>, bwx::recovery::RecoveryError> {
        let store = MemoryStore::new(2);
        self.opened.lock().unwrap().push((options.clone(), store.clone()));
        Ok(store)
    }
    fn init(
        &self,
        directory: &std::path::Path,
        partitions: usize,
    ) -> Result<(), bwx::recovery::RecoveryError> {
        self.inits
            .lock()
            .unwrap()
            .push((directory.to_path_buf(), partitions));
        Ok(())
    }
}

#[test]
fn a_registered_recovery_backend_gets_the_flags_and_the_snapshots() {
    let backend = std::sync::Arc::new(MemoryBackend::default());
    let flow = Dataflow::new("rec");
    let out = TestingSink::new();
    flow.input("inp", TestingSource::new(0..100u64))
        .key_on("key", |x| (*x % 3) as u32)
        .reduce_final("sum", |a, b| a + b)
        .output("out", out.clone());
    let args = [
        "flowbin", "run", "-w", "2", "-r", "state", "-s", "50ms", "-b", "10m",
    ];
    let code = Runner::new(flow.clone())
        .recovery_backend(backend.clone())
        .exit_code_from(args);
    assert_eq!(code, 0);
    assert_eq!(out.take().len(), 3);
    let opened = backend.opened.lock().unwrap();
    assert_eq!(opened.len(), 1);
    let (recovery, store) = &opened[0];
    assert_eq!(recovery.directory, std::path::PathBuf::from("state"));
    assert_eq!(recovery.backup_interval, Duration::from_secs(600));
    // The flow's snapshots (its source position and its three sums) reached the store.
    let written = store.written();
    assert!(
        written.iter().any(|s| s.step_id.as_str() == "rec.inp"),
        "{written:?}"
    );
    assert!(written.iter().filter(|s| s.step_id.as_str() == "rec.sum").count() >= 3);
    drop(opened);

    let code = Runner::new(flow)
        .recovery_backend(backend.clone())
        .exit_code_from(["flowbin", "recovery", "init", "state", "4"]);
    assert_eq!(code, 0);
    assert_eq!(
        *backend.inits.lock().unwrap(),
        vec![(std::path::PathBuf::from("state"), 4)]
    );
    // A backend that cannot split a set refuses --parts.
    let code = Runner::new(Dataflow::new("rec"))
        .recovery_backend(backend.clone())
        .exit_code_from([
            "flowbin",
            "recovery",
            "init",
            "state",
            "4",
            "--parts",
            "0",
            "--store-id",
            "s",
        ]);
    assert_eq!(code, 1);
    assert_eq!(backend.inits.lock().unwrap().len(), 1);
}
