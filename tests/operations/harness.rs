//! The flow binary the cases run, and helpers to drive it.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bwx::cli::Runner;
use bwx::prelude::*;
use bwx::testing::{TestingEvent, TestingSource};

use crate::common::PrintSink;
use crate::common::flow_binary;
pub use crate::common::flow_binary::{Finished, child_command};

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
    let Some((args, scenario)) = flow_binary::invocation("ops-flow") else {
        return;
    };
    let code = Runner::new(flow(&scenario))
        .version("7.8.9")
        .process_command(child_command)
        .exit_code_from(args);
    std::process::exit(i32::from(code));
}

/// A running flow binary of these cases.
pub use crate::common::flow_binary::Running as Flow;

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
        command
            .env(flow_binary::SCENARIO, scenario)
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        Flow::spawn(command)
    }

    /// The address of the dataflow API, from its log line (run with `RUST_LOG=info`).
    pub fn api_addr(&mut self) -> SocketAddr {
        let line = self.wait_for_stderr("dataflow API listening on http://", Duration::from_secs(20));
        let rest = line.split("http://").nth(1).unwrap();
        rest.split('/').next().unwrap().parse().unwrap()
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
