//! `--processes N`: start N copies of this program as a local cluster and supervise them.
//!
//! - The children connect over loopback ports the supervisor reserved, authenticated by a
//!   cluster secret: the user's (`BWX_CLUSTER_SECRET`, `--cluster-secret-file`), or a random
//!   one. It reaches them in their environment, never on a command line.
//! - The children run in a process group of their own, so a terminal's Ctrl-C reaches only
//!   the supervisor, which stops them once: SIGINT or SIGTERM to the supervisor is sent on
//!   to every child, each stops gracefully with a final snapshot, and the supervisor
//!   reports the stop once they have (exit code 130 or 143, as a single process). A second
//!   signal kills them. A supervisor killed by SIGKILL takes them along (Linux: a
//!   parent-death signal).
//! - Each child writes its last line (its error, or where it stopped) to a file of a private
//!   directory the supervisor reads (`BWX_SUPERVISOR_REPORT`): the cluster prints one line,
//!   not one per process.
//! - When a child fails, the supervisor waits briefly for the others to stop on their own
//!   (they do: a failure stops the whole cluster), stops those that do not, and names the
//!   child that failed first and how: its exit code, or the signal that killed it. When the
//!   first to stop did so because a peer stopped answering (its heartbeat stopped: the peer
//!   is stopped or hung, and still running), it names that peer: each child tells the
//!   supervisor through a file of a private directory (`BWX_SUPERVISOR_REPORT`).
//! - With `--restarts N` (and `-r`), it then starts the cluster again, which resumes from
//!   the last snapshot, at most N times, pausing 1 s, 2 s, 4 s... (at most 30 s) between
//!   attempts.
//! - Standard input goes to process 0 only (worker 0 is the one that reads it); the others
//!   get none. A terminal cannot be read from the children's own process group (the kernel
//!   stops a background reader with SIGTTIN), so from a terminal the supervisor reads and
//!   passes the lines on to process 0 through a pipe.

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use super::args::RunArgs;
use super::stop::{StopReport, stopped_by};
use crate::execution::reserved_ports::ReservedPorts;
use crate::execution::{ClusterSecret, ENV_SUPERVISOR_REPORT};
use crate::exit_status::describe;

/// The default way to start a process: this executable again.
pub(crate) fn current_exe_command(args: &[OsString]) -> std::io::Result<Command> {
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command.args(args);
    Ok(command)
}

/// How long the other children may take to stop on their own after one failed (they do:
/// a failure stops the whole cluster) before they are killed.
const FAILURE_GRACE: Duration = Duration::from_secs(5);
/// Within this window after the first failure, a child killed by a signal counts as the
/// cause rather than one that exited with an error (its peers exit as soon as they notice).
const SAME_MOMENT: Duration = Duration::from_millis(100);
const MAX_RESTART_PAUSE: Duration = Duration::from_secs(30);

/// What the supervisor hears about.
enum Event {
    Exited(usize, std::io::Result<ExitStatus>, Instant),
    Signal(i32),
}

/// How one start of the cluster ended.
enum Ended {
    /// Every process finished.
    Finished,
    /// The processes stopped gracefully before the end of their input, when asked to.
    Stopped(StopReport),
    /// A process failed; the message names it.
    Failed(String),
}

