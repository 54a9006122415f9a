//! Bytewax's metric names, pinned, and a real Prometheus server scraping a running flow.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::api::step_total;
use crate::harness::{Flow, ITEMS, eventually, http_get, kept, program};

/// Every metric REFERENCE.md (section 2.7) lists for Bytewax's Rust core, which
/// `/metrics` must serve under the same names (histograms as `_bucket`, `_sum`, `_count`).
const BYTEWAX_METRICS: [&str; 11] = [
    "bytewax_item_inp_count_total",
    "bytewax_item_out_count_total",
    "bytewax_inp_part_next_batch_duration_seconds",
    "bytewax_inp_part_next_batch_size",
    "bytewax_out_part_write_batch_duration_seconds",
    "bytewax_flat_map_batch_duration_seconds",
    "bytewax_stateful_batch_on_batch_duration_seconds",
    "bytewax_stateful_batch_on_notify_duration_seconds",
    "bytewax_stateful_batch_on_eof_duration_seconds",
    "bytewax_stateful_batch_notify_at_duration_seconds",
    "bytewax_snapshot_duration_seconds",
];

/// bwx's own, served beside them (documented in `bwx::monitor`).
const BWX_METRICS: [&str; 9] = [
    "bwx_epoch",
    "bwx_step_frontier_epoch",
    "bwx_step_frontier_lag_seconds",
    "bwx_step_keys",
    "bwx_snapshot_bytes_total",
    "bwx_snapshot_commit_duration_seconds",
    "bwx_snapshot_last_epoch",
    "bwx_snapshot_last_timestamp_seconds",
    "process_cpu_seconds_total",
];

