//! The dataflow API of a running flow binary: Bytewax's environment contract, metrics,
//! the dataflow, the status.

use std::time::Duration;

use crate::harness::{Flow, ITEMS, eventually, flow, http_get, kept, metric};

/// The sum over workers of a per-step metric.
pub fn step_total(text: &str, name: &str, step: &str) -> f64 {
    let (only, first) = (
        format!("{name}{{step_id=\"{step}\"}} "),
        format!("{name}{{step_id=\"{step}\","),
    );
    text.lines()
        .filter(|l| l.starts_with(&only) || l.starts_with(&first))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[test]
fn the_api_serves_metrics_the_dataflow_and_the_status_as_bytewax_does() {
    let cache = tempfile::tempdir().unwrap();
    let cache_path = cache.path().to_str().unwrap();
    let mut run = Flow::start(
        "linger",
        &["run", "-w", "2", "-s", "100ms"],
        &[
            ("RUST_LOG", "info"),
            ("BYTEWAX_DATAFLOW_API_ENABLED", "true"),
            ("BYTEWAX_DATAFLOW_API_PORT", "0"),
            ("BWX_DATAFLOW_API_BIND", "127.0.0.1"),
            ("BYTEWAX_DATAFLOW_API_CACHE_PATH", cache_path),
        ],
    );
    let addr = run.api_addr();

    let (code, dataflow) = http_get(addr, "/dataflow");
    assert_eq!(code, 200);
    assert_eq!(dataflow, flow("linger").to_json());
    let cached = std::fs::read_to_string(cache.path().join("dataflow.json")).unwrap();
    assert_eq!(cached, dataflow);

    // Every item read is counted once, whatever the batches and workers.
    let text = eventually(Duration::from_secs(30), "all items counted", || {
        let (_, text) = http_get(addr, "/metrics");
        (step_total(&text, "bytewax_item_inp_count_total", "ops.out") == kept() as f64).then_some(text)
    });
    let total = |name, step| step_total(&text, name, step);
    let (inp, out) = ("bytewax_item_inp_count_total", "bytewax_item_out_count_total");
    assert_eq!(total(out, "ops.inp"), ITEMS as f64, "{text}");
    assert_eq!(
        (total(inp, "ops.double"), total(out, "ops.double")),
        (ITEMS as f64, ITEMS as f64)
    );
    assert_eq!(
        (total(inp, "ops.keep"), total(out, "ops.keep")),
        (ITEMS as f64, kept() as f64)
    );
    assert_eq!(
        (total(inp, "ops.sum"), total(out, "ops.sum")),
        (kept() as f64, kept() as f64)
    );
    assert_eq!(total(inp, "ops.out"), kept() as f64);
    // Batches of 50 from one partition: the histogram saw them all.
    assert_eq!(
        total("bytewax_inp_part_next_batch_size_sum", "ops.inp"),
        ITEMS as f64
    );
    assert!(total("bytewax_flat_map_batch_duration_seconds_count", "ops.double") >= 1.0);
    assert!(
        total(
            "bytewax_stateful_batch_on_batch_duration_seconds_count",
            "ops.sum"
        ) >= 1.0
    );
    assert!(total("bytewax_out_part_write_batch_duration_seconds_count", "ops.out") >= 1.0);
    // Epochs go on while the input lingers, and every step keeps up.
    let text = eventually(Duration::from_secs(20), "epochs go on", || {
        let (_, text) = http_get(addr, "/metrics");
        (metric(&text, "bwx_epoch", "worker_index=\"0\"")? >= 2.0).then_some(text)
    });
    assert!(
        metric(
            &text,
            "bwx_step_frontier_lag_seconds",
            "step_id=\"ops.sum\",worker_index=\"1\""
        )
        .is_some()
    );
    assert!(text.contains("process_resident_memory_bytes"), "{text}");

    let (code, status) = http_get(addr, "/status");
    assert_eq!(code, 200, "{status}");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["flow_id"], "ops");
    assert_eq!(status["phase"], "running");
    assert_eq!(status["ready"], true);
    assert_eq!(status["resumed"], serde_json::Value::Null);
    assert_eq!(status["items_read"], ITEMS);
    assert_eq!(status["items_written"], kept());
    let workers = status["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    assert!(
        workers
            .iter()
            .all(|w| w["state"] == "running" && w["epoch"].as_u64().is_some())
    );
    assert_eq!(http_get(addr, "/status/live").0, 200);

    let (code, page) = http_get(addr, "/");
    assert_eq!(code, 200);
    assert!(page.contains("<title>"), "{page}");

    run.signal(libc::SIGTERM);
    let done = run.finish(Duration::from_secs(20));
    assert_eq!(done.status.code(), Some(143), "{}", done.stderr);
}

