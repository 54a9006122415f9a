//! The progress line: drawn when stderr is a terminal (a pseudo-terminal here), kept out of
//! piped output, off with --no-progress.

use std::fs::File;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::process::Stdio;

use crate::harness::{child_command, run};

/// Runs the slow flow with stderr on a new pseudo-terminal and stdout on a pipe; returns
/// what each received.
fn on_a_terminal(args: &[&str]) -> (String, String) {
    let (mut leader, mut follower) = (0, 0);
    // SAFETY: openpty writes two descriptors; the null pointers ask for defaults.
    let opened = unsafe {
        libc::openpty(
            &mut leader,
            &mut follower,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0);
    // SAFETY: each descriptor is owned by exactly one File from here on.
    let (leader, follower) = unsafe { (File::from_raw_fd(leader), File::from_raw_fd(follower)) };
    let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    let mut command = child_command(&args);
    command
        .env(crate::common::flow_binary::SCENARIO, "slow")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(follower);
    let child = command.spawn().unwrap();
    drop(command);
    let reader = std::thread::spawn(move || {
        let mut leader = leader;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // Reading fails (EIO) once the child, the terminal's last user, is gone.
        while let Ok(n) = leader.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let terminal = reader.join().unwrap();
    (terminal, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_terminal_gets_a_progress_line_and_the_pipe_only_the_output() {
    let (terminal, stdout) = on_a_terminal(&["run", "-s", "100ms"]);
    // Redrawn in place: a cleared line, then `flow: epoch N · read R (r/s) · written ...`.
    assert!(terminal.contains("\r\x1b[2Kops: epoch "), "{terminal:?}");
    let last = terminal
        .rsplit("\r\x1b[2K")
        .find(|l| l.starts_with("ops: epoch "))
        .unwrap();
    assert!(
        last.contains(" · read ") && last.contains(" · written "),
        "{last:?}"
    );
    // Log lines on a terminal carry colours; the line is cleared before each.
    assert!(
        terminal.contains("\x1b[32m INFO\x1b[0m") || terminal.contains("\x1b[32mINFO"),
        "{terminal:?}"
    );
    assert!(!stdout.contains("epoch"), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("out: ")).count() as u64,
        crate::harness::kept()
    );

    let (quiet, _) = on_a_terminal(&["run", "-s", "100ms", "--no-progress"]);
    assert!(!quiet.contains("ops: epoch"), "{quiet:?}");
    assert!(quiet.contains("flow 'ops' finished"), "{quiet:?}");
}

#[test]
fn a_pipe_gets_no_progress_line() {
    let done = run("slow", &["run", "-s", "100ms"], &[]);
    assert!(done.status.success());
    assert_eq!(done.stderr, "");
}
