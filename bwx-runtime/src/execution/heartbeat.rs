//! Noticing peers that stop answering, and telling peers about stops, off the worker threads.
//!
//! Each pair of processes keeps a second connection ([`Kind::Heartbeat`](super::handshake::Kind))
//! beside timely's. One thread per process sends a beat to every peer each quarter of the
//! heartbeat timeout; one thread per peer reads that peer's beats. A peer that sends nothing
//! for the whole timeout — stopped (SIGSTOP), hung, or cut off by the network — stops this
//! process's execution with an error naming it, and its data connection is severed so that
//! timely's network threads, blocked on it, let the process exit. Worker threads take no
//! part, so a user function that runs for minutes triggers nothing.
//!
//! The connection also carries what a process wants its peers to know at once:
//! - `Stop`: it was asked to stop gracefully (SIGTERM, Ctrl-C): every peer stops too, each
//!   with a final snapshot, instead of waiting for inputs that one process no longer reads.
//!   The stop has two phases, so that no process takes the end of the inputs for the end of
//!   the stream (and emits what only that should): the asking process marks itself stopping
//!   and sends `Stop`; a peer marks itself stopping and answers `StopAck`; once every peer
//!   has answered (or after the heartbeat timeout), the asking process stops its inputs and
//!   sends `Go`, on which every peer stops its inputs. Every process is marked stopping
//!   before any input stops.
//! - `Failed`: why its execution failed, so that peers name the cause, not a lost connection;
//! - `Done`: it finished; its connections closing afterwards is no failure.
//!
//! Each message carries a sequence number and an HMAC under a key of this connection and
//! direction (from the handshake), so nothing injected or replayed passes.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::wire::PeerLink;
use crate::engine::failure::Failure;
use crate::errors::FlowError;

/// The longest reason a `Failed` message carries.
const MAX_TEXT: usize = 4096;
const MAC: usize = 32;
const FIXED: usize = 1 + 8 + 2;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Message {
    Beat,
    Stop,
    Done,
    Failed(String),
    StopAck,
    Go,
}

impl Message {
    fn code(&self) -> u8 {
        match self {
            Message::Beat => 0,
            Message::Stop => 1,
            Message::Done => 2,
            Message::Failed(_) => 3,
            Message::StopAck => 4,
            Message::Go => 5,
        }
    }
}

fn mac_of(key: &[u8; 32], head: &[u8], text: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC-SHA-256 takes keys of any length");
    mac.update(head);
    mac.update(text);
    mac
}

fn encode(message: &Message, seq: u64, key: &[u8; 32]) -> Vec<u8> {
    let text: &[u8] = match message {
        Message::Failed(why) => &why.as_bytes()[..why.len().min(MAX_TEXT)],
        _ => &[],
    };
    let mut out = Vec::with_capacity(FIXED + text.len() + MAC);
    out.push(message.code());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text);
    let tag = mac_of(key, &out[..FIXED], text).finalize().into_bytes();
    out.extend_from_slice(&tag);
    out
}

/// Reads one message before `deadline`. `Ok(None)`: the deadline passed.
fn read_message(
    stream: &mut impl Read,
    set_timeout: &dyn Fn(Duration) -> io::Result<()>,
    deadline: Instant,
    key: &[u8; 32],
    last_seq: &mut Option<u64>,
) -> io::Result<Option<Message>> {
    let mut head = [0u8; FIXED];
    if !read_until(stream, set_timeout, &mut head, deadline)? {
        return Ok(None);
    }
    let len = u16::from_be_bytes([head[9], head[10]]) as usize;
    if len > MAX_TEXT {
        return Err(invalid("a heartbeat message too long"));
    }
    let mut rest = vec![0u8; len + MAC];
    // The rest of a message follows at once; give it a moment even past the deadline.
    if !read_until(
        stream,
        set_timeout,
        &mut rest,
        deadline.max(Instant::now() + Duration::from_millis(100)),
    )? {
        return Ok(None);
    }
    let (text, tag) = rest.split_at(len);
    mac_of(key, &head, text)
        .verify_slice(tag)
        .map_err(|_| invalid("a heartbeat message failed authentication"))?;
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&head[1..9]);
    let seq = u64::from_be_bytes(seq);
    if last_seq.is_some_and(|last| seq <= last) {
        return Err(invalid("a heartbeat message out of order (replayed)"));
    }
    *last_seq = Some(seq);
    match head[0] {
        0 => Ok(Some(Message::Beat)),
        1 => Ok(Some(Message::Stop)),
        2 => Ok(Some(Message::Done)),
        3 => Ok(Some(Message::Failed(String::from_utf8_lossy(text).into_owned()))),
        4 => Ok(Some(Message::StopAck)),
        5 => Ok(Some(Message::Go)),
        _ => Err(invalid("an unknown heartbeat message")),
    }
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}

