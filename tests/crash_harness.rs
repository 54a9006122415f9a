//! The crash harness: a keyed flow with a replayable source and a file sink runs as a
//! cluster of processes with recovery; processes are killed with SIGKILL, the whole cluster
//! is restarted (rescaling 2 → 1 → 3 processes across restarts), and the final files are
//! compared with a fault-free run. Even seeds keep the recovery partitions in one directory
//! every process opens; odd seeds give each process ("host") its own directory, and before
//! each restart move partition `i` to the directory of process `i % processes`, as the
//! procedure for adding or removing hosts says.
//!
//! While the flow runs, the harness backs up every partition at random moments (as a backup
//! tool would, with SQLite's `VACUUM INTO`); before a restart it restores a random subset of
//! partitions, each from a random backup of the last run taken less than
//! half the backup interval before the run ended (garbage collection only moves while a flow
//! runs). Partitions from different moments must still resume exactly.
//!
//! Half of the kills (rounded up) are at the recovery code's named crash points
//! (`BWX_FAILPOINT`, see `bwx-runtime/src/recovery/failpoint.rs`), in turn: during the
//! first write of an execution to a partition, between two partitions' writes, during
//! garbage collection and during resume; the process kills itself there and the harness
//! checks that it died of SIGKILL. The other kills are at seeded random times.
//!
//! CI runs two seeds (one of each layout) with 11 kills each (about 30 s). A long soak (10
//! kills per seed, or `BWX_HARNESS_KILLS` per seed):
//!
//! ```text
//! BWX_SOAK_SEEDS=50 cargo test --release --test crash_harness -- --nocapture
//! ```
//!
//! Recovery time in the summary is from the restart of the cluster until every process
//! has opened its partitions.
//!
//! The test binary re-executes itself as the cluster's processes (`harness_process`).

mod common;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bwx::inputs::ConnectorError;
use bwx::prelude::*;
use bwx::recovery::SqliteRecovery;
use common::numbers::{Numbers, Rng};

const NUMBERS: Numbers = Numbers {
    parts: 4,
    items: 9000,
    keys: 5,
    batch: 6,
    pace: Duration::from_millis(4),
};
const OUT_PARTS: usize = 3;
/// The store's backup interval (`-b`): superseded snapshots are kept this long.
const BACKUP_INTERVAL: Duration = Duration::from_secs(1);
const PARTITIONS: usize = 4;

/// Appends lines to one file per partition; its position is the file length, and a
/// resumed partition truncates to it (exactly-once output).
struct LinesSink(PathBuf);

struct LinesPart {
    file: File,
    len: u64,
}

impl FixedPartitionedSink for LinesSink {
    type Key = String;
    type Value = String;
    type State = u64;
    type Partition = LinesPart;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok((0..OUT_PARTS).map(|p| format!("out-{p}")).collect())
    }

    fn build_part(&self, _: &StepId, part: &str, resume: Option<u64>) -> Result<LinesPart, ConnectorError> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(self.0.join(part))?;
        let len = resume.unwrap_or(0);
        file.set_len(len)?;
        Ok(LinesPart { file, len })
    }
}

impl StatefulSinkPartition for LinesPart {
    type Value = String;
    type State = u64;

    fn write_batch(&mut self, values: &mut Vec<String>) -> Result<(), ConnectorError> {
        let mut buf = String::new();
        for v in values.drain(..) {
            buf.push_str(&v);
            buf.push('\n');
        }
        use std::io::{Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(self.len))?;
        self.file.write_all(buf.as_bytes())?;
        self.len += buf.len() as u64;
        Ok(())
    }

    fn snapshot(&self) -> u64 {
        self.len
    }
}

fn flow(out: &Path) -> Dataflow {
    let flow = Dataflow::new("harness");
    NUMBERS
        .sum_lines(&flow)
        .output("out", LinesSink(out.to_path_buf()));
    flow
}

