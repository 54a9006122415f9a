//! The live page at `GET /`, in headless Chromium (Debian's `chromium`), driven over the
//! DevTools protocol on a pipe (`--remote-debugging-pipe`: NUL-separated JSON messages on
//! file descriptors 3 and 4): it draws every step of the flow and its counters move.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Flow, eventually, flow, program};

/// A headless Chromium and our ends of its DevTools pipe.
struct Chromium {
    child: Child,
    to: File,
    from: BufReader<File>,
    next_id: u64,
}

fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    (fds[0], fds[1])
}

impl Chromium {
    fn launch(binary: &Path, profile: &Path) -> Chromium {
        let (chrome_reads, we_write) = pipe();
        let (we_read, chrome_writes) = pipe();
        let mut command = Command::new(binary);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: fcntl and dup2 are async-signal-safe. The ends are first copied above
        // 10, so that neither is 3 or 4 when those are replaced; the copies made by dup2
        // are not close-on-exec, the originals are.
        unsafe {
            command.pre_exec(move || {
                let reads = libc::fcntl(chrome_reads, libc::F_DUPFD_CLOEXEC, 10);
                let writes = libc::fcntl(chrome_writes, libc::F_DUPFD_CLOEXEC, 10);
                if reads < 0 || writes < 0 || libc::dup2(reads, 3) < 0 || libc::dup2(writes, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        // SAFETY: each descriptor came from pipe2 above and is owned by exactly one File or
        // closed here once.
        unsafe {
            libc::close(chrome_reads);
            libc::close(chrome_writes);
            Chromium {
                child,
                to: File::from_raw_fd(we_write),
                from: BufReader::new(File::from_raw_fd(we_read)),
                next_id: 0,
            }
        }
    }

    /// Calls a DevTools method and returns its result (events on the way are skipped).
    fn call(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.next_id += 1;
        let mut message = json!({"id": self.next_id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.to.write_all(message.to_string().as_bytes()).unwrap();
        self.to.write_all(b"\0").unwrap();
        loop {
            let mut raw = Vec::new();
            let n = self.from.read_until(0, &mut raw).unwrap();
            assert!(n > 0, "Chromium closed its DevTools pipe");
            raw.pop();
            let reply: Value = serde_json::from_slice(&raw).unwrap();
            if reply["id"] == json!(self.next_id) {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the page shows: how often it refreshed, the steps of its graph and table rows.
const READ_PAGE: &str = r#"JSON.stringify({
    refreshes: Number(document.body.dataset.refreshes),
    title: document.title,
    nodes: [...document.querySelectorAll('#graph .node')].map(g => g.dataset.step),
    edges: document.querySelectorAll('#graph .edge').length,
    rows: [...document.querySelectorAll('#steps tbody tr')].map(tr => ({
        step: tr.dataset.step,
        inp: tr.querySelector('.in').textContent,
        out: tr.querySelector('.out').textContent,
        outRate: tr.querySelector('.out-rate').textContent,
    })),
    phase: document.getElementById('phase').textContent,
})"#;

fn row<'a>(page: &'a Value, step: &str) -> &'a Value {
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["step"] == step)
        .unwrap_or_else(|| panic!("no row for {step}: {page}"))
}

fn number(text: &Value) -> f64 {
    text.as_str().unwrap().parse().unwrap_or(0.0)
}

#[test]
fn the_live_page_draws_the_steps_and_its_counters_move() {
    let Some(chromium) = program("BWX_CHROMIUM", "chromium") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut run = Flow::start(
        "trickle",
        &[
            "run",
            "-s",
            "200ms",
            "--dataflow-api",
            "--dataflow-api-bind",
            "127.0.0.1",
            "--dataflow-api-port",
            "0",
            "--dataflow-api-cache-path",
            tmp.path().to_str().unwrap(),
        ],
        &[("RUST_LOG", "info")],
    );
    let addr = run.api_addr();
    let mut browser = Chromium::launch(&chromium, &tmp.path().join("profile"));
    let target = browser.call(
        "Target.createTarget",
        json!({"url": format!("http://{addr}/")}),
        None,
    );
    let attached = browser.call(
        "Target.attachToTarget",
        json!({"targetId": target["targetId"], "flatten": true}),
        None,
    );
    let session = attached["sessionId"].as_str().unwrap().to_string();
    let read = |browser: &mut Chromium| -> Value {
        let result = browser.call(
            "Runtime.evaluate",
            json!({"expression": READ_PAGE, "returnByValue": true}),
            Some(&session),
        );
        serde_json::from_str(result["result"]["value"].as_str().unwrap_or("{}")).unwrap_or(Value::Null)
    };
    let first = eventually(Duration::from_secs(30), "the page refreshes", || {
        let page = read(&mut browser);
        (page["refreshes"].as_u64()? >= 2).then_some(page)
    });
    let steps: Vec<String> = flow("trickle").steps().iter().map(|s| s.id.to_string()).collect();
    assert_eq!(first["nodes"], json!(steps), "{first}");
    assert_eq!(first["edges"], json!(steps.len() - 1));
    assert_eq!(first["title"], "ops · bwx dataflow");
    assert_eq!(first["phase"], "running");
    let refreshes = first["refreshes"].as_u64().unwrap();
    let later = eventually(Duration::from_secs(30), "more refreshes", || {
        let page = read(&mut browser);
        (page["refreshes"].as_u64()? >= refreshes + 2).then_some(page)
    });
    // The page itself updated: the same rows show larger counts, and a rate.
    for (step, field) in [
        ("ops.inp", "out"),
        ("ops.double", "inp"),
        ("ops.sum", "out"),
        ("ops.out", "inp"),
    ] {
        let (before, after) = (
            number(&row(&first, step)[field]),
            number(&row(&later, step)[field]),
        );
        assert!(after > before, "{step} {field}: {before} then {after}");
    }
    assert!(number(&row(&later, "ops.inp")["outRate"]) > 0.0, "{later}");

    let shot = browser.call("Page.captureScreenshot", json!({"format": "png"}), Some(&session));
    assert!(shot["data"].as_str().is_some_and(|d| d.len() > 1000));
    drop(browser);
    run.signal(libc::SIGTERM);
    assert_eq!(run.finish(Duration::from_secs(20)).status.code(), Some(143));
}