/// The `bytewax_*` names of REFERENCE.md's section 2.7, braces expanded.
/// A quoted prefix (`bytewax_`, `bytewax_*`) names no metric and is skipped.
fn reference_names(text: &str) -> Vec<String> {
    let section = text
        .split("### 2.7")
        .nth(1)
        .and_then(|s| s.split("\n### ").next())
        .expect("REFERENCE.md has a section 2.7");
    let mut names = Vec::new();
    for quoted in section.split('`').skip(1).step_by(2) {
        if !quoted.starts_with("bytewax_") || quoted.ends_with('_') || quoted.contains('*') {
            continue;
        }
        match (quoted.find('{'), quoted.find('}')) {
            (Some(open), Some(close)) => {
                for alt in quoted[open + 1..close].split(',') {
                    names.push(format!("{}{alt}{}", &quoted[..open], &quoted[close + 1..]));
                }
            }
            _ => names.push(quoted.to_string()),
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn reference_names_expand_braces_and_skip_prefixes() {
    let text = "### 2.7 Metrics\nprefix `bytewax_` or `bytewax_*`: `bytewax_a_total`, \
                `bytewax_b_{x,y}_seconds`\n### 2.8 Next\n`bytewax_elsewhere`";
    assert_eq!(
        reference_names(text),
        ["bytewax_a_total", "bytewax_b_x_seconds", "bytewax_b_y_seconds"]
    );
}

#[test]
fn the_pinned_names_are_those_of_the_reference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/REFERENCE.md");
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("note: {path} is not beside the repository; the pinned list stands alone");
        return;
    };
    let mut pinned: Vec<String> = BYTEWAX_METRICS.iter().map(|s| s.to_string()).collect();
    pinned.sort();
    assert_eq!(reference_names(&text), pinned);
}

#[test]
fn metrics_have_bytewax_names_and_pass_promtool() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let dir_arg = dir.to_str().unwrap();
    assert!(
        crate::harness::run("quick", &["recovery", "init", dir_arg, "2"], &[])
            .status
            .success()
    );
    let mut run = Flow::start(
        "linger",
        &[
            "run",
            "-w",
            "2",
            "-r",
            dir_arg,
            "-s",
            "100ms",
            "-b",
            "1m",
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
    // Snapshots of a few epochs after every item went through.
    let text = eventually(Duration::from_secs(30), "snapshots after the items", || {
        let (_, text) = http_get(addr, "/metrics");
        let written = step_total(&text, "bytewax_item_inp_count_total", "ops.out");
        let epoch = crate::harness::metric(&text, "bwx_snapshot_last_epoch", "partition=\"1\"")?;
        (written == kept() as f64 && epoch >= 3.0).then_some(text)
    });
    for name in BYTEWAX_METRICS.iter().chain(&BWX_METRICS) {
        assert!(
            text.contains(&format!("\n# TYPE {name} ")),
            "/metrics lacks {name}:\n{text}"
        );
    }
    for step in ["ops.double", "ops.keep", "ops.key", "ops.fmt"] {
        assert!(text.contains(&format!(
            "bytewax_flat_map_batch_duration_seconds_count{{step_id=\"{step}\",worker_index=\"0\"}}"
        )));
    }
    assert!(step_total(&text, "bwx_snapshot_bytes_total", "ops.sum") > 0.0);
    assert_eq!(step_total(&text, "bwx_step_keys", "ops.sum"), 7.0);

    if let Some(promtool) = program("BWX_PROMTOOL", "promtool") {
        let mut check = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    run.signal(libc::SIGTERM);
    assert_eq!(run.finish(Duration::from_secs(20)).status.code(), Some(143));
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs an instant query against Prometheus's HTTP API: each series' labels and value.
fn query(prometheus: std::net::SocketAddr, promql: &str) -> Vec<(serde_json::Value, f64)> {
    let (code, body) = http_get(prometheus, &format!("/api/v1/query?query={}", encode(promql)));
    assert_eq!(code, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["status"], "success", "{body}");
    reply["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"].clone(),
                r["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// A process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prometheus_scrapes_counters_that_match_the_items_processed() {
    let Some(prometheus) = program("BWX_PROMETHEUS", "prometheus") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut run = Flow::start(
        "linger",
        &[
            "run",
            "-w",
            "2",
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
    let target = run.api_addr();
    let config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: bwx\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let web = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = Killed(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Prometheus has scraped the flow after every item went through.
    eventually(Duration::from_secs(60), "Prometheus sees every item", || {
        std::net::TcpStream::connect(web).ok()?;
        if http_get(web, "/-/ready").0 != 200 {
            return None;
        }
        let result = query(web, "sum(bytewax_item_inp_count_total{step_id=\"ops.out\"})");
        (result.first()?.1 == kept() as f64).then_some(())
    });
    let by_step = |metric: &str| -> BTreeMap<String, f64> {
        query(web, &format!("sum by (step_id) ({metric})"))
            .into_iter()
            .map(|(labels, v)| (labels["step_id"].as_str().unwrap().to_string(), v))
            .collect()
    };
    let (items, kept) = (ITEMS as f64, kept() as f64);
    let expected_in: BTreeMap<String, f64> = [
        ("ops.double", items),
        ("ops.keep", items),
        ("ops.key", kept),
        ("ops.sum", kept),
        ("ops.fmt", kept),
        ("ops.out", kept),
    ]
    .into_iter()
    .map(|(s, v)| (s.to_string(), v))
    .collect();
    assert_eq!(by_step("bytewax_item_inp_count_total"), expected_in);
    let expected_out: BTreeMap<String, f64> = [
        ("ops.inp", items),
        ("ops.double", items),
        ("ops.keep", kept),
        ("ops.key", kept),
        ("ops.sum", kept),
        ("ops.fmt", kept),
    ]
    .into_iter()
    .map(|(s, v)| (s.to_string(), v))
    .collect();
    assert_eq!(by_step("bytewax_item_out_count_total"), expected_out);
    // Both workers are scraped: the input's batches all came from worker 0's partition.
    let workers = query(web, "bytewax_item_out_count_total{step_id=\"ops.inp\"}");
    assert_eq!(workers.len(), 2);
    assert_eq!(query(web, "up{job=\"bwx\"}")[0].1, 1.0);
    drop(server);
    run.signal(libc::SIGTERM);
    assert_eq!(run.finish(Duration::from_secs(20)).status.code(), Some(143));
}
