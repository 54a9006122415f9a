//! Connecting the processes of a cluster before timely takes the sockets over.
//!
//! timely's own set-up prints to stdout (mixing with a flow's output), retries only every
//! second, and panics when anything else connects to a worker's port while it waits. Here
//! every connection starts with a handshake that names the flow and the cluster shape;
//! a connection that does not speak it is dropped with a warning, and a peer that runs a
//! different flow or cluster shape is refused with a message saying which.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use timely::communication::Hooks;
use timely::communication::allocator::zero_copy::initialize::{
    CommsGuard, initialize_networking_from_sockets,
};
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};

use crate::errors::FlowError;

/// Opens every handshake; the version digit changes if the handshake does.
const MAGIC: [u8; 8] = *b"bwx-net1";
/// How long a connecting peer has to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between connection attempts (and between polls of the listener).
const RETRY: Duration = Duration::from_millis(20);
/// How often a process still waiting for its peers says so.
const NAG: Duration = Duration::from_secs(5);

/// What must agree between all processes of a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// A stable hash of the flow id.
    pub(crate) flow: u64,
    /// Number of processes.
    pub(crate) processes: u64,
    /// Worker threads per process.
    pub(crate) workers: u64,
}

impl Shape {
    pub(crate) fn new(flow_id: &str, processes: usize, workers: usize) -> Shape {
        Shape {
            flow: crate::route_hash(&flow_id.to_string()),
            processes: processes as u64,
            workers: workers as u64,
        }
    }
}

/// The answer to a hello.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Accepted = 0,
    OtherFlow = 1,
    OtherProcessCount = 2,
    OtherWorkerCount = 3,
    BadIndex = 4,
}

impl Verdict {
    fn from_byte(b: u8) -> Option<Verdict> {
        [
            Verdict::Accepted,
            Verdict::OtherFlow,
            Verdict::OtherProcessCount,
            Verdict::OtherWorkerCount,
            Verdict::BadIndex,
        ]
        .into_iter()
        .find(|v| *v as u8 == b)
    }

    fn explain(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::OtherFlow => "it runs a different flow",
            Verdict::OtherProcessCount => "it has a different number of processes (addresses)",
            Verdict::OtherWorkerCount => "it has a different number of workers per process (-w)",
            Verdict::BadIndex => "this process id is out of range there or already connected",
        }
    }
}

/// Connects to every other process and builds timely's allocators on the connections.
pub(crate) fn connect(
    addresses: &[String],
    process: usize,
    threads: usize,
    shape: Shape,
) -> Result<(Vec<AllocatorBuilder>, CommsGuard), FlowError> {
    let listener = match super::reserved_ports::take_inherited(&addresses[process]) {
        Some(listener) => listener,
        None => TcpListener::bind(addresses[process].as_str()).map_err(|e| {
            FlowError::Setup(format!(
                "process {process} cannot listen on {}: {e}",
                addresses[process]
            ))
        })?,
    };
    let (lower, higher) = std::thread::scope(|s| {
        let lower = s.spawn(|| connect_lower(addresses, process, shape));
        let higher = s.spawn(|| accept_higher(&listener, addresses.len(), process, shape));
        (join(lower), join(higher))
    });
    let mut sockets: Vec<Option<TcpStream>> = lower?.into_iter().map(Some).collect();
    sockets.push(None);
    sockets.extend(higher?.into_iter().map(Some));
    let hooks = Hooks::default();
    let local = ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
    let (builders, guard) = initialize_networking_from_sockets(local, sockets, process, threads, hooks)
        .map_err(|e| FlowError::Setup(format!("cannot start the network threads: {e}")))?;
    Ok((builders.into_iter().map(AllocatorBuilder::Tcp).collect(), guard))
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T, FlowError>>) -> Result<T, FlowError> {
    handle.join().unwrap_or_else(|_| {
        Err(FlowError::Setup(
            "the connection set-up thread panicked".to_string(),
        ))
    })
}