/// Fills `buf` before `deadline`: `Ok(false)` if it passed first.
fn read_until(
    stream: &mut impl Read,
    set_timeout: &dyn Fn(Duration) -> io::Result<()>,
    buf: &mut [u8],
    deadline: Instant,
) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        set_timeout(left)?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed",
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// One peer, as the heartbeat sees it.
pub(crate) struct HeartbeatPeer {
    pub(crate) link: Arc<PeerLink>,
    /// The heartbeat connection.
    pub(crate) stream: TcpStream,
    /// A handle on the data connection, to sever it when the peer stops answering.
    pub(crate) data: TcpStream,
    /// This side's (send, receive) keys.
    pub(crate) keys: ([u8; 32], [u8; 32]),
}

/// How the local execution ended, for the peers.
pub(crate) enum Ending {
    Done,
    Failed(String),
}

/// The flags a graceful stop goes through.
#[derive(Clone)]
pub(crate) struct StopFlags {
    /// Set by whoever asks this process to stop (a signal handler, the caller).
    pub(crate) requested: Arc<AtomicBool>,
    /// That a stop is under way: the end of the inputs is then not the end of the stream.
    pub(crate) stopping: Arc<AtomicBool>,
    /// What the engine's inputs read.
    pub(crate) engine: Arc<AtomicBool>,
}

/// The sending half of one peer's heartbeat connection (the reader answers `Stop` on it).
struct Out {
    stream: TcpStream,
    key: [u8; 32],
    seq: u64,
}

impl Out {
    fn send(&mut self, message: &Message) {
        self.seq += 1;
        // A peer that cannot take a message is the readers' business.
        let _ = self.stream.write_all(&encode(message, self.seq, &self.key));
    }
}

type SharedOut = Arc<Mutex<Out>>;

fn lock(out: &SharedOut) -> std::sync::MutexGuard<'_, Out> {
    out.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running heartbeat of this process.
pub(crate) struct Heartbeat {
    tell: mpsc::Sender<Ending>,
    sender: Option<JoinHandle<()>>,
    readers: Vec<JoinHandle<()>>,
    streams: Vec<TcpStream>,
    closing: Arc<AtomicBool>,
}

impl Heartbeat {
    /// Starts beating to and listening for `peers`.
    pub(crate) fn start(
        peers: Vec<HeartbeatPeer>,
        timeout: Duration,
        failure: Arc<Failure>,
        stop: StopFlags,
    ) -> io::Result<Heartbeat> {
        let interval = (timeout / 4).max(Duration::from_millis(10));
        let closing = Arc::new(AtomicBool::new(false));
        let mut streams = Vec::with_capacity(peers.len());
        let mut outs = Vec::with_capacity(peers.len());
        let mut answered = Vec::with_capacity(peers.len());
        let mut readers = Vec::with_capacity(peers.len());
        for peer in peers {
            peer.stream
                .set_write_timeout(Some(interval.max(Duration::from_millis(100))))?;
            streams.push(peer.stream.try_clone()?);
            let out = Arc::new(Mutex::new(Out {
                stream: peer.stream.try_clone()?,
                key: peer.keys.0,
                seq: 0,
            }));
            let done = Arc::new(AtomicBool::new(false));
            outs.push(out.clone());
            answered.push(done.clone());
            let (failure, stop, closing) = (failure.clone(), stop.clone(), closing.clone());
            let watch = Watch {
                timeout,
                out,
                answered: done,
            };
            readers.push(
                std::thread::Builder::new()
                    .name(format!("bwx:heartbeat-{}", peer.link.peer))
                    .spawn(move || listen(peer, &watch, &failure, &stop, &closing))?,
            );
        }
        let (tell, told) = mpsc::channel();
        let beats = Beats {
            outs,
            answered,
            interval,
            timeout,
        };
        let sender = std::thread::Builder::new()
            .name("bwx:heartbeat".to_string())
            .spawn(move || beat(beats, &told, &failure, &stop))?;
        Ok(Heartbeat {
            tell,
            sender: Some(sender),
            readers,
            streams,
            closing,
        })
    }

