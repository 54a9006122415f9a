//! `--processes N`: start N copies of this program as a local cluster and supervise them.

use std::ffi::OsString;
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use super::args::RunArgs;
use crate::execution::reserved_ports::ReservedPorts;

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
) -> Result<(), String> {
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
    loop {
        let mut running = 0;
        for (id, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            match child.try_wait() {
                Ok(None) => running += 1,
                Ok(Some(status)) if status.success() => *slot = None,
                Ok(Some(status)) => {
                    *slot = None;
                    kill_all(&mut children);
                    return Err(format!(
                        "process {id} of {processes} failed ({}); stopped the other processes",
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
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

/// Makes the child exit when this supervisor dies, even by SIGKILL, which no handler of
/// ours can see: otherwise a killed `--processes` parent leaves its cluster running.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
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