/// Starts the processes and supervises them (see the module docs). Returns where they
/// stopped when a signal stopped them, or a message naming the failed process.
pub(crate) fn run_processes(
    args: &RunArgs,
    processes: usize,
    command: &dyn Fn(&[OsString]) -> std::io::Result<Command>,
) -> Result<Option<StopReport>, String> {
    let secret = match args.cluster_secret().map_err(|e| e.to_string())? {
        Some(secret) => secret,
        None => ClusterSecret::random().map_err(|e| e.to_string())?,
    };
    let reports = ReportDir::create()?;
    let (events, heard) = mpsc::channel();
    let signals = watch_signals(events.clone())?;
    let stdin = if std::io::stdin().is_terminal() {
        Input::Forwarded(forward_stdin()?)
    } else {
        Input::Inherited
    };
    let restarts = args.restarts.unwrap_or(0);
    let mut attempt = 0;
    let outcome = loop {
        let cluster = Cluster {
            processes,
            command,
            secret: &secret,
            stdin: &stdin,
            reports: &reports,
        };
        match run_once(args, &cluster, &events, &heard) {
            Ok(Ended::Finished) => break Ok(None),
            Ok(Ended::Stopped(report)) => break Ok(Some(report)),
            Ok(Ended::Failed(why)) if attempt < restarts => {
                attempt += 1;
                let pause = Duration::from_secs(1 << (attempt - 1).min(5)).min(MAX_RESTART_PAUSE);
                tracing::warn!(
                    "{why}; restarting the cluster from the last snapshot in {pause:?} (restart {attempt} of {restarts})"
                );
                if stopped_while_waiting(&heard, pause) {
                    break Ok(None);
                }
            }
            Ok(Ended::Failed(why)) if restarts > 0 => {
                break Err(format!("{why}; gave up after {restarts} restarts"));
            }
            Ok(Ended::Failed(why)) => break Err(why),
            Err(e) => break Err(e),
        }
    };
    signals.close();
    outcome
}

/// Waits `pause`, unless a stop signal comes first (then `true`).
fn stopped_while_waiting(heard: &mpsc::Receiver<Event>, pause: Duration) -> bool {
    let until = Instant::now() + pause;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match heard.recv_timeout(left) {
            Ok(Event::Signal(_)) => return true,
            Ok(Event::Exited(..)) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => return false,
            Err(mpsc::RecvTimeoutError::Disconnected) => return false,
        }
    }
}

struct Watch {
    handle: signal_hook::iterator::Handle,
    thread: std::thread::JoinHandle<()>,
}

impl Watch {
    fn close(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}

fn watch_signals(events: mpsc::Sender<Event>) -> Result<Watch, String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot handle stop signals: {e}"))?;
    let handle = signals.handle();
    let thread = std::thread::Builder::new()
        .name("bwx:supervisor-signals".to_string())
        .spawn(move || {
            for signal in signals.forever() {
                if events.send(Event::Signal(signal)).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(Watch { handle, thread })
}

/// How process 0 gets the supervisor's standard input.
enum Input {
    /// Its own (a file or a pipe, which any process group may read).
    Inherited,
    /// Through a pipe the supervisor feeds from its terminal.
    Forwarded(Arc<Forward>),
}

/// The pipe to the current process 0, fed by the thread reading the terminal.
#[derive(Default)]
struct Forward {
    state: Mutex<Forwarding>,
    /// Signalled when a process 0 starts.
    started: Condvar,
}

#[derive(Default)]
struct Forwarding {
    to: Option<ChildStdin>,
    /// The terminal reached end of input (Ctrl-D): processes started later get none.
    ended: bool,
}

impl Forward {
    fn lock(&self) -> MutexGuard<'_, Forwarding> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the terminal's input to a process 0 that just started.
    fn feed(&self, pipe: ChildStdin) {
        let mut state = self.lock();
        // After the end of input the pipe closes at once: that is its end of input.
        if !state.ended {
            state.to = Some(pipe);
            self.started.notify_all();
        }
    }
}

/// Starts the thread that reads the terminal and writes what it reads to process 0. What
/// is typed while no process 0 runs (before the first starts, between restarts) waits for
/// the next one.
fn forward_stdin() -> Result<Arc<Forward>, String> {
    let forward = Arc::new(Forward::default());
    let feeding = forward.clone();
    std::thread::Builder::new()
        .name("bwx:supervisor-stdin".to_string())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 8192];
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => 0,
                };
                let mut state = feeding.lock();
                if n == 0 {
                    state.ended = true;
                    // Closing the pipe is the end of input for process 0.
                    state.to = None;
                    return;
                }
                loop {
                    if let Some(pipe) = state.to.as_mut() {
                        if pipe.write_all(&buf[..n]).is_ok() {
                            break;
                        }
                        // That process 0 has exited: the next one gets the input.
                        state.to = None;
                    }
                    state = feeding.started.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            }
        })
        .map_err(|e| format!("cannot start the thread reading the terminal: {e}"))?;
    Ok(forward)
}