    /// Tells the peers how this process ended and stops the threads.
    pub(crate) fn finish(mut self, ending: Ending) {
        let _ = self.tell.send(ending);
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
        self.closing.store(true, Ordering::SeqCst);
        for stream in &self.streams {
            // Read what is pending, so closing sends no reset that could overtake `Done`.
            let _ = stream.set_nonblocking(true);
            let mut sink = [0u8; 512];
            while matches!((&*stream).read(&mut sink), Ok(n) if n > 0) {}
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// What the sending thread works with.
struct Beats {
    outs: Vec<SharedOut>,
    /// Per peer: it acknowledged this process's `Stop`, or finished.
    answered: Vec<Arc<AtomicBool>>,
    interval: Duration,
    timeout: Duration,
}

/// How often the sending thread looks at the stop request between beats.
const STOP_POLL: Duration = Duration::from_millis(50);

/// The sending thread: a beat to every peer each interval, `Stop` once a stop is requested
/// here (and the engine's flag once the peers acknowledged it), `Failed` once this process
/// fails, and the ending when told.
fn beat(beats: Beats, told: &mpsc::Receiver<Ending>, failure: &Failure, stop: &StopFlags) {
    let send = |message: &Message| {
        for out in &beats.outs {
            lock(out).send(message);
        }
    };
    let mut stop_sent: Option<Instant> = None;
    let mut failure_sent = false;
    let mut next_beat = Instant::now();
    loop {
        let ending = match told.recv_timeout(beats.interval.min(STOP_POLL)) {
            Ok(ending) => Some(ending),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if !failure_sent && let Some(err) = failure.error_from_here() {
            failure_sent = true;
            send(&Message::Failed(err.to_string()));
        }
        match ending {
            Some(Ending::Done) => return send(&Message::Done),
            Some(Ending::Failed(why)) => {
                if !failure_sent {
                    send(&Message::Failed(why));
                }
                return;
            }
            None => {}
        }
        if stop_sent.is_none() && stop.requested.load(Ordering::SeqCst) {
            stop_sent = Some(Instant::now());
            stop.stopping.store(true, Ordering::SeqCst);
            send(&Message::Stop);
        }
        if let Some(at) = stop_sent
            && !stop.engine.load(Ordering::SeqCst)
            && (beats.answered.iter().all(|a| a.load(Ordering::SeqCst)) || at.elapsed() >= beats.timeout)
        {
            stop.engine.store(true, Ordering::SeqCst);
            send(&Message::Go);
        }
        if Instant::now() >= next_beat {
            next_beat = Instant::now() + beats.interval;
            send(&Message::Beat);
        }
    }
}

/// What the reading thread of one peer works with.
struct Watch {
    timeout: Duration,
    /// Where to answer a `Stop`.
    out: SharedOut,
    answered: Arc<AtomicBool>,
}

/// The reading thread of one peer.
fn listen(peer: HeartbeatPeer, watch: &Watch, failure: &Failure, stop: &StopFlags, closing: &AtomicBool) {
    let HeartbeatPeer {
        link,
        stream,
        data,
        keys,
    } = peer;
    let timeout = watch.timeout;
    let name = format!("process {} ({})", link.peer, link.address);
    let mut reader = match stream.try_clone() {
        Ok(reader) => reader,
        Err(e) => {
            failure.fail(FlowError::Cluster(format!("cannot watch {name}: {e}")));
            return;
        }
    };
    let set_timeout = |t: Duration| stream.set_read_timeout(Some(t));
    let mut last_seq = None;
    let mut heard = Instant::now();
    loop {
        let read = read_message(&mut reader, &set_timeout, heard + timeout, &keys.1, &mut last_seq);
        if closing.load(Ordering::SeqCst) {
            return;
        }
        match read {
            Ok(Some(Message::Beat)) => heard = Instant::now(),
            Ok(Some(Message::Stop)) => {
                heard = Instant::now();
                if !stop.stopping.swap(true, Ordering::SeqCst) {
                    tracing::info!("{name} is stopping; stopping this process too");
                }
                lock(&watch.out).send(&Message::StopAck);
            }
            Ok(Some(Message::Go)) => {
                heard = Instant::now();
                stop.stopping.store(true, Ordering::SeqCst);
                stop.engine.store(true, Ordering::SeqCst);
            }
            Ok(Some(Message::StopAck)) => {
                heard = Instant::now();
                watch.answered.store(true, Ordering::SeqCst);
            }
            Ok(Some(Message::Done)) => {
                watch.answered.store(true, Ordering::SeqCst);
                return;
            }
            Ok(Some(Message::Failed(why))) => {
                failure.fail_from_peer(FlowError::Cluster(format!("{name} failed: {why}")));
                return;
            }
            Ok(None) => {
                // Only a peer still owing data is a failure; one that finished may be slow to say so.
                if link.finished() {
                    return;
                }
                failure.fail(FlowError::Cluster(format!(
                    "{name} has not been heard from for {timeout:?}: it is stopped, hung, or cut \
                     off by the network (heartbeat timeout)"
                )));
                tell_supervisor(link.peer);
                sever(&data, &stream);
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                failure.fail(FlowError::Cluster(format!(
                    "{name} sent an invalid heartbeat: {e}"
                )));
                sever(&data, &stream);
                return;
            }
            Err(e) => {
                if !link.finished() {
                    failure.fail_from_peer(FlowError::Cluster(format!(
                        "lost the connection to {name} before it finished: {e} (did it crash or get killed?)"
                    )));
                    sever(&data, &stream);
                }
                return;
            }
        }
    }
}

/// Where a process of a `--processes` cluster tells its supervisor which peer stopped
/// answering: a hung peer is still running when the others exit with an error, and only
/// they know that it is the cause.
pub(crate) const ENV_SUPERVISOR_REPORT: &str = "BWX_SUPERVISOR_REPORT";

/// Tells the supervisor, if there is one, that `peer` stopped answering (`unresponsive N`).
fn tell_supervisor(peer: usize) {
    let Some(path) = std::env::var_os(ENV_SUPERVISOR_REPORT) else {
        return;
    };
    if let Err(e) = std::fs::write(&path, format!("unresponsive {peer}\n")) {
        tracing::warn!(
            "cannot tell the supervisor that process {peer} stopped answering ({}): {e}",
            std::path::Path::new(&path).display()
        );
    }
}

fn sever(data: &TcpStream, heartbeat: &TcpStream) {
    let _ = super::network::sever(data);
    let _ = super::network::sever(heartbeat);
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use proptest::prelude::*;

    use super::*;

    fn no_timeout(_: Duration) -> io::Result<()> {
        Ok(())
    }

    fn read_all(bytes: &[u8], key: &[u8; 32]) -> Vec<io::Result<Option<Message>>> {
        let mut cursor = Cursor::new(bytes.to_vec());
        let mut last = None;
        let mut out = Vec::new();
        for _ in 0..8 {
            let got = read_message(
                &mut cursor,
                &no_timeout,
                Instant::now() + Duration::from_secs(1),
                key,
                &mut last,
            );
            let stop = !matches!(got, Ok(Some(_)));
            out.push(got);
            if stop {
                break;
            }
        }
        out
    }

    #[test]
    fn messages_round_trip_and_replays_or_other_keys_fail() {
        let key = [3u8; 32];
        let mut bytes = encode(&Message::Beat, 1, &key);
        bytes.extend(encode(&Message::Failed("step 'x' panicked".into()), 2, &key));
        bytes.extend(encode(&Message::Stop, 3, &key));
        let got = read_all(&bytes, &key);
        assert_eq!(got[0].as_ref().unwrap(), &Some(Message::Beat));
        assert_eq!(
            got[1].as_ref().unwrap(),
            &Some(Message::Failed("step 'x' panicked".into()))
        );
        assert_eq!(got[2].as_ref().unwrap(), &Some(Message::Stop));
        // A replayed beat is refused.
        let mut replay = encode(&Message::Beat, 5, &key);
        replay.extend(encode(&Message::Beat, 5, &key));
        let got = read_all(&replay, &key);
        assert!(got[1].as_ref().unwrap_err().to_string().contains("replayed"));
        // Another key's message is refused.
        let got = read_all(&encode(&Message::Beat, 1, &[4u8; 32]), &key);
        assert!(
            got[0]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("authentication")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_heartbeat_reader(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = read_all(&bytes, &[9u8; 32]);
        }
    }
}
