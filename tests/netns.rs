//! A cluster of 3 "hosts", each a Linux network namespace this test creates, connected by a
//! bridge in a namespace of its own, with a 4th namespace for strangers. Every address and
//! route exists only inside these namespaces; all of them are deleted at the end, also when
//! a case fails. Each host runs the flow binary exactly as the Kubernetes StatefulSet of
//! `deploy/kubernetes/` starts a pod: `run` with `BYTEWAX_POD_NAME=flow-N`,
//! `BYTEWAX_STATEFULSET_NAME=flow`, a host file of `flow-N.flow:7101` names (resolved through
//! the namespace's own `/etc/hosts`, as `ip netns exec` mounts it), the recovery variables,
//! `BWX_CLUSTER_SECRET_FILE` and `BWX_BIND_ADDRESS=0.0.0.0`.
//!
//! Cases, each checking the output exactly: the union of the hosts' `DirSink` directories
//! equals the output of one uninterrupted run (which is also computed directly):
//! - strangers connecting to every cluster port during start-up and while running, and a
//!   process with the wrong secret: refused and logged, the cluster runs on;
//! - SIGSTOP of one host: the others stop within the heartbeat timeout naming it; resume;
//! - one host's link taken down (`ip link set ... down`): detected; resume once it is up;
//! - kill -9 of one host at a seeded random moment; resume: 0 lost, 0 duplicated.
//!
//! In these, recovery is in one directory all hosts reach (a shared filesystem). One more
//! case keeps each host's partitions in its own directory, made as an operator makes them
//! (`bwx recovery init DIR N --parts LIST --store-id ID`): kill -9 of one host, then a rescale
//! 3 → 2 → 3 hosts with partition files moved between the directories, a start with a
//! partition left behind refused naming it, and exact output at the end.
//!
//! Needs root and iproute2 (`ip`); `.ci/run` runs it as root. Without them the cases say so
//! and pass, unless `CI` is set, where they fail. By hand:
//!
//! ```text
//! sudo -E cargo test --test netns -- --nocapture        # BWX_NETNS_SEED=7 picks the kill
//! ```

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bwx::cli::Runner;
use bwx::connectors::files::DirSink;
use bwx::prelude::*;
use common::numbers::{Numbers, Rng};

const HOSTS: usize = 3;
const PORT: u16 = 7101;
const NUMBERS: Numbers = Numbers {
    parts: 4,
    items: 1200,
    keys: 5,
    batch: 6,
    pace: Duration::from_millis(5),
};
const HEARTBEAT: Duration = Duration::from_secs(1);
const SECRET: &str = "the secret of the netns test cluster";

const ENV_OUT: &str = "BWX_NETNS_OUT";
const ENV_TARGETS: &str = "BWX_NETNS_TARGETS";

/// Running sums per key, written by each host into its own directory.
fn flow(out: &Path) -> Dataflow {
    let flow = Dataflow::new("flow");
    NUMBERS.sum_lines(&flow).output("out", DirSink::new(out, 3));
    flow
}

/// One host of the cluster, when the test starts this binary as one.
#[test]
fn netns_host_entry() {
    let Ok(out) = std::env::var(ENV_OUT) else { return };
    let code = Runner::new(flow(Path::new(&out))).exit_code_from(["flow", "run"]);
    std::process::exit(i32::from(code));
}

