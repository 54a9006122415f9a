//! The command line of a cluster: `--processes` (stopping a local cluster with signals,
//! naming the process that failed, restarting from the last snapshot with `--restarts`),
//! and the start-up of a process of a cluster. Each case re-executes this test
//! binary as the flow binary (`child_process_entry`), with the arguments in an environment
//! variable.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bwx::cli::Runner;
use bwx::prelude::*;
use bwx::testing::TestingSource;
use common::PrintSink;
use common::flow_binary::{self, Finished, Running, child_command};

/// Where each process writes a file named by its pid, holding its process id.
const PID_DIR: &str = "BWX_TEST_SUPERVISOR_PID_DIR";
const FIFO: &str = "BWX_TEST_SUPERVISOR_FIFO";
const ITEMS: u64 = 2_000;

/// Sums of 0..2000 by `x % 13`, 2 ms per item; every item read is printed as `item: x`.
fn flow(scenario: &str) -> Dataflow {
    let flow = Dataflow::new("supervised");
    if scenario == "stdin" {
        flow.input("inp", bwx::connectors::stdio::StdInSource::new())
            .output("out", PrintSink::new("line: "));
        return flow;
    }
    if scenario == "fifo" {
        // Opening a FIFO blocks until a writer comes: the flow never leaves set-up.
        let path = std::env::var(FIFO).unwrap();
        flow.input("inp", bwx::connectors::files::FileSource::new(path))
            .output("out", PrintSink::new("line: "));
        return flow;
    }
    let sums = flow
        .input("inp", TestingSource::new(0..ITEMS).batch_size(20))
        .inspect("seen", |_, x| {
            println!("item: {x}");
            std::thread::sleep(Duration::from_millis(2));
        })
        .key_on("key", |x| (*x % 13) as u32)
        .reduce_final("sum", |a, b| a + b);
    sums.map("fmt", |(k, s)| format!("{k} {s}"))
        .output("out", PrintSink::new("sum: "));
    flow
}

fn expected_sums() -> Vec<String> {
    let mut sums: BTreeMap<u64, u64> = BTreeMap::new();
    for x in 0..ITEMS {
        *sums.entry(x % 13).or_default() += x;
    }
    let mut out: Vec<String> = sums.iter().map(|(k, s)| format!("{k} {s}")).collect();
    out.sort();
    out
}

/// Not a test of its own: the flow binary that the other tests run.
#[test]
fn child_process_entry() {
    let Some((args, scenario)) = flow_binary::invocation("flowbin") else {
        return;
    };
    let supervisor = args.iter().any(|a| a == "-p" || a == "--processes");
    if let (Ok(dir), false) = (std::env::var(PID_DIR), supervisor) {
        let id = args
            .iter()
            .position(|a| a == "-i")
            .map_or("0", |i| args[i + 1].as_str());
        std::fs::write(format!("{dir}/{}", std::process::id()), id).unwrap();
    }
    let code = Runner::new(flow(&scenario))
        .process_command(child_command)
        .exit_code_from(args);
    std::process::exit(i32::from(code));
}

fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
    start_with(args, env, |command| {
        command.stdin(Stdio::null());
    })
}

/// As [`start`], with standard input and anything else `configure` sets.
fn start_with(args: &[&str], env: &[(&str, &str)], configure: impl FnOnce(&mut Command)) -> Running {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let mut command = child_command(&args);
    command.envs(env.iter().copied());
    configure(&mut command);
    Running::spawn(command)
}

/// The items the flow read, sorted.
fn items(ended: &Finished) -> Vec<u64> {
    let mut items: Vec<u64> = ended.lines("item: ").iter().map(|l| l.parse().unwrap()).collect();
    items.sort_unstable();
    items
}
/// The (pid, process id) of the `n` processes of a `--processes` run, once all started.
fn children(dir: &Path, n: usize) -> Vec<(i32, usize)> {
    let started = Instant::now();
    loop {
        let found: Vec<(i32, usize)> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let e = e.unwrap();
                let id = std::fs::read_to_string(e.path()).ok()?.parse().ok()?;
                Some((e.file_name().to_string_lossy().parse().unwrap(), id))
            })
            .collect();
        if found.len() == n {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "children did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn recovery_dir(base: &Path) -> String {
    let dir = base.join("recovery");
    let dir = dir.to_str().unwrap().to_string();
    let ended = start(&["recovery", "init", &dir, "2"], &[]).finish(Duration::from_secs(20));
    assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
    dir
}

/// Runs the rest of a stopped run and checks that the two runs together read every item
/// exactly once (the stop wrote a final snapshot) and computed the right sums.
fn finish_after_a_stop(stopped: &Finished, dir: &str) {
    assert!(
        stopped.lines("sum: ").is_empty(),
        "a stop is not the end of the input"
    );
    let rest =
        start(&["run", "-p", "2", "-r", dir, "-s", "200ms", "-b", "1m"], &[]).finish(Duration::from_secs(60));
    assert_eq!(rest.status.code(), Some(0), "{}", rest.stderr);
    assert_eq!(rest.lines("sum: "), expected_sums());
    let (before, after) = (items(stopped), items(&rest));
    assert!(
        !before.is_empty() && !after.is_empty(),
        "{} then {} items",
        before.len(),
        after.len()
    );
    let mut all = before;
    all.extend(after);
    all.sort_unstable();
    assert_eq!(all, (0..ITEMS).collect::<Vec<u64>>(), "items lost or read twice");
}

