//! Connecting the processes of a cluster before timely takes the sockets over.
//!
//! Every pair of processes opens two TCP connections, the higher process id connecting to
//! the lower one's address: one for timely's data ([`super::wire::PeerStream`]) and one for
//! heartbeats ([`super::heartbeat`]). Each starts with the handshake of
//! [`super::handshake`]: with a cluster secret, both ends prove it over fresh nonces, so a
//! stranger, a peer with another secret or a replayed handshake never reaches timely.
//!
//! - **Accepting** runs on its own thread for the whole execution, and serves each incoming
//!   connection's handshake on a thread of its own with a short deadline
//!   ([`HANDSHAKE_TIMEOUT`](super::handshake::HANDSHAKE_TIMEOUT)); at most
//!   [`MAX_PENDING`] at a time. An idle connection, a port scanner, garbage bytes or a wrong
//!   secret are refused and logged (a `warn` naming the remote address and why), and delay
//!   no real peer. Once every peer is connected, later connections are refused the same way.
//! - **Connecting** retries with a growing pause (50 ms up to 1 s) until the start-up
//!   deadline ([`ClusterOptions::startup_timeout`](super::ClusterOptions)); an address that
//!   does not resolve is retried the same way (a Kubernetes pod's name resolves only once
//!   the pod exists) and reported by name, with the last error, when the deadline passes.
//!   Explicit refusals (another flow, shape or secret; something that is not bwx) fail at
//!   once.
//! - **Listening** is on this process's own address, or on the bind address
//!   ([`ClusterOptions::bind`](super::ClusterOptions)), for example `0.0.0.0` in a container.
//!
//! Without a secret the handshake still checks the cluster shape, and a warning says that
//! the connections are not authenticated when any address is not a loopback one.
//!
//! # Encryption
//!
//! timely 0.32 builds its network threads over any type that implements its `Stream`
//! trait (`initialize_networking_from_sockets`), so the bytes can be sealed without forking
//! timely: with `--cluster-encryption` every write of timely's sender becomes one
//! ChaCha20-Poly1305 record under a per-connection, per-direction key derived from the
//! handshake (see [`super::wire`]). What it does not give: forward secrecy (the keys derive
//! from the shared secret and the handshake's nonces; whoever records the traffic and later
//! learns the secret can read it — a Diffie-Hellman exchange in the handshake would fix
//! that), and certificates (every process holds the same secret). Without encryption the
//! handshake authenticates each connection's start only: use encryption on any network
//! where someone could read or inject packets.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::handshake::{self, Accepted, ConnectError, HANDSHAKE_TIMEOUT, Kind, Security, Session, Shape};
use crate::errors::FlowError;

/// At most this many handshakes are served at a time; further connections are dropped.
pub(crate) const MAX_PENDING: usize = 64;
/// The first pause between connection attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often a process still waiting for its peers says so.
const NAG: Duration = Duration::from_secs(5);
/// How often waiting loops look at the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// What set-up needs to know besides the addresses.
pub(crate) struct Setup<'a> {
    pub(crate) process: usize,
    pub(crate) shape: Shape,
    pub(crate) security: &'a Security,
    pub(crate) bind: Option<&'a str>,
    pub(crate) startup_timeout: Duration,
    /// The graceful-stop flag: a stop during set-up ends it with an error.
    pub(crate) stop: &'a AtomicBool,
}

/// One connection to a peer, after its handshake.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) stream: TcpStream,
    pub(crate) session: Session,
}

/// Every connection of this process, indexed by peer (`None` at this process's index).
#[derive(Debug)]
pub(crate) struct Links {
    pub(crate) data: Vec<Option<Link>>,
    pub(crate) heartbeats: Vec<Option<Link>>,
    /// Keeps refusing late connections until dropped.
    pub(crate) listener: Listening,
}