/// One process of the cluster, when the harness starts this binary as one.
#[test]
fn harness_process() {
    let Ok(dir) = std::env::var("BWX_HARNESS_DIR") else {
        return;
    };
    let out = PathBuf::from(std::env::var("BWX_HARNESS_OUT").unwrap());
    let addrs: Vec<String> = std::env::var("BWX_HARNESS_ADDRS")
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    let me: usize = std::env::var("BWX_HARNESS_PROC").unwrap().parse().unwrap();
    let hook = SqliteRecovery::open(&dir, BACKUP_INTERVAL, "harness").unwrap();
    println!("resumed");
    std::io::stdout().flush().unwrap();
    let config = RunConfig::default()
        .epoch_interval(Duration::from_millis(40))
        .recovery(hook);
    bwx::cluster_main(&flow(&out), addrs, me, 1, config).unwrap();
}

fn free_ports(n: usize) -> Vec<String> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| format!("127.0.0.1:{}", l.local_addr().unwrap().port()))
        .collect()
}

struct Cluster {
    children: Vec<Child>,
    ready: mpsc::Receiver<usize>,
}

/// Starts a cluster of `processes`; `failpoint` arms `BWX_FAILPOINT` in one process.
/// Starts a cluster of one process per directory in `dirs`; `failpoint` arms
/// `BWX_FAILPOINT` in one process.
fn start(dirs: &[PathBuf], out: &Path, failpoint: Option<(usize, &str)>) -> Cluster {
    let processes = dirs.len();
    let addrs = free_ports(processes).join(",");
    let (tx, ready) = mpsc::channel();
    let children = (0..processes)
        .map(|p| {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.args(["harness_process", "--exact", "--nocapture", "--test-threads", "1"])
                .env("BWX_HARNESS_DIR", &dirs[p])
                .env("BWX_HARNESS_OUT", out)
                .env("BWX_HARNESS_ADDRS", &addrs)
                .env("BWX_HARNESS_PROC", p.to_string())
                .env_remove("BWX_FAILPOINT")
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            if let Some((victim, spec)) = failpoint
                && victim == p
            {
                cmd.env("BWX_FAILPOINT", spec);
            }
            let mut child = cmd.spawn().unwrap();
            let stdout = child.stdout.take().unwrap();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.contains("resumed") {
                        let _ = tx.send(p);
                    }
                }
            });
            child
        })
        .collect();
    Cluster { children, ready }
}