#[test]
fn flags_give_each_process_of_a_cluster_its_own_port() {
    let ports: Vec<u16> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect::<Vec<_>>()
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    // Two consecutive free ports.
    let base = (20_000..60_000u16)
        .find(|p| {
            !ports.contains(p)
                && std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", *p + 1)).is_ok()
        })
        .unwrap();
    let base_arg = base.to_string();
    let run = Flow::start(
        "linger",
        &[
            "run",
            "--processes",
            "2",
            "--dataflow-api",
            "--dataflow-api-bind",
            "127.0.0.1",
            "--dataflow-api-port",
            &base_arg,
            "--dataflow-api-cache-path",
            std::env::temp_dir().to_str().unwrap(),
        ],
        &[],
    );
    for (process, port) in [(0, base), (1, base + 1)] {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let status = eventually(Duration::from_secs(30), "the process's API", || {
            std::net::TcpStream::connect(addr).ok()?;
            let (_, body) = http_get(addr, "/status");
            let status: serde_json::Value = serde_json::from_str(&body).ok()?;
            (status["phase"] == "running").then_some(status)
        });
        assert_eq!(status["process_id"], process);
        assert_eq!(status["processes"], 2);
    }
    run.signal(libc::SIGTERM);
    let done = run.finish(Duration::from_secs(20));
    assert_eq!(done.status.code(), Some(143), "{}", done.stderr);
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let done = crate::harness::run(
        "quick",
        &[
            "run",
            "--dataflow-api",
            "--dataflow-api-bind",
            "127.0.0.1",
            "--dataflow-api-port",
            &port,
        ],
        &[],
    );
    assert_eq!(done.status.code(), Some(1));
    assert!(
        done.stderr.contains(&format!(
            "error: the dataflow API cannot listen on 127.0.0.1:{port}"
        )),
        "{}",
        done.stderr
    );
    assert_eq!(done.stdout, "", "nothing ran");
}

/// The `monitored` example, built for this test.
fn monitored_example() -> std::path::PathBuf {
    let built = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "monitored"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(built.success(), "cannot build the monitored example");
    // Test binaries live in `<target>/<profile>/deps`, examples in `<target>/<profile>/examples`.
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(std::path::Path::parent).unwrap();
    profile
        .join("examples")
        .join(format!("monitored{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn a_flow_serves_its_own_metrics_beside_bwx_s() {
    // About 2 s of orders: the counter is read while the flow runs.
    let orders: u64 = 40_000;
    let big = (0..orders)
        .filter(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 1000 >= 900)
        .count() as f64;
    let cache = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(monitored_example())
        .args([
            "run",
            "--dataflow-api",
            "--dataflow-api-bind",
            "127.0.0.1",
            "--dataflow-api-port",
            "0",
        ])
        .arg("--dataflow-api-cache-path")
        .arg(cache.path())
        .env("RUST_LOG", "info")
        .env("MONITORED_ORDERS", orders.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let addr: std::net::SocketAddr = loop {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0,
            "no API line"
        );
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    let seen = eventually(Duration::from_secs(30), "the flow's own counter", || {
        let (_, text) = http_get(addr, "/metrics");
        let value: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("monitored_big_orders_total "))?
            .parse()
            .ok()?;
        assert!(value <= big, "{value} big orders of {big}");
        (value > 0.0).then_some(text)
    });
    assert!(seen.contains("# HELP monitored_big_orders_total orders of 900 or more"));
    assert!(seen.contains("bytewax_item_out_count_total{step_id=\"monitored.big\",worker_index=\"0\"}"));
    let status = child.wait().unwrap();
    assert!(status.success());
}