/// Connects to processes `0..process`, in order, retrying until each listens.
fn connect_lower(addresses: &[String], process: usize, shape: Shape) -> Result<Vec<TcpStream>, FlowError> {
    let mut streams = Vec::with_capacity(process);
    for (peer, address) in addresses.iter().enumerate().take(process) {
        let started = Instant::now();
        let mut nagged = started;
        let stream = loop {
            match TcpStream::connect(address.as_str()) {
                Ok(stream) => break stream,
                Err(e) => {
                    if nagged.elapsed() >= NAG {
                        nagged = Instant::now();
                        tracing::warn!(
                            "process {process}: still waiting for process {peer} at {address} after {:?}: {e}",
                            started.elapsed()
                        );
                    }
                    std::thread::sleep(RETRY);
                }
            }
        };
        streams.push(hello(stream, peer, address, process, shape)?);
    }
    Ok(streams)
}

/// Says hello to process `peer` and reads its verdict.
fn hello(
    mut stream: TcpStream,
    peer: usize,
    address: &str,
    process: usize,
    shape: Shape,
) -> Result<TcpStream, FlowError> {
    let failed = |e: io::Error| {
        FlowError::Setup(format!(
            "process {process}: the handshake with process {peer} at {address} failed: {e} \
             (is a bwx flow listening there?)"
        ))
    };
    stream.set_nodelay(true).map_err(failed)?;
    let mut message = Vec::with_capacity(40);
    message.extend_from_slice(&MAGIC);
    for word in [shape.flow, shape.processes, shape.workers, process as u64] {
        message.extend_from_slice(&word.to_le_bytes());
    }
    stream.write_all(&message).map_err(failed)?;
    stream.set_read_timeout(Some(HELLO_TIMEOUT)).map_err(failed)?;
    let mut answer = [0u8; 9];
    stream.read_exact(&mut answer).map_err(failed)?;
    stream.set_read_timeout(None).map_err(failed)?;
    if answer[..8] != MAGIC {
        return Err(failed(io::Error::other("it answered something else than bwx")));
    }
    match Verdict::from_byte(answer[8]) {
        Some(Verdict::Accepted) => Ok(stream),
        Some(verdict) => Err(FlowError::Setup(format!(
            "process {peer} at {address} refused process {process}: {}",
            verdict.explain()
        ))),
        None => Err(failed(io::Error::other("unknown answer"))),
    }
}

/// Accepts processes `process+1..processes`, in any order, dropping strays.
fn accept_higher(
    listener: &TcpListener,
    processes: usize,
    process: usize,
    shape: Shape,
) -> Result<Vec<TcpStream>, FlowError> {
    let mut peers: Vec<Option<TcpStream>> = (process + 1..processes).map(|_| None).collect();
    listener
        .set_nonblocking(true)
        .map_err(|e| FlowError::Setup(format!("cannot poll the listener: {e}")))?;
    let started = Instant::now();
    let mut nagged = started;
    while peers.iter().any(Option::is_none) {
        match listener.accept() {
            Ok((stream, from)) => match greet(stream, process, shape) {
                Ok((peer, stream)) if peers[peer - process - 1].is_none() => {
                    peers[peer - process - 1] = Some(stream);
                }
                Ok((peer, _)) => {
                    tracing::warn!(
                        "process {process}: dropped a second connection from process {peer} ({from})"
                    )
                }
                Err(why) => tracing::warn!("process {process}: dropped a connection from {from}: {why}"),
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if nagged.elapsed() >= NAG {
                    nagged = Instant::now();
                    let missing: Vec<usize> = (process + 1..processes)
                        .filter(|p| peers[p - process - 1].is_none())
                        .collect();
                    tracing::warn!(
                        "process {process}: still waiting for processes {missing:?} after {:?}",
                        started.elapsed()
                    );
                }
                std::thread::sleep(RETRY);
            }
            Err(e) => {
                return Err(FlowError::Setup(format!(
                    "process {process} cannot accept connections: {e}"
                )));
            }
        }
    }
    Ok(peers.into_iter().flatten().collect())
}