/// Connects to every other process (see the module docs).
pub(crate) fn connect(addresses: &[String], setup: &Setup<'_>) -> Result<Links, FlowError> {
    let me = setup.process;
    if setup.security.secret.is_none() {
        warn_if_exposed(addresses, setup.bind, me);
    }
    let listener = listen(addresses, setup)?;
    let expected: HashSet<(usize, Kind)> = (me + 1..addresses.len())
        .flat_map(|p| [(p, Kind::Data), (p, Kind::Heartbeat)])
        .collect();
    let (tx, rx) = mpsc::channel();
    let listening = Listening::start(listener, me, setup.shape, setup.security.clone(), tx)?;
    let deadline = Instant::now() + setup.startup_timeout;
    let abort = AtomicBool::new(false);
    let (lower, higher) = std::thread::scope(|s| {
        let connectors: Vec<_> = (0..me)
            .map(|peer| {
                let (abort, address) = (&abort, addresses[peer].as_str());
                s.spawn(move || {
                    let outcome = connect_to(peer, address, setup, deadline, abort);
                    if outcome.is_err() {
                        abort.store(true, Ordering::SeqCst);
                    }
                    outcome
                })
            })
            .collect();
        let higher = collect(&rx, expected, addresses, setup, deadline, &abort);
        if higher.is_err() {
            abort.store(true, Ordering::SeqCst);
        }
        let outcomes: Vec<Result<(Link, Link), FlowError>> = connectors
            .into_iter()
            .map(|c| {
                c.join()
                    .unwrap_or_else(|_| Err(FlowError::Setup("a connecting thread panicked".to_string())))
            })
            .collect();
        // The error that made the others abandon, not theirs.
        let cause = outcomes
            .iter()
            .filter_map(|o| o.as_ref().err())
            .min_by_key(|e| is_abort(e))
            .cloned();
        let lower = match cause {
            Some(err) => Err(err),
            None => Ok(outcomes.into_iter().flatten().collect::<Vec<_>>()),
        };
        (lower, higher)
    });
    // The first error that is not just "stopped because another part failed".
    let (lower, mut higher) = match (lower, higher) {
        (Ok(lower), Ok(higher)) => (lower, higher),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
        (Err(a), Err(b)) => return Err(if is_abort(&a) { b } else { a }),
    };
    let mut data = Vec::with_capacity(addresses.len());
    let mut heartbeats = Vec::with_capacity(addresses.len());
    for (d, h) in lower {
        data.push(Some(d));
        heartbeats.push(Some(h));
    }
    data.push(None);
    heartbeats.push(None);
    for peer in me + 1..addresses.len() {
        data.push(higher.remove(&(peer, Kind::Data)));
        heartbeats.push(higher.remove(&(peer, Kind::Heartbeat)));
    }
    Ok(Links {
        data,
        heartbeats,
        listener: listening,
    })
}

const ABORTED: &str = "set-up was abandoned";

fn is_abort(err: &FlowError) -> bool {
    matches!(err, FlowError::Setup(m) if m.contains(ABORTED))
}

fn listen(addresses: &[String], setup: &Setup<'_>) -> Result<TcpListener, FlowError> {
    let me = setup.process;
    let address = listen_address(addresses, setup.bind, me);
    if let Some(listener) = super::reserved_ports::take_inherited(&address) {
        return Ok(listener);
    }
    TcpListener::bind(address.as_str())
        .map_err(|e| FlowError::Setup(format!("process {me} cannot listen on {address}: {e}")))
}

/// This process's own address, or the bind address; a bind address without a port
/// (`0.0.0.0`, `::`, a host name) takes the port of this process's address.
pub(crate) fn listen_address(addresses: &[String], bind: Option<&str>, me: usize) -> String {
    let own = &addresses[me];
    let Some(bind) = bind else { return own.clone() };
    let port: u16 = own
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0);
    if bind.parse::<SocketAddr>().is_ok() {
        return bind.to_string();
    }
    if let Ok(ip) = bind.trim_matches(['[', ']']).parse::<IpAddr>() {
        return SocketAddr::new(ip, port).to_string();
    }
    if bind
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        return bind.to_string();
    }
    format!("{bind}:{port}")
}