/// A stranger, when the test starts this binary as one: until killed, connects to every
/// target again and again, leaving some connections idle, sending garbage on others and
/// closing others at once (as a port scanner does).
#[test]
fn netns_stranger_entry() {
    let Ok(targets) = std::env::var(ENV_TARGETS) else {
        return;
    };
    let targets: Vec<SocketAddr> = targets.split(',').map(|t| t.parse().unwrap()).collect();
    let mut idle = Vec::new();
    let mut round = 0u64;
    loop {
        for target in &targets {
            let Ok(mut stream) = TcpStream::connect_timeout(target, Duration::from_millis(200)) else {
                continue;
            };
            match round % 3 {
                0 if idle.len() < 30 => idle.push(stream),
                1 => {
                    let garbage: Vec<u8> = (0..4096u64)
                        .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
                        .collect();
                    let _ = stream.write_all(&garbage);
                }
                _ => drop(stream),
            }
        }
        round += 1;
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// Whether this machine can run the cases; panics in CI when it cannot.
fn can_run() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if root && ip {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the network-namespace tests need root and iproute2 (`ip`) in CI"
    );
    eprintln!("skipped: the network-namespace tests need root and iproute2 (`ip`)");
    false
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The namespaces of one case: a switch, 3 hosts and an outsider.
struct Net {
    prefix: String,
    /// Names of the switch's ends of the hosts' links, by host.
    ports: Vec<String>,
}

impl Net {
    fn new(case: &str) -> Net {
        let prefix = format!("bwx{}{case}", std::process::id());
        let net = Net {
            ports: (0..=HOSTS)
                .map(|h| format!("v{}{case}{h}", std::process::id() % 100_000))
                .collect(),
            prefix,
        };
        let sw = net.switch();
        ip(&["netns", "add", &sw]);
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", "br0", "up"]);
        let mut hosts_file = String::from("127.0.0.1 localhost\n");
        for h in 0..HOSTS {
            hosts_file.push_str(&format!("10.77.0.{} flow-{h}.flow\n", h + 1));
        }
        for h in 0..=HOSTS {
            let ns = net.ns(h);
            ip(&["netns", "add", &ns]);
            ip(&[
                "-n",
                &sw,
                "link",
                "add",
                &net.ports[h],
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns,
            ]);
            ip(&["-n", &sw, "link", "set", &net.ports[h], "master", "br0", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.77.0.{}/24", h + 1),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            // `ip netns exec` mounts these over /etc/hosts in the namespace.
            let etc = PathBuf::from("/etc/netns").join(&ns);
            std::fs::create_dir_all(&etc).unwrap();
            std::fs::write(etc.join("hosts"), &hosts_file).unwrap();
        }
        net
    }

    fn switch(&self) -> String {
        format!("{}-sw", self.prefix)
    }

    /// Host `h`'s namespace; `HOSTS` is the outsider's.
    fn ns(&self, h: usize) -> String {
        format!("{}-h{h}", self.prefix)
    }

    fn link(&self, h: usize, up: bool) {
        ip(&[
            "-n",
            &self.switch(),
            "link",
            "set",
            &self.ports[h],
            if up { "up" } else { "down" },
        ]);
    }

    /// This test binary, running test `entry` inside namespace `ns`.
    fn command(&self, ns: &str, entry: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns])
            .arg(std::env::current_exe().unwrap())
            .args([entry, "--exact", "--nocapture", "--test-threads=1", "-q"])
            .stdin(Stdio::null());
        for var in [
            "BYTEWAX_PROCESS_ID",
            "BYTEWAX_ADDRESSES",
            "BWX_CLUSTER_SECRET",
            "RUST_LOG",
        ] {
            command.env_remove(var);
        }
        command
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in 0..=HOSTS {
            let ns = self.ns(h);
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
            let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&ns));
        }
        let _ = Command::new("ip").args(["netns", "del", &self.switch()]).output();
    }
}

