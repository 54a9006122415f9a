//! The flow binary the cases run, and helpers to drive it.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bwx::cli::Runner;
use bwx::prelude::*;
use bwx::testing::{TestingEvent, TestingSource};

use crate::common::PrintSink;

const ARGS: &str = "BWX_TEST_OPS_ARGS";
const SCENARIO: &str = "BWX_TEST_OPS_SCENARIO";
const SEP: char = '\u{1f}';

/// Items the flow reads.
pub const ITEMS: u64 = 3_000;

/// The flow: `ITEMS` numbers, doubled, those not divisible by 3 kept, summed per key
/// `x % 7`, printed. `scenario` paces the input:
/// - `quick`: all at once;
/// - `slow`: 100 items every 100 ms (about 3 s);
/// - `linger`: all at once, then the input stays open (idle) for 10 minutes;
/// - `trickle`: 10 items every 50 ms, for 10 minutes (never ends by itself).
pub fn flow(scenario: &str) -> Dataflow {
    let flow = Dataflow::new("ops");
    let mut events = Vec::new();
    let trickle = scenario == "trickle";
    let count = if trickle { 1_000_000 } else { ITEMS };
    for x in 0..count {
        events.push(TestingEvent::Item(x));
        match scenario {
            "slow" if x % 100 == 99 => events.push(TestingEvent::Pause(Duration::from_millis(100))),
            "trickle" if x % 10 == 9 => events.push(TestingEvent::Pause(Duration::from_millis(50))),
            _ => {}
        }
    }
    if scenario == "linger" {
        events.push(TestingEvent::Pause(Duration::from_secs(600)));
        // A pause must be followed by an event, or the input ends with it.
        events.push(TestingEvent::Eof);
    }
    flow.input("inp", TestingSource::from_events(events).batch_size(50))
        .map("double", |x: u64| x * 2)
        .filter("keep", |x: &u64| !x.is_multiple_of(3))
        .key_on("key", |x: &u64| (x % 7).to_string())
        .stateful_map("sum", |sum: Option<u64>, x: u64| {
            let sum = sum.unwrap_or(0) + x;
            (Some(sum), sum)
        })
        .map("fmt", |(k, s): (String, u64)| format!("{k} {s}"))
        .output("out", PrintSink::new("out: "));
    flow
}

/// How many items pass the filter.
pub fn kept() -> u64 {
    (0..ITEMS).filter(|x| (x * 2) % 3 != 0).count() as u64
}

pub fn child_process_entry() {
    let Ok(args) = std::env::var(ARGS) else { return };
    let scenario = std::env::var(SCENARIO).unwrap_or_default();
    let args: Vec<String> = std::iter::once("ops-flow".to_string())
        .chain(args.split(SEP).map(String::from))
        .collect();
    let code = Runner::new(flow(&scenario))
        .version("7.8.9")
        .process_command(child_command)
        .exit_code_from(args);
    std::process::exit(i32::from(code));
}

/// How the flow binary is started: this test binary, running `child_process_entry`.
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

/// A running flow binary whose stdout and stderr are collected.
pub struct Flow {
    pub child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// What a flow binary printed and how it ended.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> std::thread::JoinHandle<()> {
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

impl Flow {
    /// Starts the flow binary with `args`, `scenario` and extra environment.
    pub fn start(scenario: &str, args: &[&str], env: &[(&str, &str)]) -> Flow {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let mut command = child_command(&args);
        // Only what the case sets reaches the flow binary.
        for (var, _) in std::env::vars() {
            if var.starts_with("BYTEWAX_")
                || var.starts_with("BWX_")
                || var.starts_with("OTEL_")
                || var == "RUST_LOG"
            {
                command.env_remove(var);
            }
        }
        command.env(SCENARIO, scenario).envs(env.iter().copied());
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        Flow {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
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

    /// The address of the dataflow API, from its log line (run with `RUST_LOG=info`).
    pub fn api_addr(&mut self) -> SocketAddr {
        let line = self.wait_for_stderr("dataflow API listening on http://", Duration::from_secs(20));
        let rest = line.split("http://").nth(1).unwrap();
        rest.split('/').next().unwrap().parse().unwrap()
    }

    /// Sends `signal` to the flow binary.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory effects; the child is not reaped yet.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits for the flow binary to exit (at most `timeout`).
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > timeout {
                self.child.kill().unwrap();
                panic!("the flow binary ran longer than {timeout:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        let stdout = String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned();
        Finished {
            status,
            // The test harness of the child prints this first.
            stdout: stdout
                .strip_prefix("\nrunning 1 test\n")
                .map(String::from)
                .unwrap_or(stdout),
            stderr: String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned(),
        }
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the flow binary to its end.
pub fn run(scenario: &str, args: &[&str], env: &[(&str, &str)]) -> Finished {
    Flow::start(scenario, args, env).finish(Duration::from_secs(60))
}

/// `GET path` over HTTP/1.1: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

/// The value of a metric with exactly these labels in Prometheus text, if present.
pub fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    let key = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map(|v| v.trim().parse().unwrap())
}

/// Polls `f` until it returns `Some`, for at most `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(started.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A program the suite drives for real: `$var`, or `name` on the `PATH`. `None` (after
/// saying so) when it is missing outside CI; a failure under CI (`CI` or
/// `BWX_REQUIRE_SERVERS` set, as `.ci/run` does), where `.ci/run` installs it.
pub fn program(var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none() && std::env::var_os("BWX_REQUIRE_SERVERS").is_none(),
            "{name} is missing: .ci/run installs it (or set {var})"
        );
        eprintln!("note: {name} is not installed (set {var}); this case checks nothing here");
    }
    found
}
