//! `--processes N`: start N copies of this program as a local cluster and supervise them.
//!
//! The processes run in a process group of their own, so that Ctrl-C on a terminal
//! reaches only the supervisor, which passes SIGINT and SIGTERM on to each process once.
//! Each process writes its last line (an error, or where it stopped) to a file the
//! supervisor reads ([`REPORT_VAR`]): the cluster prints one line, not one per process.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use super::args::RunArgs;
use super::stop::{REPORT_VAR, Signals, StopReport, stopped_by};
use crate::execution::reserved_ports::ReservedPorts;

/// How a supervised cluster ended, when no process failed.
pub(crate) enum Ended {
    /// Every process finished its input.
    Finished,
    /// A signal stopped the processes before the end of their input.
    Stopped(StopReport),
}

/// A directory for the processes' last lines, removed when dropped.
struct Reports(PathBuf);

impl Reports {
    fn new() -> std::io::Result<Reports> {
        let dir = std::env::temp_dir().join(format!("bwx-supervisor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir)?;
        Ok(Reports(dir))
    }

    fn path(&self, process: usize) -> PathBuf {
        self.0.join(process.to_string())
    }

    /// Process `process`'s last line, if it wrote one.
    fn read(&self, process: usize) -> Option<String> {
        std::fs::read_to_string(self.path(process))
            .ok()
            .filter(|s| !s.is_empty())
    }

    /// The stop report of the process whose inputs got furthest (a process may have no
    /// input partitions, and so no epoch).
    fn furthest_stop(&self, processes: usize) -> Option<String> {
        let epoch = |line: &str| -> Option<u64> {
            let rest = line.split(" at epoch ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        };
        (0..processes)
            .filter_map(|id| self.read(id))
            .filter_map(|line| line.strip_prefix("stopped: ").map(String::from))
            .max_by_key(|line| epoch(line))
    }
}

impl Drop for Reports {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The default way to start a process: this executable again.
pub(crate) fn current_exe_command(args: &[OsString]) -> std::io::Result<Command> {
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command.args(args);
    Ok(command)
}

/// How often the supervisor looks at its children.
const POLL: Duration = Duration::from_millis(20);

/// Starts the processes, waits for all of them, and on the first failure kills the rest.
/// Returns a message naming the failed process.
pub(crate) fn run_processes(
    args: &RunArgs,
    processes: usize,
    command: &dyn Fn(&[OsString]) -> std::io::Result<Command>,
) -> Result<Ended, String> {
    let signals = Signals::register().map_err(|e| format!("cannot handle signals: {e}"))?;
    let reports =
        Reports::new().map_err(|e| format!("cannot make a directory for the processes' reports: {e}"))?;
    let ports = ReservedPorts::bind(processes)
        .and_then(|ports| Ok((ports.addresses()?, ports)))
        .map_err(|e| format!("cannot reserve {processes} loopback ports: {e}"));
    let (addresses, ports) = ports?;
    let mut children: Vec<Option<Child>> = Vec::with_capacity(processes);
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
            ] {
                c.env_remove(var);
            }
            die_with_parent(&mut c);
            c.env(REPORT_VAR, reports.path(id));
            ports.hand_to(id, &mut c);
            c.spawn()
        });
        match spawned {
            Ok(child) => children.push(Some(child)),
            Err(e) => {
                kill_all(&mut children);
                return Err(format!("cannot start process {id} of {processes}: {e}"));
            }
        }
    }
    // Every child holds its own socket now.
    drop(ports);
    let mut forwarded = None;
    let mut stopped: Option<i32> = None;
    loop {
        if let Some(signal) = signals.received()
            && forwarded != Some(signals.count())
        {
            forwarded = Some(signals.count());
            forward(&children, signal);
        }
        let mut running = 0;
        for (id, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            match child.try_wait() {
                Ok(None) => running += 1,
                Ok(Some(status)) if status.success() => *slot = None,
                Ok(Some(status)) if let Some(signal) = status.code().and_then(stopped_by) => {
                    *slot = None;
                    stopped.get_or_insert(signal);
                }
                Ok(Some(status)) => {
                    *slot = None;
                    kill_all(&mut children);
                    let why = match reports.read(id) {
                        Some(line) => format!(": {}", line.trim_start_matches("error: ")),
                        None => String::new(),
                    };
                    return Err(format!(
                        "process {id} of {processes} failed ({}); stopped the other processes{why}",
                        describe(status)
                    ));
                }
                Err(e) => {
                    kill_all(&mut children);
                    return Err(format!("cannot wait for process {id} of {processes}: {e}"));
                }
            }
        }
        if running == 0 {
            return Ok(match stopped {
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
        }
        std::thread::sleep(POLL);
    }
}

/// Passes `signal` on to every running process.
fn forward(children: &[Option<Child>], signal: i32) {
    for child in children.iter().flatten() {
        // SAFETY: kill has no memory effects; the pid is a child not yet reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
    }
}

/// Makes the child exit when this supervisor dies, even by SIGKILL, which no handler of
/// ours can see: otherwise a killed `--processes` parent leaves its cluster running. The
/// child gets a process group of its own, so that signals reach it only through the
/// supervisor.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the hook runs in the forked child before exec and only makes the
    // async-signal-safe calls setpgid, prctl, getppid and _exit.
    unsafe {
        command.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
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
fn die_with_parent(_: &mut Command) {}

fn kill_all(children: &mut [Option<Child>]) {
    for child in children.iter_mut().flatten() {
        // It may have exited on its own meanwhile; either way it is gone afterwards.
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// "exit code 1" or "killed by signal 9".
pub(crate) fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    status.to_string()
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn statuses_read_well() {
        assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "exit code 1");
        assert_eq!(describe(ExitStatus::from_raw(9)), "killed by signal 9");
    }
}
