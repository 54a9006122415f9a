//! A test binary that doubles as a flow binary. A case re-executes the test binary, running
//! only its `child_process_entry` test, which takes the command line from the environment
//! and hands it to `bwx::cli::Runner` as a user's `main` would.

use std::ffi::OsString;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The flow binary's arguments, separated by `SEP` (arguments never contain it).
const ARGS: &str = "BWX_TEST_FLOW_ARGS";
/// Which flow of the test binary to run, for binaries with several.
pub const SCENARIO: &str = "BWX_TEST_FLOW_SCENARIO";
const SEP: char = '\u{1f}';

/// In `child_process_entry`: the command line, `program` first, and the scenario (empty
/// when none is set). `None` in the test run itself, where the entry does nothing.
pub fn invocation(program: &str) -> Option<(Vec<String>, String)> {
    let args = std::env::var(ARGS).ok()?;
    let scenario = std::env::var(SCENARIO).unwrap_or_default();
    let args = std::iter::once(program.to_string())
        .chain(args.split(SEP).map(String::from))
        .collect();
    Some((args, scenario))
}

/// The command that starts the flow binary with `args`: this test binary, running
/// `child_process_entry` alone. It is also the flow binaries' `Runner::process_command`, so
/// a `--processes` supervisor starts its processes the same way.
pub fn child_command(args: &[OsString]) -> Command {
    let joined: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ARGS, joined.join(&SEP.to_string()));
    command
}

/// A started flow binary, its stdout and stderr collected on threads. Dropping it kills the
/// process, so a failed case leaves nothing running.
pub struct Running {
    pub child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

/// What a flow binary printed and how it ended.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// From the call to [`Running::finish`] to the exit.
    pub took: Duration,
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

fn text(bytes: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&bytes.lock().unwrap()).into_owned()
}

impl Running {
    /// Spawns `command` with stdout and stderr piped; stdin is what `command` says
    /// (inherited unless set).
    pub fn spawn(mut command: Command) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        Running {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// What the flow binary printed on stderr so far.
    pub fn stderr(&self) -> String {
        text(&self.stderr)
    }

    /// Waits until stderr has a line containing `needle`; returns that line.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self.stderr().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the flow ended ({status}) before printing {needle:?}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                started.elapsed() < timeout,
                "no {needle:?} on stderr within {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to the flow binary.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) has no memory effects; the child is not reaped yet.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits for the flow binary to exit; kills it and fails the case after `timeout`.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the flow binary ran longer than {timeout:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = started.elapsed();
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        let stdout = text(&self.stdout);
        Finished {
            status,
            // The test harness of the child prints this first.
            stdout: stdout
                .strip_prefix("\nrunning 1 test\n")
                .map(String::from)
                .unwrap_or(stdout),
            stderr: self.stderr(),
            took,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Finished {
    /// The stdout lines that start with `prefix`, without it, sorted.
    pub fn lines(&self, prefix: &str) -> Vec<String> {
        let mut lines: Vec<String> = self
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix).map(String::from))
            .collect();
        lines.sort();
        lines
    }
}