/// Warns that a cluster without a secret is open to anyone who reaches its ports.
fn warn_if_exposed(addresses: &[String], bind: Option<&str>, me: usize) {
    let loopback = |address: &str| {
        address
            .to_socket_addrs()
            .map(|mut all| all.all(|a| a.ip().is_loopback()))
            .unwrap_or(false)
    };
    let mut exposed: Vec<String> = addresses.iter().filter(|a| !loopback(a)).cloned().collect();
    let listening = listen_address(addresses, bind, me);
    if !loopback(&listening) && !exposed.contains(&listening) {
        exposed.push(listening);
    }
    if !exposed.is_empty() {
        tracing::warn!(
            "process {me}: the cluster connections are not authenticated: anyone who reaches {} \
             can join or disturb this flow; set BWX_CLUSTER_SECRET or BWX_CLUSTER_SECRET_FILE \
             (the same secret on every process)",
            exposed.join(", ")
        );
    }
}

/// Waits for every higher process's two connections.
fn collect(
    rx: &mpsc::Receiver<(Accepted, TcpStream)>,
    mut expected: HashSet<(usize, Kind)>,
    addresses: &[String],
    setup: &Setup<'_>,
    deadline: Instant,
    abort: &AtomicBool,
) -> Result<std::collections::HashMap<(usize, Kind), Link>, FlowError> {
    let me = setup.process;
    let started = Instant::now();
    let mut nagged = started;
    let mut got = std::collections::HashMap::new();
    while !expected.is_empty() {
        if abort.load(Ordering::SeqCst) {
            return Err(FlowError::Setup(format!("process {me}: {ABORTED}")));
        }
        if setup.stop.load(Ordering::SeqCst) {
            return Err(stopped(me));
        }
        let missing = || {
            let mut peers: Vec<usize> = expected.iter().map(|(p, _)| *p).collect();
            peers.sort_unstable();
            peers.dedup();
            peers
                .iter()
                .map(|p| format!("process {p} ({})", addresses[*p]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if Instant::now() >= deadline {
            return Err(FlowError::Setup(format!(
                "process {me}: {} did not connect within the start-up timeout of {:?}",
                missing(),
                setup.startup_timeout
            )));
        }
        if nagged.elapsed() >= NAG {
            nagged = Instant::now();
            tracing::warn!(
                "process {me}: still waiting for {} after {:?}",
                missing(),
                started.elapsed()
            );
        }
        match rx.recv_timeout(TICK) {
            Ok((accepted, stream)) => {
                // The handshake claimed the slot, so each arrives once.
                expected.remove(&(accepted.peer, accepted.kind));
                got.insert(
                    (accepted.peer, accepted.kind),
                    Link {
                        stream,
                        session: accepted.session,
                    },
                );
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(FlowError::Setup(format!(
                    "process {me} stopped accepting connections"
                )));
            }
        }
    }
    Ok(got)
}

fn stopped(me: usize) -> FlowError {
    FlowError::Setup(format!(
        "process {me} was asked to stop while connecting to the cluster, before the flow started"
    ))
}

/// Connects to the lower process `peer`: its data connection, then its heartbeat one.
fn connect_to(
    peer: usize,
    address: &str,
    setup: &Setup<'_>,
    deadline: Instant,
    abort: &AtomicBool,
) -> Result<(Link, Link), FlowError> {
    let data = connect_kind(peer, address, Kind::Data, setup, deadline, abort)?;
    let heartbeat = connect_kind(peer, address, Kind::Heartbeat, setup, deadline, abort)?;
    Ok((data, heartbeat))
}

fn connect_kind(
    peer: usize,
    address: &str,
    kind: Kind,
    setup: &Setup<'_>,
    deadline: Instant,
    abort: &AtomicBool,
) -> Result<Link, FlowError> {
    let me = setup.process;
    let started = Instant::now();
    let mut nagged = started;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let last = match try_connect(peer, address, kind, setup, deadline) {
            Ok(link) => return Ok(link),
            Err(Attempt::Retry(why)) => why,
            Err(Attempt::Fail(err)) => return Err(err),
        };
        if nagged.elapsed() >= NAG {
            nagged = Instant::now();
            tracing::warn!(
                "process {me}: still trying to reach process {peer} at {address} after {:?}: {last}",
                started.elapsed()
            );
        }
        let resume = Instant::now() + backoff;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        loop {
            if abort.load(Ordering::SeqCst) {
                return Err(FlowError::Setup(format!("process {me}: {ABORTED}")));
            }
            if setup.stop.load(Ordering::SeqCst) {
                return Err(stopped(me));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(FlowError::Setup(format!(
                    "process {me} could not reach process {peer} at {address} within the start-up \
                     timeout of {:?}: {last}",
                    setup.startup_timeout
                )));
            }
            if now >= resume {
                break;
            }
            std::thread::sleep(TICK.min(resume - now));
        }
    }
}

enum Attempt {
    /// Worth another try; why this one failed.
    Retry(String),
    Fail(FlowError),
}

fn try_connect(
    peer: usize,
    address: &str,
    kind: Kind,
    setup: &Setup<'_>,
    deadline: Instant,
) -> Result<Link, Attempt> {
    let me = setup.process;
    let resolved: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| Attempt::Retry(format!("cannot resolve '{address}': {e}")))?
        .collect();
    let mut last = format!("'{address}' resolves to no address");
    for target in resolved {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut stream = match TcpStream::connect_timeout(&target, left.min(HANDSHAKE_TIMEOUT)) {
            Ok(stream) => stream,
            Err(e) => {
                last = format!("cannot connect to {target}: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handshake_deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        match handshake::connect(
            &mut stream,
            me,
            peer,
            kind,
            setup.shape,
            setup.security,
            handshake_deadline,
        ) {
            Ok(session) => {
                let cleared = stream
                    .set_read_timeout(None)
                    .and_then(|()| stream.set_write_timeout(None));
                return match cleared {
                    Ok(()) => Ok(Link { stream, session }),
                    Err(e) => Err(Attempt::Retry(e.to_string())),
                };
            }
            Err(ConnectError::Io(e)) => last = format!("the handshake with {target} failed: {e}"),
            Err(ConnectError::NotBwx) => {
                return Err(Attempt::Fail(FlowError::Setup(format!(
                    "process {me}: something that is not process {peer} of this bwx flow answers at {address}"
                ))));
            }
            Err(ConnectError::Security(why)) => {
                return Err(Attempt::Fail(FlowError::Setup(format!(
                    "process {me} cannot join process {peer} at {address}: {why}"
                ))));
            }
            Err(ConnectError::Refused(verdict)) => {
                return Err(Attempt::Fail(FlowError::Setup(format!(
                    "process {peer} at {address} refused process {me}: {}",
                    verdict.explain()
                ))));
            }
        }
    }
    Err(Attempt::Retry(last))
}

/// The listening socket and the thread serving it, for the whole execution.
#[derive(Debug)]
pub(crate) struct Listening {
    listener: Arc<TcpListener>,
    closing: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listening {
    fn start(
        listener: TcpListener,
        me: usize,
        shape: Shape,
        security: Security,
        tx: mpsc::Sender<(Accepted, TcpStream)>,
    ) -> Result<Listening, FlowError> {
        listener
            .set_nonblocking(false)
            .map_err(|e| FlowError::Setup(format!("process {me} cannot use its listening socket: {e}")))?;
        let listener = Arc::new(listener);
        let closing = Arc::new(AtomicBool::new(false));
        let thread = {
            let (listener, closing) = (listener.clone(), closing.clone());
            std::thread::Builder::new()
                .name("bwx:accept".to_string())
                .spawn(move || serve(&listener, me, shape, security, &tx, &closing))
                .map_err(|e| FlowError::Setup(format!("cannot start the accepting thread: {e}")))?
        };
        Ok(Listening {
            listener,
            closing,
            thread: Some(thread),
        })
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        if wake_accept(&self.listener)
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}

/// Makes a blocked `accept` return (Linux: shutting a listening socket down does that).
/// Elsewhere the accepting thread ends with the process.
fn wake_accept(listener: &TcpListener) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: shutdown on a descriptor we own has no memory-safety preconditions.
        unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = listener;
        false
    }
}

/// Accepts connections until closed; each handshake runs on a thread of its own.
fn serve(
    listener: &TcpListener,
    me: usize,
    shape: Shape,
    security: Security,
    tx: &mpsc::Sender<(Accepted, TcpStream)>,
    closing: &AtomicBool,
) {
    let security = Arc::new(security);
    let claimed: Arc<Mutex<HashSet<(usize, Kind)>>> = Arc::default();
    let pending = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = listener.accept();
        if closing.load(Ordering::SeqCst) {
            return;
        }
        let (stream, from) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, a connection reset before it was taken...: keep serving.
                tracing::warn!("process {me}: accepting a connection failed: {e}");
                std::thread::sleep(TICK);
                continue;
            }
        };
        if pending.load(Ordering::SeqCst) >= MAX_PENDING {
            tracing::warn!(
                "process {me}: refused a connection from {from}: {MAX_PENDING} handshakes are already in progress"
            );
            continue;
        }
        pending.fetch_add(1, Ordering::SeqCst);
        let (security, claimed, pending, tx) =
            (security.clone(), claimed.clone(), pending.clone(), tx.clone());
        let spawned = std::thread::Builder::new()
            .name("bwx:handshake".to_string())
            .spawn(move || {
                let outcome = greet(stream, me, shape, &security, &claimed);
                pending.fetch_sub(1, Ordering::SeqCst);
                match outcome {
                    Ok((accepted, stream)) => {
                        let (peer, kind) = (accepted.peer, accepted.kind);
                        if tx.send((accepted, stream)).is_err() {
                            tracing::warn!(
                                "process {me}: process {peer} connected ({kind:?}) after set-up ended"
                            );
                        }
                    }
                    Err(why) => tracing::warn!("process {me}: refused a connection from {from}: {why}"),
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(
                "process {me}: refused a connection from {from}: no thread for its handshake: {e}"
            );
        }
    }
}

fn greet(
    mut stream: TcpStream,
    me: usize,
    shape: Shape,
    security: &Security,
    claimed: &Mutex<HashSet<(usize, Kind)>>,
) -> Result<(Accepted, TcpStream), String> {
    let lock = || claimed.lock().unwrap_or_else(|e| e.into_inner());
    let claim = |peer: usize, kind: Kind| lock().insert((peer, kind));
    let release = |peer: usize, kind: Kind| {
        lock().remove(&(peer, kind));
    };
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let accepted = handshake::accept(&mut stream, me, shape, security, deadline, &claim, &release)?;
    let cleared = stream
        .set_read_timeout(None)
        .and_then(|()| stream.set_write_timeout(None));
    if let Err(e) = cleared {
        release(accepted.peer, accepted.kind);
        return Err(e.to_string());
    }
    Ok((accepted, stream))
}

/// Shuts a connection down both ways, waking any thread blocked on it.
pub(crate) fn sever(stream: &TcpStream) -> io::Result<()> {
    stream.shutdown(std::net::Shutdown::Both)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::execution::secret::ClusterSecret;

    fn secured() -> Security {
        Security {
            secret: Some(ClusterSecret::new("the secret of this test cluster").unwrap()),
            encrypt: false,
        }
    }

    fn free_addresses(n: usize) -> Vec<String> {
        let held: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        held.iter().map(|l| l.local_addr().unwrap().to_string()).collect()
    }

    fn run(
        addresses: &[String],
        me: usize,
        security: &Security,
        shape: Shape,
        timeout: Duration,
    ) -> Result<Links, FlowError> {
        let stop = AtomicBool::new(false);
        connect(
            addresses,
            &Setup {
                process: me,
                shape,
                security,
                bind: None,
                startup_timeout: timeout,
                stop: &stop,
            },
        )
    }

    #[test]
    fn idle_strangers_garbage_and_wrong_secrets_delay_no_peer() {
        let addresses = free_addresses(2);
        let shape = Shape::new("f", 2, 1);
        let acceptor = {
            let addresses = addresses.clone();
            std::thread::spawn(move || run(&addresses, 0, &secured(), shape, Duration::from_secs(20)))
        };
        // Wait for the listener, then pester it: idle connections, garbage, a scanner.
        let mut idle = Vec::new();
        let started = Instant::now();
        while idle.is_empty() {
            if let Ok(s) = TcpStream::connect(&addresses[0]) {
                idle.push(s);
            }
            assert!(started.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(10));
        }
        for _ in 0..20 {
            idle.push(TcpStream::connect(&addresses[0]).unwrap());
        }
        let mut garbage = TcpStream::connect(&addresses[0]).unwrap();
        garbage.write_all(&[0xAB; 4096]).unwrap();
        drop(TcpStream::connect(&addresses[0]).unwrap());
        // A peer with another secret fails with a clear error; the acceptor runs on.
        let wrong = Security {
            secret: Some(ClusterSecret::new("not the secret of this cluster").unwrap()),
            encrypt: false,
        };
        let err = run(&addresses, 1, &wrong, shape, Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(err.contains("secrets differ"), "{err}");
        // The real peer connects at once despite the idle connections.
        let connected_at = Instant::now();
        let links = run(&addresses, 1, &secured(), shape, Duration::from_secs(5)).unwrap();
        assert!(
            connected_at.elapsed() < Duration::from_secs(2),
            "{:?}",
            connected_at.elapsed()
        );
        let accepted = acceptor.join().unwrap().unwrap();
        // Both connections work both ways.
        let mut ours = links.data[0].as_ref().unwrap().stream.try_clone().unwrap();
        let mut theirs = accepted.data[1].as_ref().unwrap().stream.try_clone().unwrap();
        ours.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        assert!(links.heartbeats[0].is_some() && accepted.heartbeats[1].is_some());
        // The garbage got no answer that passes for bwx.
        let mut answer = Vec::new();
        garbage.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = garbage.read_to_end(&mut answer);
        assert!(answer.len() < 9 || answer[answer.len() - 1] != 0, "{answer:?}");
    }

    #[test]
    fn an_unreachable_or_unresolvable_peer_is_named_at_the_deadline() {
        let addresses = vec![
            "no-such-host.invalid:2101".to_string(),
            free_addresses(1)[0].clone(),
        ];
        let started = Instant::now();
        let err = run(
            &addresses,
            1,
            &secured(),
            Shape::new("f", 2, 1),
            Duration::from_millis(600),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("could not reach process 0 at no-such-host.invalid:2101")
                && err.contains("cannot resolve"),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // A listener that waits for a process that never comes names it too.
        let addresses = free_addresses(3);
        let err = run(
            &addresses,
            0,
            &secured(),
            Shape::new("f", 3, 1),
            Duration::from_millis(300),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("process 1 (") && err.contains("process 2 (") && err.contains("did not connect"),
            "{err}"
        );
    }

    #[test]
    fn a_bind_address_without_a_port_takes_this_process_s_port() {
        let addresses = vec!["flow-0.flow:9999".to_string(), "flow-1.flow:9998".to_string()];
        assert_eq!(listen_address(&addresses, None, 1), "flow-1.flow:9998");
        assert_eq!(listen_address(&addresses, Some("0.0.0.0"), 1), "0.0.0.0:9998");
        assert_eq!(listen_address(&addresses, Some("::"), 0), "[::]:9999");
        assert_eq!(listen_address(&addresses, Some("[::1]"), 0), "[::1]:9999");
        assert_eq!(
            listen_address(&addresses, Some("10.0.0.7:7000"), 0),
            "10.0.0.7:7000"
        );
        assert_eq!(listen_address(&addresses, Some("my-host"), 0), "my-host:9999");
        assert_eq!(
            listen_address(&addresses, Some("my-host:7000"), 0),
            "my-host:7000"
        );
    }

    #[test]
    fn something_else_on_the_port_is_a_clear_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let other = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut hello = [0u8; handshake::Hello::LEN];
            stream.read_exact(&mut hello).unwrap();
            stream.write_all(&[b'H'; 100]).unwrap();
        });
        let addresses = vec![address, free_addresses(1)[0].clone()];
        let err = run(
            &addresses,
            1,
            &Security::default(),
            Shape::new("f", 2, 1),
            Duration::from_secs(5),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not process 0 of this bwx flow"), "{err}");
        other.join().unwrap();
    }
}
