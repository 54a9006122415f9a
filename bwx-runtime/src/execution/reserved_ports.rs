//! Loopback ports for the processes a spawner starts on one machine (`--processes`,
//! [`LocalCluster`](crate::testing::LocalCluster)). The spawner binds every port itself and
//! each child inherits its bound socket, so no other program can take a port between the
//! moment it was found free and the moment the child listens on it (a child that lost that
//! race used to leave its peers waiting for it forever).

use std::net::{SocketAddr, TcpListener};
use std::process::Command;

/// Tells a child which inherited file descriptor is its listening socket.
const ENV_LISTEN_FD: &str = "BWX_LISTEN_FD";

/// Bound, listening loopback sockets, one per process, held until the processes start.
pub(crate) struct ReservedPorts {
    listeners: Vec<TcpListener>,
}

impl ReservedPorts {
    /// Binds `n` distinct loopback ports.
    pub(crate) fn bind(n: usize) -> std::io::Result<ReservedPorts> {
        let listeners = (0..n)
            .map(|_| TcpListener::bind(("127.0.0.1", 0)))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(ReservedPorts { listeners })
    }

    /// The processes' addresses, in process order.
    pub(crate) fn addresses(&self) -> std::io::Result<Vec<String>> {
        self.listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.to_string()))
            .collect()
    }

    /// Makes process `id`, started by `command`, inherit its listening socket. Elsewhere than
    /// on Unix the child binds its address itself.
    pub(crate) fn hand_to(&self, id: usize, command: &mut Command) {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            use std::os::unix::process::CommandExt;
            let fd = self.listeners[id].as_raw_fd();
            command.env(ENV_LISTEN_FD, fd.to_string());
            // SAFETY: runs in the forked child before exec and only calls fcntl, which is
            // async-signal-safe; it changes the child's copy of the descriptor table.
            unsafe {
                command.pre_exec(move || set_close_on_exec(fd, false));
            }
        }
        #[cfg(not(unix))]
        let _ = (id, command);
    }
}

/// The listening socket for `address` that this process's spawner handed to it, if any.
/// Taken at most once per process; anything that does not match (no variable, a descriptor
/// that is not a socket bound to `address`) gives `None`, and the caller binds `address`.
pub(crate) fn take_inherited(address: &str) -> Option<TcpListener> {
    #[cfg(unix)]
    {
        use std::mem::ManuallyDrop;
        use std::os::fd::FromRawFd;
        use std::sync::atomic::{AtomicBool, Ordering};

        static TAKEN: AtomicBool = AtomicBool::new(false);
        let fd: i32 = std::env::var(ENV_LISTEN_FD).ok()?.parse().ok()?;
        let wanted: SocketAddr = address.parse().ok()?;
        if fd < 0 {
            return None;
        }
        // SAFETY: only borrowed (never closed here) to ask what it is bound to; a descriptor
        // that is not a socket just makes `local_addr` fail.
        let probe = ManuallyDrop::new(unsafe { TcpListener::from_raw_fd(fd) });
        if probe.local_addr().ok()? != wanted || TAKEN.swap(true, Ordering::SeqCst) {
            return None;
        }
        // Our own children must not inherit it again.
        set_close_on_exec(fd, true).ok()?;
        Some(ManuallyDrop::into_inner(probe))
    }
    #[cfg(not(unix))]
    {
        let _ = address;
        None
    }
}

#[cfg(unix)]
fn set_close_on_exec(fd: i32, on: bool) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor number has no memory-safety preconditions; a bad
    // descriptor is reported as EBADF.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let flags = if on {
            flags | libc::FD_CLOEXEC
        } else {
            flags & !libc::FD_CLOEXEC
        };
        if libc::fcntl(fd, libc::F_SETFD, flags) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_distinct_loopback_addresses_held_bound() {
        let ports = ReservedPorts::bind(3).unwrap();
        let mut got = ports.addresses().unwrap();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|a| a.starts_with("127.0.0.1:")));
        // Still bound: nobody else can take them until the processes do.
        for address in &got {
            assert!(TcpListener::bind(address.as_str()).is_err(), "{address} was free");
        }
    }
}