/// The private directory (mode 0700) where each child tells the supervisor, in a file of its
/// own ([`ENV_SUPERVISOR_REPORT`]), which peer stopped answering and its last line.
struct ReportDir(std::path::PathBuf);

impl ReportDir {
    fn create() -> Result<ReportDir, String> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("bwx-supervisor-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(ReportDir(path))
    }

    /// Where process `id` reports; empty for a new start.
    fn of(&self, id: usize) -> std::path::PathBuf {
        let path = self.0.join(format!("process-{id}"));
        let _ = std::fs::remove_file(&path);
        path
    }

    /// What process `id` said: one line per fact, appended as it learns them.
    fn said(&self, id: usize) -> String {
        std::fs::read_to_string(self.0.join(format!("process-{id}"))).unwrap_or_default()
    }

    /// The peer process `id` found unresponsive, if it said so (`unresponsive N`).
    fn blamed_by(&self, id: usize) -> Option<usize> {
        self.said(id)
            .lines()
            .find_map(|line| line.strip_prefix("unresponsive ")?.parse().ok())
    }

    /// Process `id`'s last line (its error, or where it stopped), if it wrote one: every
    /// line it said but the `unresponsive` ones.
    fn last_line(&self, id: usize) -> Option<String> {
        let said = self.said(id);
        let lines: Vec<&str> = said
            .lines()
            .filter(|line| !line.starts_with("unresponsive ") && !line.is_empty())
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    /// The stop report of the process whose inputs got furthest (a process may have no
    /// input partitions, and so no epoch).
    fn furthest_stop(&self, processes: usize) -> Option<String> {
        let epoch = |line: &str| -> Option<u64> {
            let rest = line.split(" at epoch ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        };
        (0..processes)
            .filter_map(|id| self.last_line(id))
            .filter_map(|line| line.strip_prefix("stopped: ").map(String::from))
            .max_by_key(|line| epoch(line))
    }
}

impl Drop for ReportDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What every start of the cluster uses.
struct Cluster<'a> {
    processes: usize,
    command: &'a dyn Fn(&[OsString]) -> std::io::Result<Command>,
    secret: &'a ClusterSecret,
    stdin: &'a Input,
    reports: &'a ReportDir,
}

/// A started child: its pid (the waiting thread owns the `Child`), and how it ended.
struct Running {
    pid: u32,
    status: Option<(ExitStatus, Instant)>,
    /// The supervisor sent it a signal (so a death by signal is no failure of its own).
    signalled: bool,
    /// It was stopped (SIGSTOP) when another process failed: the likely cause.
    stopped: bool,
    /// The peer it stopped for because that peer stopped answering.
    blames: Option<usize>,
}

/// Why the supervisor names a process as the one that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blame {
    /// It was stopped (SIGSTOP) when the others failed.
    Stopped,
    /// This process stopped because it stopped answering.
    Unresponsive(usize),
    /// It exited with an error or was killed, first.
    Status,
}

fn run_once(
    args: &RunArgs,
    cluster: &Cluster<'_>,
    events: &mpsc::Sender<Event>,
    heard: &mpsc::Receiver<Event>,
) -> Result<Ended, String> {
    let Cluster {
        processes,
        command,
        secret,
        stdin,
        reports,
    } = *cluster;
    let ports = ReservedPorts::bind(processes)
        .and_then(|ports| Ok((ports.addresses()?, ports)))
        .map_err(|e| format!("cannot reserve {processes} loopback ports: {e}"));
    let (addresses, ports) = ports?;
    let mut children: Vec<Running> = Vec::with_capacity(processes);
    for id in 0..processes {
        let child_args = args.child_args(id, &addresses);
        let spawned = command(&child_args).and_then(|mut c| {
            // The children get their place from their flags; inherited cluster variables
            // must not send them elsewhere.
            for var in [
                "BYTEWAX_PROCESS_ID",
                "BYTEWAX_ADDRESSES",
                "BYTEWAX_POD_NAME",
                "BYTEWAX_HOSTFILE_PATH",
                "BWX_CLUSTER_SECRET_FILE",
                "BWX_BIND_ADDRESS",
                "BWX_RESTARTS",
            ] {
                c.env_remove(var);
            }
            c.env(crate::execution::ENV_SECRET, secret.to_env_value());
            c.env(ENV_SUPERVISOR_REPORT, reports.of(id));
            match stdin {
                _ if id != 0 => c.stdin(Stdio::null()),
                Input::Inherited => c.stdin(Stdio::inherit()),
                Input::Forwarded(_) => c.stdin(Stdio::piped()),
            };
            own_group_and_die_with_parent(&mut c);
            ports.hand_to(id, &mut c);
            c.spawn()
        });
        match spawned {
            Ok(mut child) => {
                if let (Input::Forwarded(forward), Some(pipe)) = (stdin, child.stdin.take()) {
                    forward.feed(pipe);
                }
                children.push(wait_in_background(id, child, events.clone()))
            }
            Err(e) => {
                signal_all(&mut children, libc::SIGKILL);
                drain_exits(&mut children, heard);
                return Err(format!("cannot start process {id} of {processes}: {e}"));
            }
        }
    }
    // Every child holds its own socket now.
    drop(ports);
    let mut stopping = false;
    let mut first_failure: Option<Instant> = None;
    while children.iter().any(|c| c.status.is_none()) {
        let wait = match first_failure {
            Some(at) => (at + FAILURE_GRACE).saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        match heard.recv_timeout(wait) {
            Ok(Event::Exited(id, status, at)) => {
                let status =
                    status.map_err(|e| format!("cannot wait for process {id} of {processes}: {e}"))?;
                children[id].status = Some((status, at));
                // A process that stopped gracefully (on a signal of its own) did not fail.
                let stopped = status.code().and_then(stopped_by).is_some();
                if !status.success() && !stopped && !stopping && first_failure.is_none() {
                    first_failure = Some(at);
                    for child in children.iter_mut().filter(|c| c.status.is_none()) {
                        child.stopped = is_stopped(child.pid);
                    }
                }
            }
            Ok(Event::Signal(signal)) if !stopping && first_failure.is_none() => {
                stopping = true;
                tracing::warn!("got signal {signal}: stopping every process gracefully");
                // The same signal, so the cluster's exit code says which one stopped it.
                signal_all(&mut children, signal);
            }
            Ok(Event::Signal(_)) => {
                signal_all(&mut children, libc::SIGKILL);
                drain_exits(&mut children, heard);
                return Err("stopped by a second signal: killed the processes".to_string());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // The others had their time to stop on their own after the failure.
                signal_all(&mut children, libc::SIGKILL);
                drain_exits(&mut children, heard);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("lost track of the processes".to_string());
            }
        }
    }
    for (id, child) in children.iter_mut().enumerate() {
        child.blames = reports
            .blamed_by(id)
            .filter(|peer| *peer < processes && *peer != id);
    }
    let Some((culprit, blame)) = culprit(&children) else {
        let signal = children
            .iter()
            .filter_map(|c| c.status.and_then(|(s, _)| s.code()).and_then(stopped_by))
            .next();
        return Ok(match signal {
            None => Ended::Finished,
            Some(signal) => Ended::Stopped(StopReport {
                message: reports.furthest_stop(processes).unwrap_or_else(|| {
                    format!(
                        "the processes stopped before the end of their input ({})",
                        super::stop::signal_name(signal)
                    )
                }),
                signal,
            }),
        });
    };
    let how = match blame {
        Blame::Stopped => "it was stopped (SIGSTOP) and stopped answering".to_string(),
        Blame::Unresponsive(by) => {
            format!("it stopped answering: process {by} heard no heartbeat from it within the timeout")
        }
        Blame::Status => describe(children[culprit].status.map(|(s, _)| s).unwrap_or_default()),
    };
    // The culprit's own last line says what failed.
    let what = match reports.last_line(culprit) {
        Some(line) => format!(": {}", line.trim_start_matches("error: ")),
        None => String::new(),
    };
    let why = format!("process {culprit} of {processes} failed ({how}); stopped the other processes{what}");
    if stopping {
        // No restart after a stop that was asked for.
        return Err(format!("while stopping on request, {why}"));
    }
    Ok(Ended::Failed(why))
}

/// The process that failed first: one that was stopped (SIGSTOP) when the first failure
/// came, else one killed by a signal (not by the supervisor) within [`SAME_MOMENT`] of the
/// first failure (its peers exit with an error as soon as they notice), else the first to
/// fail, or the peer it stopped for when that peer stopped answering (a hung process fails
/// no way the supervisor sees).
fn culprit(children: &[Running]) -> Option<(usize, Blame)> {
    if let Some(stopped) = children.iter().position(|c| c.stopped) {
        return Some((stopped, Blame::Stopped));
    }
    let failed: Vec<(usize, ExitStatus, Instant)> = children
        .iter()
        .enumerate()
        .filter_map(|(id, c)| c.status.map(|(s, at)| (id, c, s, at)))
        // A death by a signal the supervisor sent is not a failure of the child's own, nor
        // is a graceful stop.
        .filter(|(_, c, s, _)| {
            let killed_by_us = c.signalled && s.code().is_none();
            let stopped = s.code().and_then(stopped_by).is_some();
            !s.success() && !killed_by_us && !stopped
        })
        .map(|(id, _, s, at)| (id, s, at))
        .collect();
    let first = failed.iter().map(|(_, _, at)| *at).min()?;
    let killed = failed
        .iter()
        .filter(|(_, s, at)| s.code().is_none() && at.saturating_duration_since(first) <= SAME_MOMENT)
        .min_by_key(|(_, _, at)| *at);
    if let Some((id, _, _)) = killed {
        return Some((*id, Blame::Status));
    }
    let (id, _, _) = failed.iter().min_by_key(|(_, _, at)| *at)?;
    Some(match children[*id].blames {
        Some(peer) => (peer, Blame::Unresponsive(*id)),
        None => (*id, Blame::Status),
    })
}

/// Whether the process is stopped (Linux: state `T` in `/proc/PID/stat`).
fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
        .unwrap_or(false)
}

fn wait_in_background(id: usize, mut child: Child, events: mpsc::Sender<Event>) -> Running {
    let pid = child.id();
    let spawned = std::thread::Builder::new()
        .name(format!("bwx:wait-{id}"))
        .spawn(move || {
            let status = child.wait();
            let _ = events.send(Event::Exited(id, status, Instant::now()));
        });
    if let Err(e) = spawned {
        // Without a waiting thread this child would never be noticed: count it as failed.
        tracing::warn!("cannot watch process {id}: {e}");
        signal_pid(pid, libc::SIGKILL);
    }
    Running {
        pid,
        status: None,
        signalled: false,
        stopped: false,
        blames: None,
    }
}

/// Waits for every child still running (after they were sent SIGKILL).
fn drain_exits(children: &mut [Running], heard: &mpsc::Receiver<Event>) {
    while children.iter().any(|c| c.status.is_none()) {
        match heard.recv_timeout(Duration::from_secs(5)) {
            Ok(Event::Exited(id, status, at)) => {
                children[id].status = Some((status.unwrap_or_default(), at));
            }
            Ok(Event::Signal(_)) => {}
            Err(_) => return,
        }
    }
}

fn signal_all(children: &mut [Running], signal: i32) {
    for child in children.iter_mut().filter(|c| c.status.is_none()) {
        child.signalled = true;
        // A stopped child must run to act on the signal (SIGKILL needs no help).
        signal_pid(child.pid, libc::SIGCONT);
        signal_pid(child.pid, signal);
    }
}

fn signal_pid(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a child we started and have not reaped (its waiting thread reaps
    // it, and we only signal children whose exit we have not heard of).
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Puts the child in a process group of its own (a terminal's Ctrl-C then reaches only the
/// supervisor, which stops the children once), and makes it exit when this supervisor
/// dies, even by SIGKILL, which no handler of ours can see.
#[cfg(target_os = "linux")]
fn own_group_and_die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    command.process_group(0);
    // SAFETY: the hook runs in the forked child before exec and only makes the
    // async-signal-safe calls prctl, getppid and _exit.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then no signal will come.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Elsewhere the children outlive a killed parent; a graceful stop still stops them.
#[cfg(not(target_os = "linux"))]
fn own_group_and_die_with_parent(command: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn the_culprit_failed_first_or_was_killed_at_that_moment() {
        let t = Instant::now();
        let exited = |code: i32, ms: u64| Running {
            pid: 0,
            status: Some((ExitStatus::from_raw(code << 8), t + Duration::from_millis(ms))),
            signalled: false,
            stopped: false,
            blames: None,
        };
        let culprit = |children: &[Running]| culprit(children).map(|(id, _)| id);
        let killed = |ms: u64| Running {
            status: Some((ExitStatus::from_raw(9), t + Duration::from_millis(ms))),
            ..exited(0, 0)
        };
        // A process killed, its peer exiting 1 a moment before the supervisor heard of the kill.
        assert_eq!(culprit(&[exited(1, 10), killed(12)]), Some(1));
        // A panic in process 1; process 0 exits after it.
        assert_eq!(culprit(&[exited(1, 40), exited(1, 10)]), Some(1));
        // A kill long after the first failure is not its cause.
        assert_eq!(culprit(&[exited(1, 10), killed(900)]), Some(0));
        assert_eq!(culprit(&[exited(0, 10), exited(0, 11)]), None);
        // A process killed by the supervisor after the grace is not the cause either.
        let mut late = killed(12);
        late.signalled = true;
        assert_eq!(culprit(&[exited(1, 10), late]), Some(0));
        // A stopped process is, whoever exited first.
        let mut stopped = exited(1, 5000);
        stopped.stopped = true;
        assert_eq!(culprit(&[exited(1, 10), stopped]), Some(1));
    }

    #[test]
    fn a_peer_that_stopped_answering_is_named_not_the_first_to_exit() {
        let t = Instant::now();
        let exited = |ms: u64, blames: Option<usize>| Running {
            pid: 0,
            status: Some((ExitStatus::from_raw(1 << 8), t + Duration::from_millis(ms))),
            signalled: false,
            stopped: false,
            blames,
        };
        // Process 1 hung: 0 and 2 stopped for it, and the supervisor killed it after the grace.
        let hung = Running {
            status: Some((ExitStatus::from_raw(9), t + Duration::from_millis(5000))),
            signalled: true,
            ..exited(0, None)
        };
        assert_eq!(
            culprit(&[exited(10, Some(1)), hung, exited(12, Some(1))]),
            Some((1, Blame::Unresponsive(0)))
        );
        // A hung process that noticed nothing itself and exited with an error later.
        assert_eq!(
            culprit(&[exited(30, None), exited(10, Some(0))]),
            Some((0, Blame::Unresponsive(1)))
        );
        // A crash is named as a crash, whoever complained first.
        let crashed = Running {
            status: Some((ExitStatus::from_raw(9), t + Duration::from_millis(12))),
            ..exited(0, None)
        };
        assert_eq!(culprit(&[exited(10, Some(1)), crashed]), Some((1, Blame::Status)));
        // Without reports the first to exit is named, as before.
        assert_eq!(
            culprit(&[exited(10, None), exited(20, None)]),
            Some((0, Blame::Status))
        );
    }
}