/// Runs a 2-process cluster with recovery, stops it with `stop` (given the run and its
/// processes), and checks that it stopped as a stop should, then resumes it to the end.
fn a_stopped_cluster_resumes(stop: impl FnOnce(&Running, &[(i32, usize)])) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = recovery_dir(tmp.path());
    let pids = tmp.path().join("pids");
    std::fs::create_dir(&pids).unwrap();
    let run = start(
        &["run", "-p", "2", "-r", &dir, "-s", "200ms", "-b", "1m"],
        &[(PID_DIR, pids.to_str().unwrap())],
    );
    let processes = children(&pids, 2);
    std::thread::sleep(Duration::from_millis(800));
    stop(&run, &processes);
    let stopped = run.finish(Duration::from_secs(20));
    // A stopped run is not a finished one: 143 (SIGTERM) and one line saying where it stopped.
    assert_eq!(stopped.status.code(), Some(143), "{}", stopped.stderr);
    assert_eq!(
        stopped
            .stderr
            .matches("stopped: flow 'supervised' stopped at epoch")
            .count(),
        1,
        "{}",
        stopped.stderr
    );
    assert!(
        stopped.took < Duration::from_secs(3),
        "the stop took {:?}",
        stopped.took
    );
    finish_after_a_stop(&stopped, &dir);
}

#[test]
fn a_stop_signal_to_the_supervisor_stops_every_process_with_a_final_snapshot() {
    a_stopped_cluster_resumes(|run, _| run.signal(libc::SIGTERM));
}

#[test]
fn a_stop_signal_to_one_process_stops_the_cluster_quickly() {
    a_stopped_cluster_resumes(|_, processes| {
        // SAFETY: kill(2) on a process of the cluster this test started.
        unsafe { libc::kill(processes[1].0, libc::SIGTERM) };
    });
}

#[test]
fn a_stop_signal_during_set_up_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    for args in [&["run"][..], &["run", "-p", "2"][..]] {
        let run = start(
            args,
            &[(flow_binary::SCENARIO, "fifo"), (FIFO, fifo.to_str().unwrap())],
        );
        std::thread::sleep(Duration::from_millis(700));
        run.signal(libc::SIGTERM);
        let ended = run.finish(Duration::from_secs(10));
        assert!(
            ended.took < Duration::from_secs(3),
            "{args:?}: the stop took {:?}",
            ended.took
        );
        assert_eq!(ended.status.code(), Some(1), "{args:?}: {}", ended.stderr);
        assert!(
            ended.stderr.contains("while the flow was being set up"),
            "{args:?}: {}",
            ended.stderr
        );
    }
}

#[test]
fn the_supervisor_names_the_process_that_was_killed() {
    for round in 0..3usize {
        let tmp = tempfile::tempdir().unwrap();
        let run = start(&["run", "-p", "3"], &[(PID_DIR, tmp.path().to_str().unwrap())]);
        let victim = round % 3;
        let pid = children(tmp.path(), 3)
            .into_iter()
            .find(|(_, id)| *id == victim)
            .map(|(pid, _)| pid)
            .unwrap();
        std::thread::sleep(Duration::from_millis(300 + 100 * round as u64));
        // SAFETY: kill(2) on a process of the cluster this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let ended = run.finish(Duration::from_secs(20));
        assert_eq!(ended.status.code(), Some(1), "{}", ended.stderr);
        let named = format!(
            "process {victim} of 3 failed (killed by signal 9 (SIGKILL)); stopped the other processes"
        );
        assert!(ended.stderr.contains(&named), "round {round}: {}", ended.stderr);
    }
}

#[test]
fn restarts_resume_the_cluster_from_the_last_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = recovery_dir(tmp.path());
    let pids = tmp.path().join("pids");
    std::fs::create_dir(&pids).unwrap();
    let run = start(
        &[
            "run",
            "-p",
            "2",
            "--restarts",
            "2",
            "-r",
            &dir,
            "-s",
            "200ms",
            "-b",
            "1m",
        ],
        &[(PID_DIR, pids.to_str().unwrap())],
    );
    let (pid, id) = children(&pids, 2)[0];
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: kill(2) on a process of the cluster this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let ended = run.finish(Duration::from_secs(60));
    assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
    assert!(
        ended.stderr.contains(&format!(
            "process {id} of 2 failed (killed by signal 9 (SIGKILL))"
        )) && ended
            .stderr
            .contains("restarting the cluster from the last snapshot")
            && ended.stderr.contains("(restart 1 of 2)"),
        "{}",
        ended.stderr
    );
    assert_eq!(ended.lines("sum: "), expected_sums());
    // Items after the last snapshot before the kill are read again; none is lost.
    let mut items = items(&ended);
    items.dedup();
    assert_eq!(items, (0..ITEMS).collect::<Vec<u64>>());
}