/// Processes of a case, killed when dropped (so a failing case leaves none behind).
#[derive(Default)]
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Procs {
    fn pid(&self, i: usize) -> i32 {
        self.0[i].id() as i32
    }

    /// When each process exits, waiting at most `limit`; `None` for those still running.
    fn exits(&mut self, limit: Duration) -> Vec<Option<(Instant, std::process::ExitStatus)>> {
        let until = Instant::now() + limit;
        let mut done = vec![None; self.0.len()];
        while done.iter().any(Option::is_none) && Instant::now() < until {
            for (child, slot) in self.0.iter_mut().zip(done.iter_mut()) {
                if slot.is_none()
                    && let Some(status) = child.try_wait().unwrap()
                {
                    *slot = Some((Instant::now(), status));
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        done
    }
}

/// A case's files: the shared recovery directory, each host's output directory, the host
/// file, the secret file and the logs.
struct Case {
    net: Net,
    base: tempfile::TempDir,
    starts: usize,
    /// Whether each host has its own recovery directory (`recovery-N`) instead of the shared
    /// one; its output then goes to one directory (`out`), as to a store outside the hosts,
    /// since a sink partition may move to another host.
    per_host: bool,
}

impl Case {
    fn new(name: &str) -> Case {
        let base = tempfile::tempdir().unwrap();
        bwx::recovery::init_dir(base.path().join("recovery"), HOSTS).unwrap();
        Case::with(name, base, false)
    }

    /// A case where host `h` keeps partitions `h` and `h + HOSTS` of `2 * HOSTS` in its own
    /// directory, all of one store.
    fn per_host(name: &str) -> Case {
        let base = tempfile::tempdir().unwrap();
        let store_id = bwx_tool(&["recovery", "store-id"]);
        for h in 0..HOSTS {
            let dir = base.path().join(format!("recovery-{h}"));
            bwx_tool(&[
                "recovery",
                "init",
                dir.to_str().unwrap(),
                &(2 * HOSTS).to_string(),
                "--parts",
                &format!("{h},{}", h + HOSTS),
                "--store-id",
                store_id.trim(),
            ]);
        }
        Case::with(name, base, true)
    }

    fn with(name: &str, base: tempfile::TempDir, per_host: bool) -> Case {
        std::fs::write(base.path().join("secret"), format!("{SECRET}\n")).unwrap();
        let case = Case {
            net: Net::new(name),
            base,
            starts: 0,
            per_host,
        };
        case.write_hostfile(HOSTS);
        case
    }

    /// The host file of a cluster of the first `hosts` hosts.
    fn write_hostfile(&self, hosts: usize) {
        let lines: String = (0..hosts).map(|h| format!("flow-{h}.flow:{PORT}\n")).collect();
        std::fs::write(self.path("hosts"), lines).unwrap();
    }

    /// Moves partition `part` from host `from`'s recovery directory to host `to`'s (`None`:
    /// out of every host's, into the case's directory), as an operator moves files between
    /// hosts: `part-N.sqlite3` with its `-wal` file, which holds its latest commits when its
    /// process was killed.
    fn move_partition(&self, part: usize, from: Option<usize>, to: Option<usize>) {
        let dir =
            |h: Option<usize>| h.map_or_else(|| self.path("aside"), |h| self.path(&format!("recovery-{h}")));
        let (src, dst) = (dir(from), dir(to));
        std::fs::create_dir_all(&dst).unwrap();
        let name = format!("part-{part}.sqlite3");
        let mut moved = 0;
        for file in std::fs::read_dir(&src).unwrap() {
            let file = file.unwrap().file_name();
            if file.to_string_lossy().starts_with(&name) {
                std::fs::rename(src.join(&file), dst.join(&file)).unwrap();
                moved += 1;
            }
        }
        assert!(moved > 0, "no {name} in {}", src.display());
    }

    /// The partitions in host `h`'s recovery directory.
    fn partitions_of(&self, h: usize) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(&format!("recovery-{h}")))
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sqlite3"))
            .collect();
        names.sort();
        names
    }

    fn path(&self, name: &str) -> PathBuf {
        self.base.path().join(name)
    }

    /// Starts host `h` as its StatefulSet pod would start; `secret` overrides the file.
    fn host(&self, h: usize, ns: &str, pod: usize, secret: Option<&str>) -> Child {
        let log = File::create(self.path(&format!("log-{}-h{h}", self.starts))).unwrap();
        let mut command = self.net.command(ns, "netns_host_entry");
        let (out, recovery) = if self.per_host {
            ("out".to_string(), format!("recovery-{h}"))
        } else {
            (format!("out-{h}"), "recovery".to_string())
        };
        command
            .env(ENV_OUT, self.path(&out))
            .env("BYTEWAX_POD_NAME", format!("flow-{pod}"))
            .env("BYTEWAX_STATEFULSET_NAME", "flow")
            .env("BYTEWAX_HOSTFILE_PATH", self.path("hosts"))
            .env("BYTEWAX_RECOVERY_DIRECTORY", self.path(&recovery))
            .env("BYTEWAX_SNAPSHOT_INTERVAL", "50ms")
            .env("BYTEWAX_RECOVERY_BACKUP_INTERVAL", "1m")
            .env("BWX_BIND_ADDRESS", "0.0.0.0")
            .env("BWX_HEARTBEAT_TIMEOUT", format!("{}ms", HEARTBEAT.as_millis()))
            .env("BWX_STARTUP_TIMEOUT", "5s")
            .stdout(Stdio::null())
            .stderr(log);
        match secret {
            Some(secret) => command.env("BWX_CLUSTER_SECRET", secret),
            None => command.env("BWX_CLUSTER_SECRET_FILE", self.path("secret")),
        };
        command.spawn().unwrap()
    }

    /// Starts the 3 hosts.
    fn start(&mut self) -> Procs {
        self.start_hosts(HOSTS)
    }

    /// Starts the first `hosts` hosts, as a cluster of that many.
    fn start_hosts(&mut self, hosts: usize) -> Procs {
        self.write_hostfile(hosts);
        self.starts += 1;
        Procs(
            (0..hosts)
                .map(|h| self.host(h, &self.net.ns(h), h, None))
                .collect(),
        )
    }

    fn log(&self, start: usize, h: usize) -> String {
        std::fs::read_to_string(self.path(&format!("log-{start}-h{h}"))).unwrap_or_default()
    }

    /// Runs the cluster again until it finishes.
    fn resume(&mut self) {
        self.resume_hosts(HOSTS);
    }

    /// Runs the first `hosts` hosts as a cluster until it finishes.
    fn resume_hosts(&mut self, hosts: usize) {
        let mut procs = self.start_hosts(hosts);
        let exits = procs.exits(Duration::from_secs(60));
        for (h, exit) in exits.iter().enumerate() {
            let ok = exit.is_some_and(|(_, s)| s.success());
            assert!(
                ok,
                "host {h} did not finish the resumed run: {:?}\n{}",
                exit,
                self.log(self.starts, h)
            );
        }
    }

    /// Every host's output, counted, against one uninterrupted run.
    fn assert_exact(&self) {
        let mut got: BTreeMap<String, usize> = BTreeMap::new();
        let outs = (0..HOSTS).map(|h| format!("out-{h}")).chain(["out".to_string()]);
        for out in outs {
            let Ok(dir) = std::fs::read_dir(self.path(&out)) else {
                continue;
            };
            for file in dir {
                let file = File::open(file.unwrap().path()).unwrap();
                for line in BufReader::new(file).lines() {
                    *got.entry(line.unwrap()).or_insert(0) += 1;
                }
            }
        }
        let want = NUMBERS.expected_lines();
        let lost: usize = want
            .iter()
            .map(|(l, n)| n.saturating_sub(got.get(l).copied().unwrap_or(0)))
            .sum();
        let duplicated: usize = got
            .iter()
            .map(|(l, n)| n.saturating_sub(want.get(l).copied().unwrap_or(0)))
            .sum();
        assert_eq!(
            (lost, duplicated),
            (0, 0),
            "lines lost, and duplicated or unexpected"
        );
    }
}

/// How many bytes of output the hosts have written.
fn written(case: &Case) -> u64 {
    (0..HOSTS)
        .map(|h| format!("out-{h}"))
        .chain(["out".to_string()])
        .filter_map(|out| std::fs::read_dir(case.path(&out)).ok())
        .flatten()
        .filter_map(|f| f.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Waits until the hosts have written more than `before` bytes of output (the flow runs),
/// at most 20 s.
fn wait_running_past(case: &Case, before: u64) {
    let started = Instant::now();
    loop {
        if written(case) > before {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the cluster never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the hosts have written some output (the flow runs), at most 20 s.
fn wait_running(case: &Case) {
    wait_running_past(case, 0);
}

/// Runs the `bwx` tool; its standard output.
fn bwx_tool(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_bwx"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "bwx {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// After a failure of `culprit`, every other host stops within the heartbeat timeout and a
/// margin, naming it; returns the slowest detection.
fn assert_detected(case: &Case, procs: &mut Procs, culprit: usize, since: Instant, what: &str) -> Duration {
    let exits = procs.exits(HEARTBEAT + Duration::from_secs(5));
    let mut slowest = Duration::ZERO;
    for h in (0..HOSTS).filter(|h| *h != culprit) {
        let log = case.log(case.starts, h);
        let (at, status) = exits[h].unwrap_or_else(|| panic!("host {h} did not stop after {what}\n{log}"));
        assert_eq!(status.code(), Some(1), "host {h}\n{log}");
        assert!(
            log.contains(&format!("process {culprit} (flow-{culprit}.flow:{PORT})")),
            "host {h} does not name host {culprit}:\n{log}"
        );
        slowest = slowest.max(at.saturating_duration_since(since));
    }
    assert!(
        slowest < HEARTBEAT + Duration::from_secs(2),
        "{what} detected only after {slowest:?}"
    );
    slowest
}

/// The seed (`BWX_NETNS_SEED`, 1 by default) and a generator of numbers from it.
fn seeded() -> (u64, Rng) {
    let seed: u64 = std::env::var("BWX_NETNS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    (seed, Rng::new(seed))
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) on a process this test started.
    unsafe { libc::kill(pid, signal) };
}

#[test]
fn netns_strangers_and_a_wrong_secret_are_refused_and_the_cluster_runs_on() {
    if std::env::var_os(ENV_OUT).is_some() || std::env::var_os(ENV_TARGETS).is_some() || !can_run() {
        return;
    }
    let mut case = Case::new("a");
    let outsider = case.net.ns(HOSTS);
    let targets: Vec<String> = (1..=HOSTS).map(|h| format!("10.77.0.{h}:{PORT}")).collect();
    let mut strangers = Procs::default();
    let mut stranger = case.net.command(&outsider, "netns_stranger_entry");
    stranger
        .env(ENV_TARGETS, targets.join(","))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    strangers.0.push(stranger.spawn().unwrap());
    // A process of this flow with another secret, claiming host 2's place from outside.
    let mut impostor = Procs(vec![case.host(
        9,
        &outsider,
        2,
        Some("another secret, of the same length"),
    )]);
    std::thread::sleep(Duration::from_millis(300));
    let mut procs = case.start();
    let exits = procs.exits(Duration::from_secs(60));
    for (h, exit) in exits.iter().enumerate() {
        assert!(
            exit.is_some_and(|(_, s)| s.success()),
            "host {h}: {exit:?}\n{}",
            case.log(1, h)
        );
    }
    drop(strangers);
    let impostor_exit = impostor.exits(Duration::from_secs(20))[0];
    let impostor_log = case.log(0, 9);
    assert!(
        impostor_exit.is_some_and(|(_, s)| s.code() == Some(1)),
        "{impostor_log}"
    );
    assert!(
        impostor_log.contains("the secrets differ"),
        "{impostor_exit:?}: {impostor_log}"
    );
    // The hosts logged the strangers and the impostor, by address and reason.
    let logs: String = (0..HOSTS).map(|h| case.log(1, h)).collect();
    assert!(logs.contains("refused a connection from 10.77.0.4:"), "{logs}");
    assert!(logs.contains("no bwx handshake"), "{logs}");
    assert!(logs.contains("no answer to the challenge"), "{logs}");
    case.assert_exact();
}

#[test]
fn netns_a_stopped_host_is_detected_and_the_cluster_resumes() {
    if std::env::var_os(ENV_OUT).is_some() || !can_run() {
        return;
    }
    let mut case = Case::new("b");
    let mut procs = case.start();
    wait_running(&case);
    std::thread::sleep(Duration::from_millis(200));
    let stopped_at = Instant::now();
    signal(procs.pid(1), libc::SIGSTOP);
    let took = assert_detected(&case, &mut procs, 1, stopped_at, "SIGSTOP");
    println!("netns: a stopped host was detected after {took:?} (heartbeat timeout {HEARTBEAT:?})");
    // Continued, it finds its peers gone and stops too.
    signal(procs.pid(1), libc::SIGCONT);
    let exit = procs.exits(Duration::from_secs(10))[1];
    assert!(
        exit.is_some_and(|(_, s)| s.code() == Some(1)),
        "{exit:?}\n{}",
        case.log(1, 1)
    );
    drop(procs);
    case.resume();
    case.assert_exact();
}

#[test]
fn netns_a_link_taken_down_is_detected_and_the_cluster_resumes_once_it_is_up() {
    if std::env::var_os(ENV_OUT).is_some() || !can_run() {
        return;
    }
    let mut case = Case::new("c");
    let mut procs = case.start();
    wait_running(&case);
    std::thread::sleep(Duration::from_millis(200));
    let down_at = Instant::now();
    case.net.link(2, false);
    let took = assert_detected(&case, &mut procs, 2, down_at, "a link down");
    println!("netns: a host cut off was detected after {took:?} (heartbeat timeout {HEARTBEAT:?})");
    // Host 2 hears from nobody and stops too.
    let exit = procs.exits(Duration::from_secs(10))[2];
    assert!(
        exit.is_some_and(|(_, s)| s.code() == Some(1)),
        "{exit:?}\n{}",
        case.log(1, 2)
    );
    drop(procs);
    case.net.link(2, true);
    case.resume();
    case.assert_exact();
}

#[test]
fn netns_a_host_killed_at_a_random_moment_loses_and_duplicates_nothing() {
    if std::env::var_os(ENV_OUT).is_some() || !can_run() {
        return;
    }
    let (seed, mut rng) = seeded();
    let victim = (rng.next() % HOSTS as u64) as usize;
    let after = Duration::from_millis(rng.next() % 1200);
    println!("netns: seed {seed}: kill -9 of host {victim} after {after:?}");
    let mut case = Case::new("d");
    let mut procs = case.start();
    std::thread::sleep(after);
    signal(procs.pid(victim), libc::SIGKILL);
    let exits = procs.exits(Duration::from_secs(10));
    assert!(
        exits.iter().all(Option::is_some),
        "a host did not stop after the kill: {exits:?}"
    );
    drop(procs);
    case.resume();
    case.assert_exact();
}

#[test]
fn netns_partitions_on_each_hosts_own_disk_survive_a_kill_and_a_rescale_3_2_3() {
    if std::env::var_os(ENV_OUT).is_some() || !can_run() {
        return;
    }
    let (seed, mut rng) = seeded();
    let victim = (rng.next() % HOSTS as u64) as usize;
    let after = Duration::from_millis(rng.next() % 800);
    let after_2 = Duration::from_millis(100 + rng.next() % 400);
    println!(
        "netns: seed {seed}: per-host partitions, kill -9 of host {victim} after {after:?}, \
         of host 1 of 2 {after_2:?} after it writes"
    );
    let mut case = Case::per_host("e");
    for h in 0..HOSTS {
        let want = [format!("part-{h}.sqlite3"), format!("part-{}.sqlite3", h + HOSTS)];
        assert_eq!(case.partitions_of(h), want);
    }

    // 3 hosts, one killed at a seeded moment.
    let mut procs = case.start();
    std::thread::sleep(after);
    signal(procs.pid(victim), libc::SIGKILL);
    let exits = procs.exits(Duration::from_secs(10));
    assert!(
        exits.iter().all(Option::is_some),
        "a host did not stop after the kill: {exits:?}"
    );
    drop(procs);

    // Down to 2 hosts: host 2's partitions move to hosts 0 and 1. Killed again while it runs.
    case.move_partition(2, Some(2), Some(0));
    case.move_partition(5, Some(2), Some(1));
    let before = written(&case);
    println!("netns: {before} bytes written by 3 hosts before the kill");
    let mut procs = case.start_hosts(2);
    wait_running_past(&case, before);
    std::thread::sleep(after_2);
    signal(procs.pid(1), libc::SIGKILL);
    let exits = procs.exits(Duration::from_secs(10));
    assert!(
        exits.iter().all(Option::is_some),
        "a host did not stop after the kill: {exits:?}"
    );
    drop(procs);
    println!(
        "netns: {} bytes written by 2 hosts before the kill",
        written(&case)
    );

    // Back to 3 hosts, but partition 0 is left behind: every host refuses, naming it.
    case.move_partition(5, Some(1), Some(2));
    case.move_partition(0, Some(0), None);
    let mut procs = case.start();
    let exits = procs.exits(Duration::from_secs(20));
    for (h, exit) in exits.iter().enumerate() {
        let log = case.log(case.starts, h);
        assert!(
            exit.is_some_and(|(_, s)| s.code() == Some(1)),
            "host {h}: {exit:?}\n{log}"
        );
        assert!(
            log.contains("missing recovery partitions") && log.contains("part-0.sqlite3"),
            "host {h} does not name the missing partition:\n{log}"
        );
    }
    drop(procs);

    // With it on host 2, the 3 hosts finish the input.
    case.move_partition(0, None, Some(2));
    assert_eq!(
        [
            case.partitions_of(0),
            case.partitions_of(1),
            case.partitions_of(2)
        ],
        [
            vec!["part-2.sqlite3".to_string(), "part-3.sqlite3".to_string()],
            vec!["part-1.sqlite3".to_string(), "part-4.sqlite3".to_string()],
            vec!["part-0.sqlite3".to_string(), "part-5.sqlite3".to_string()],
        ]
    );
    case.resume();
    case.assert_exact();
}