/// Reads a peer's hello and answers it; returns the peer's process id.
fn greet(mut stream: TcpStream, process: usize, shape: Shape) -> Result<(usize, TcpStream), String> {
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(HELLO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut hello = [0u8; 40];
    stream
        .read_exact(&mut hello)
        .map_err(|e| format!("no bwx handshake ({e})"))?;
    if hello[..8] != MAGIC {
        return Err("no bwx handshake".to_string());
    }
    let word = |i: usize| u64::from_le_bytes(hello[8 + 8 * i..16 + 8 * i].try_into().unwrap_or_default());
    let (flow, processes, workers, peer) = (word(0), word(1), word(2), word(3));
    let verdict = if flow != shape.flow {
        Verdict::OtherFlow
    } else if processes != shape.processes {
        Verdict::OtherProcessCount
    } else if workers != shape.workers {
        Verdict::OtherWorkerCount
    } else if peer <= process as u64 || peer >= shape.processes {
        Verdict::BadIndex
    } else {
        Verdict::Accepted
    };
    let mut answer = [0u8; 9];
    answer[..8].copy_from_slice(&MAGIC);
    answer[8] = verdict as u8;
    stream.write_all(&answer).map_err(|e| e.to_string())?;
    if verdict != Verdict::Accepted {
        return Err(format!(
            "process {peer} is not of this cluster: {}",
            verdict.explain()
        ));
    }
    stream.set_read_timeout(None).map_err(|e| e.to_string())?;
    Ok((peer as usize, stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        (listener, address)
    }

    #[test]
    fn strays_are_dropped_and_the_peer_connects() {
        let shape = Shape::new("f", 2, 2);
        let (listener, address) = listener();
        let addresses = vec![address.clone(), "127.0.0.1:1".to_string()];
        // Before the peer: one stray sends garbage, one hangs up at once.
        let mut garbage = TcpStream::connect(&address).unwrap();
        garbage
            .write_all(b"GET / HTTP/1.1\r\n\r\n0123456789012345678901234")
            .unwrap();
        drop(TcpStream::connect(&address).unwrap());
        let peer = std::thread::spawn(move || connect_lower(&addresses, 1, shape));
        let mut accepted = accept_higher(&listener, 2, 0, shape).unwrap();
        let mut connected = peer.join().unwrap().unwrap();
        assert_eq!((accepted.len(), connected.len()), (1, 1));
        // The connection works both ways after the handshake.
        connected[0].write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        accepted[0].read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        // The stray got no bwx answer.
        let mut answer = Vec::new();
        garbage.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = garbage.read_to_end(&mut answer);
        assert!(!answer.starts_with(&MAGIC), "{answer:?}");
    }

    #[test]
    fn a_peer_of_another_shape_is_refused_with_the_reason() {
        let (listener, address) = listener();
        let addresses = vec![address, "127.0.0.1:1".to_string()];
        let ours = Shape::new("f", 2, 2);
        let cases = [
            (Shape::new("f", 2, 3), "different number of workers per process"),
            (Shape::new("g", 2, 2), "different flow"),
        ];
        let acceptor = std::thread::spawn(move || accept_higher(&listener, 2, 0, ours));
        for (theirs, reason) in cases {
            let err = connect_lower(&addresses, 1, theirs).unwrap_err().to_string();
            assert!(err.contains("refused process 1") && err.contains(reason), "{err}");
        }
        // The listener kept waiting, and takes the right peer.
        assert_eq!(connect_lower(&addresses, 1, ours).unwrap().len(), 1);
        assert_eq!(acceptor.join().unwrap().unwrap().len(), 1);
    }

    #[test]
    fn something_else_on_the_port_is_a_clear_error() {
        let (listener, address) = listener();
        let other = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut hello = [0u8; 40];
            stream.read_exact(&mut hello).unwrap();
            stream.write_all(b"HTTP/1.1 400 Bad Request\r\n").unwrap();
        });
        let addresses = vec![address, "127.0.0.1:1".to_string()];
        let err = connect_lower(&addresses, 1, Shape::new("f", 2, 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("answered something else than bwx"), "{err}");
        other.join().unwrap();
    }
}