#[test]
fn restarts_need_recovery() {
    let ended = start(&["run", "-p", "2", "--restarts", "1"], &[]).finish(Duration::from_secs(20));
    assert_eq!(ended.status.code(), Some(2), "{}", ended.stderr);
    assert!(ended.stderr.contains("--recovery-directory"), "{}", ended.stderr);
}

#[test]
fn an_unauthenticated_cluster_beyond_loopback_is_warned_about_and_an_unresolvable_peer_named() {
    let args = [
        "run",
        "-i",
        "1",
        "-a",
        "no-such-host.invalid:9;127.0.0.1:0",
        "--startup-timeout",
        "1s",
    ];
    for secret in [None, Some("a secret long enough for this test")] {
        let env: Vec<(&str, &str)> = secret.map(|s| ("BWX_CLUSTER_SECRET", s)).into_iter().collect();
        let ended = start(&args, &env).finish(Duration::from_secs(20));
        assert_eq!(ended.status.code(), Some(1), "{}", ended.stderr);
        assert!(ended.took < Duration::from_secs(5), "{:?}", ended.took);
        assert!(
            ended
                .stderr
                .contains("could not reach process 0 at no-such-host.invalid:9")
                && ended.stderr.contains("cannot resolve 'no-such-host.invalid:9'"),
            "{}",
            ended.stderr
        );
        let warned = ended
            .stderr
            .contains("the cluster connections are not authenticated");
        assert_eq!(warned, secret.is_none(), "{}", ended.stderr);
    }
}

/// A new pseudo-terminal: its controlling side and the terminal a process reads.
fn pseudo_terminal() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    // SAFETY: plain calls on the descriptor just opened; the name buffer is ours and
    // NUL-terminated by ptsname_r.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(master, name.as_mut_ptr(), name.len()), 0);
        let name = std::ffi::CStr::from_ptr(name.as_ptr())
            .to_str()
            .unwrap()
            .to_string();
        let terminal = std::fs::File::options()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(name)
            .unwrap();
        (std::fs::File::from_raw_fd(master), terminal)
    }
}

#[test]
fn processes_read_lines_typed_at_their_terminal() {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let (mut keyboard, terminal) = pseudo_terminal();
    // The supervisor runs in the foreground of a terminal of its own, as in a shell.
    let started = start_with(
        &["run", "--processes", "2"],
        &[(flow_binary::SCENARIO, "stdin")],
        |command| {
            command.stdin(Stdio::from(terminal));
            // SAFETY: setsid and ioctl are async-signal-safe.
            unsafe {
                command.pre_exec(|| {
                    if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        },
    );
    // Lines, then end of input (Ctrl-D at the start of a line).
    keyboard.write_all(b"first line\nsecond line\n\x04").unwrap();
    let ended = started.finish(Duration::from_secs(20));
    assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
    assert_eq!(ended.lines("line: "), ["first line", "second line"]);
}

/// A cgroup (v2) of its own that freezes its processes: they are hung, not stopped (no
/// SIGSTOP, state `S`), as a process stuck in the kernel or starved is. Removed on drop.
struct Freezer(std::path::PathBuf);

impl Freezer {
    /// `None` (and says why) where this process may not make cgroups.
    fn new() -> Option<Freezer> {
        let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .map(Path::new)
            .find(|root| {
                root.join("cgroup.procs").exists() && root.join("cgroup.subtree_control").exists()
            })?;
        let dir = root.join(format!("bwx-supervisor-test-{}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) if dir.join("cgroup.freeze").exists() => Some(Freezer(dir)),
            Ok(()) => {
                let _ = std::fs::remove_dir(&dir);
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot make a cgroup in {}: {e}", root.display());
                None
            }
        }
    }

    fn freeze(&self, pid: i32) {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string()).unwrap();
        std::fs::write(self.0.join("cgroup.freeze"), "1").unwrap();
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.freeze"), "0");
        let started = Instant::now();
        while std::fs::remove_dir(&self.0).is_err() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn the_supervisor_names_a_hung_process_whose_heartbeat_stopped() {
    let Some(freezer) = Freezer::new() else {
        eprintln!("skipped: freezing a process needs a writable cgroup v2 hierarchy (root)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let run = start(
        &["run", "-p", "3", "--heartbeat-timeout", "1s"],
        &[(PID_DIR, tmp.path().to_str().unwrap())],
    );
    let pid = children(tmp.path(), 3)
        .into_iter()
        .find(|(_, id)| *id == 1)
        .map(|(pid, _)| pid)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    freezer.freeze(pid);
    let ended = run.finish(Duration::from_secs(20));
    assert_eq!(ended.status.code(), Some(1), "{}", ended.stderr);
    assert!(
        ended.stderr.contains(
            "process 1 of 3 failed (it stopped answering: process 0 heard no heartbeat from it within the timeout)"
        ) || ended.stderr.contains(
            "process 1 of 3 failed (it stopped answering: process 2 heard no heartbeat from it within the timeout)"
        ),
        "{}",
        ended.stderr
    );
}