/// Waits for every process; `None` if one had to be killed after `limit`.
fn wait_all(children: &mut [Child], limit: Duration) -> Vec<bool> {
    let until = Instant::now() + limit;
    let mut done: Vec<Option<bool>> = vec![None; children.len()];
    while done.iter().any(Option::is_none) {
        for (c, d) in children.iter_mut().zip(done.iter_mut()) {
            if d.is_none()
                && let Some(status) = c.try_wait().unwrap()
            {
                *d = Some(status.success());
            }
        }
        if Instant::now() > until {
            for (c, d) in children.iter_mut().zip(done.iter_mut()) {
                if d.is_none() {
                    let _ = c.kill();
                    let _ = c.wait();
                    *d = Some(false);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done.into_iter().map(|d| d.unwrap_or(false)).collect()
}

fn lines(out: &Path) -> BTreeMap<String, usize> {
    let mut all = BTreeMap::new();
    for p in 0..OUT_PARTS {
        let text = std::fs::read_to_string(out.join(format!("out-{p}"))).unwrap_or_default();
        for line in text.lines() {
            *all.entry(line.to_string()).or_insert(0) += 1;
        }
    }
    all
}

#[derive(Default)]
struct Summary {
    runs: usize,
    kills: usize,
    restarts: usize,
    mismatches: usize,
    lost: usize,
    duplicates: usize,
    recovery_ms: Vec<u128>,
    /// Backups taken, restarts from restored partitions, and partitions restored.
    backups: usize,
    restores: usize,
    restored_partitions: usize,
    /// Per crash point: how many runs armed it, and how many processes died of SIGKILL there.
    failpoints: [(usize, usize); FAILPOINTS.len()],
}

/// The recovery code's crash points, with the largest pass count the harness arms each at.
const FAILPOINTS: [(&str, u64); 4] = [
    ("first-epoch", 1),
    ("after-snapshot-write", 10),
    ("during-gc", 10),
    ("during-resume", 1),
];

/// Where the recovery partitions are: in one directory every process opens, or spread over
/// one directory per process ("host"), moved between them as the documented procedure says
/// when the number of processes changes.
struct Layout {
    root: PathBuf,
    per_host: bool,
    /// The directory that holds each partition now.
    at: Vec<PathBuf>,
}

fn part_name(p: usize) -> String {
    format!("part-{p}.sqlite3")
}

impl Layout {
    fn new(root: PathBuf, per_host: bool) -> Layout {
        bwx::recovery::init_dir(&root, PARTITIONS).unwrap();
        Layout {
            at: vec![root.clone(); PARTITIONS],
            root,
            per_host,
        }
    }

    /// The directory of each of `processes` processes; per host, partition `i` is moved to
    /// the directory of process `i % processes` first (every process is stopped).
    fn arrange(&mut self, processes: usize) -> Vec<PathBuf> {
        if !self.per_host {
            return vec![self.root.clone(); processes];
        }
        let hosts: Vec<PathBuf> = (0..processes)
            .map(|h| self.root.join(format!("host{h}")))
            .collect();
        for (p, at) in self.at.iter_mut().enumerate() {
            let to = &hosts[p % processes];
            std::fs::create_dir_all(to).unwrap();
            if at != to {
                for suffix in ["", "-wal", "-shm"] {
                    let name = format!("{}{suffix}", part_name(p));
                    if at.join(&name).exists() {
                        std::fs::rename(at.join(&name), to.join(&name)).unwrap();
                    }
                }
                *at = to.clone();
            }
        }
        hosts
    }

    /// Copies every partition into `to`, consistently while it is written.
    fn backup(&self, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for (p, at) in self.at.iter().enumerate() {
            let conn = rusqlite::Connection::open(at.join(part_name(p))).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            conn.execute(
                "VACUUM INTO ?1",
                [to.join(part_name(p)).to_string_lossy().as_ref()],
            )
            .unwrap();
        }
    }

    /// Replaces partition `p` (every process is stopped) with its copy in `from`.
    fn restore(&self, from: &Path, p: usize) {
        let at = &self.at[p];
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(at.join(format!("{}{suffix}", part_name(p))));
        }
        std::fs::copy(from.join(part_name(p)), at.join(part_name(p))).unwrap();
    }
}

fn fresh(base: &Path, name: &str, per_host: bool) -> (Layout, PathBuf) {
    let out = base.join(format!("{name}-out"));
    std::fs::create_dir_all(&out).unwrap();
    (Layout::new(base.join(format!("{name}-db")), per_host), out)
}

/// Even seeds keep the partitions in one directory; odd seeds on each process's own.
fn run_seed(seed: u64, kills: usize, base: &Path, expected: &BTreeMap<String, usize>, s: &mut Summary) {
    let (mut layout, out) = fresh(base, &format!("seed{seed}"), seed % 2 == 1);
    let mut rng = Rng::new(seed);
    // Process counts across restarts: 2 → 1 → 3 → 2 → ...
    let schedule = [2usize, 1, 3];
    let mut killed_at: Option<Instant> = None;
    let mut run = 0usize;
    let mut seed_kills = 0;
    // Backups of the last run that are recent enough to restore.
    let mut recent: Vec<PathBuf> = Vec::new();
    loop {
        let processes = schedule[run % schedule.len()];
        // Every process is down: restore some partitions from recent backups.
        if !recent.is_empty() {
            let mut restored = 0;
            // A random non-empty subset of the partitions.
            let subset = 1 + rng.below((1 << PARTITIONS) - 1);
            for p in 0..PARTITIONS {
                if subset & (1 << p) != 0 {
                    let from = &recent[rng.below(recent.len() as u64) as usize];
                    layout.restore(from, p);
                    restored += 1;
                }
            }
            if restored > 0 {
                s.restores += 1;
                s.restored_partitions += restored;
            }
        }
        // The first kills of a seed (half, rounded up) are at the crash points in turn.
        let armed =
            (seed_kills < kills && seed_kills < kills.div_ceil(2)).then_some(seed_kills % FAILPOINTS.len());
        let victim = armed.map(|_| rng.below(processes as u64) as usize);
        let spec = armed.map(|fp| format!("{}:{}", FAILPOINTS[fp].0, 1 + rng.below(FAILPOINTS[fp].1)));
        if let Some(fp) = armed {
            s.failpoints[fp].0 += 1;
        }
        let dirs = layout.arrange(processes);
        let mut cluster = start(&dirs, &out, victim.zip(spec.as_deref()));
        s.runs += 1;
        if run > 0 {
            s.restarts += 1;
        }
        let started = Instant::now();
        let mut ready = 0;
        let want_kill = seed_kills < kills;
        // Kill times spread over start-up (resume), the first epochs and the run.
        let kill_after = Duration::from_millis(rng.below(500));
        // The backup comes before the kill, in the part of the run after start-up.
        let backup_after = kill_after.mul_f64(0.3 + 0.6 * (rng.below(100) as f64 / 100.0));
        let mut backed_up: Option<(Instant, PathBuf)> = None;
        let mut killed = false;
        if let Some(fp) = armed {
            // The armed process kills itself at the crash point; anything else is a failure.
            let victim = victim.unwrap_or(0);
            let status = loop {
                while cluster.ready.try_recv().is_ok() {
                    ready += 1;
                    if ready == processes && killed_at.take().is_some() {
                        s.recovery_ms.push(started.elapsed().as_millis());
                    }
                }
                if let Some(st) = cluster.children[victim].try_wait().unwrap() {
                    break st;
                }
                let other = cluster
                    .children
                    .iter_mut()
                    .enumerate()
                    .any(|(i, c)| i != victim && c.try_wait().ok().flatten().is_some());
                assert!(
                    !other,
                    "seed {seed} run {run}: a process exited before the one armed with {} did",
                    FAILPOINTS[fp].0
                );
                std::thread::sleep(Duration::from_millis(2));
            };
            assert_eq!(
                status.signal(),
                Some(libc::SIGKILL),
                "seed {seed} run {run}: the process armed with {} ended with {status} instead of dying there",
                FAILPOINTS[fp].0
            );
            s.failpoints[fp].1 += 1;
            killed = true;
            killed_at = Some(Instant::now());
            s.kills += 1;
            seed_kills += 1;
        }
        while !killed {
            while let Ok(_p) = cluster.ready.try_recv() {
                ready += 1;
                if ready == processes && killed_at.take().is_some() {
                    s.recovery_ms.push(started.elapsed().as_millis());
                }
            }
            let exited = cluster
                .children
                .iter_mut()
                .any(|c| c.try_wait().ok().flatten().is_some());
            if exited {
                break;
            }
            if backed_up.is_none() && ready == processes && started.elapsed() >= backup_after {
                let to = base.join(format!("seed{seed}-backup{}", s.backups));
                layout.backup(&to);
                backed_up = Some((Instant::now(), to));
                s.backups += 1;
            }
            if want_kill && started.elapsed() >= kill_after {
                let victim = rng.below(processes as u64) as usize;
                // SAFETY: sending a signal to a child process we own.
                unsafe { libc::kill(cluster.children[victim].id() as i32, libc::SIGKILL) };
                killed = true;
                killed_at = Some(Instant::now());
                s.kills += 1;
                seed_kills += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // Survivors of a kill stop on their own (a lost peer fails the execution); one
        // still waiting to connect is stopped as a supervisor would after a grace period.
        let grace = if killed {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(60)
        };
        let ok = wait_all(&mut cluster.children, grace);
        // Recent enough: the flow ran less than half the backup interval after it.
        recent = backed_up
            .filter(|(at, _)| killed_at.is_some_and(|k| k.duration_since(*at) < BACKUP_INTERVAL / 2))
            .map(|(_, b)| b)
            .into_iter()
            .collect();
        run += 1;
        if !killed && ok.iter().all(|o| *o) {
            break;
        }
        assert!(run < 500, "seed {seed}: no completed run after {run} runs");
    }
    let got = lines(&out);
    for (line, n) in expected {
        let g = got.get(line).copied().unwrap_or(0);
        s.lost += n.saturating_sub(g);
        s.duplicates += g.saturating_sub(*n);
    }
    let wrong: Vec<&String> = got.keys().filter(|l| !expected.contains_key(*l)).collect();
    if !wrong.is_empty() {
        eprintln!(
            "seed {seed}: {} unexpected lines, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
    }
    s.mismatches += wrong.len();
}

#[test]
fn kills_restarts_and_rescaling_lose_nothing() {
    if std::env::var("BWX_HARNESS_DIR").is_ok() {
        return;
    }
    let seeds: u64 = std::env::var("BWX_SOAK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let kills_per_seed = std::env::var("BWX_HARNESS_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if seeds > 2 { 10 } else { 11 });
    let base = tempfile::tempdir().unwrap();
    // The fault-free run, as 2 processes.
    let (mut layout, out) = fresh(base.path(), "clean", false);
    let mut clean = start(&layout.arrange(2), &out, None);
    assert!(
        wait_all(&mut clean.children, Duration::from_secs(60))
            .iter()
            .all(|o| *o)
    );
    let expected = lines(&out);
    assert_eq!(
        expected.values().sum::<usize>() as u64,
        NUMBERS.parts * NUMBERS.items
    );
    let mut summary = Summary::default();
    let started = Instant::now();
    for seed in 0..seeds {
        run_seed(seed, kills_per_seed, base.path(), &expected, &mut summary);
    }
    let mut rec = summary.recovery_ms.clone();
    rec.sort_unstable();
    let median = rec.get(rec.len() / 2).copied().unwrap_or(0);
    let max = rec.last().copied().unwrap_or(0);
    let at_points: Vec<String> = FAILPOINTS
        .iter()
        .zip(&summary.failpoints)
        .map(|((name, _), (_, fired))| format!("{name}:{fired}"))
        .collect();
    println!(
        "crash harness: seeds={seeds} runs={} kills={} (at crash points {}) restarts={} backups={} restores={} (partitions {}) mismatches={} lost={} duplicates={} recovery_median_ms={median} recovery_max_ms={max} elapsed_s={}",
        summary.runs,
        summary.kills,
        at_points.join(","),
        summary.restarts,
        summary.backups,
        summary.restores,
        summary.restored_partitions,
        summary.mismatches,
        summary.lost,
        summary.duplicates,
        started.elapsed().as_secs()
    );
    assert!(summary.kills >= 20, "only {} kills", summary.kills);
    assert!(
        summary.restores >= 2,
        "only {} restarts from restored partitions",
        summary.restores
    );
    for ((name, _), (armed, fired)) in FAILPOINTS.iter().zip(&summary.failpoints) {
        // With at least 8 kills per seed every crash point is armed at least once.
        assert!(*fired >= 1 || kills_per_seed < 8, "no kill at crash point {name}");
        assert_eq!(
            armed, fired,
            "crash point {name}: armed {armed} times, fired {fired}"
        );
    }
    assert_eq!((summary.mismatches, summary.lost, summary.duplicates), (0, 0, 0));
}
