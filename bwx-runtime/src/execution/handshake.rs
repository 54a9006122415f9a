//! The handshake every cluster connection starts with, before any byte reaches timely.
//!
//! The process with the higher id connects (the *connector*), the lower one accepts (the
//! *acceptor*). Four fixed-size messages, each read against one deadline for the whole
//! handshake:
//!
//! 1. connector → acceptor, `Hello`: magic, what the connection is for (data or heartbeat),
//!    security flags, the cluster shape (flow hash, processes, workers per process), the
//!    connector's process id, and a fresh random nonce `Nc`.
//! 2. acceptor → connector, `Challenge`: its flags, a fresh random nonce `Na`, and
//!    `HMAC(secret, "acceptor" ‖ Hello ‖ Na)`: the acceptor proves the secret over the
//!    connector's fresh nonce (inside `Hello`). A connector never answers an acceptor that
//!    cannot prove it.
//! 3. connector → acceptor, `Reply`: `HMAC(secret, "connector" ‖ Hello ‖ Na ‖ proof)`: the
//!    connector proves the secret over the acceptor's fresh nonce, so a recorded handshake
//!    replayed later fails.
//! 4. acceptor → connector, `Verdict`: accepted, or why not (wrong secret, another flow or
//!    cluster shape, a process id out of range or already connected).
//!
//! Both sides then share a session key, `HMAC(secret, "session" ‖ Hello ‖ Na)`, from which
//! the keys of sealed frames and heartbeats derive (one per direction). HMAC-SHA-256
//! comparisons are constant-time. Without a secret the same exchange runs with an empty
//! key: it then checks the shape but authenticates nothing, and both sides must agree on
//! that (a flag in `Hello`).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::secret::ClusterSecret;

/// How long a whole handshake may take, on either side. Short, and served concurrently, so
/// a stranger that connects and says nothing delays nobody.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens `Hello`, `Challenge`, `Reply` and `Verdict`; the digit changes with the protocol.
const MAGIC: [u8; 8] = *b"bwx-net2";
const NONCE: usize = 32;
const PROOF: usize = 32;

type HmacSha256 = Hmac<Sha256>;

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

/// What a connection carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// timely's data and progress messages.
    Data = 0,
    /// Heartbeats and stop notices, see [`super::heartbeat`].
    Heartbeat = 1,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            0 => Some(Kind::Data),
            1 => Some(Kind::Heartbeat),
            _ => None,
        }
    }
}

/// How this process protects its connections; every process of a cluster must agree.
#[derive(Clone, Debug, Default)]
pub(crate) struct Security {
    pub(crate) secret: Option<ClusterSecret>,
    pub(crate) encrypt: bool,
}

impl Security {
    const HAS_SECRET: u8 = 1;
    const ENCRYPT: u8 = 2;

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.secret.is_some() {
            flags |= Self::HAS_SECRET;
        }
        if self.encrypt {
            flags |= Self::ENCRYPT;
        }
        flags
    }

    fn key(&self) -> &[u8] {
        self.secret.as_ref().map_or(&[], ClusterSecret::bytes)
    }

    /// Why flags `theirs` (of `who`) do not match ours, if they do not.
    fn mismatch(&self, theirs: u8, who: &str) -> Option<String> {
        let ours = self.flags();
        if (ours ^ theirs) & Self::HAS_SECRET != 0 {
            return Some(if ours & Self::HAS_SECRET != 0 {
                format!("{who} has no cluster secret, and this process has one")
            } else {
                format!("{who} has a cluster secret, and this process has none (set BWX_CLUSTER_SECRET)")
            });
        }
        if (ours ^ theirs) & Self::ENCRYPT != 0 {
            return Some(if ours & Self::ENCRYPT != 0 {
                format!("{who} does not encrypt its connections, and this process does")
            } else {
                format!("{who} encrypts its connections, and this process does not (--cluster-encryption)")
            });
        }
        if theirs & !(Self::HAS_SECRET | Self::ENCRYPT) != 0 {
            return Some(format!(
                "{who} asks for security options this version does not know"
            ));
        }
        None
    }
}

/// The acceptor's answer to a connector that proved the secret.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accepted = 0,
    OtherFlow = 1,
    OtherProcessCount = 2,
    OtherWorkerCount = 3,
    BadIndex = 4,
    WrongSecret = 5,
}

impl Verdict {
    fn from_byte(b: u8) -> Option<Verdict> {
        [
            Verdict::Accepted,
            Verdict::OtherFlow,
            Verdict::OtherProcessCount,
            Verdict::OtherWorkerCount,
            Verdict::BadIndex,
            Verdict::WrongSecret,
        ]
        .into_iter()
        .find(|v| *v as u8 == b)
    }

    pub(crate) fn explain(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::OtherFlow => "it runs a different flow",
            Verdict::OtherProcessCount => "it has a different number of processes (addresses)",
            Verdict::OtherWorkerCount => "it has a different number of workers per process (-w)",
            Verdict::BadIndex => "this process id is out of range there or already connected",
            Verdict::WrongSecret => "the cluster secrets differ",
        }
    }
}

/// The first message, from the connector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) kind: Kind,
    pub(crate) flags: u8,
    pub(crate) shape: Shape,
    pub(crate) process: u64,
    pub(crate) nonce: [u8; NONCE],
}

impl Hello {
    pub(crate) const LEN: usize = 8 + 1 + 1 + 4 * 8 + NONCE;

    pub(crate) fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&MAGIC);
        out[8] = self.kind as u8;
        out[9] = self.flags;
        let words = [
            self.shape.flow,
            self.shape.processes,
            self.shape.workers,
            self.process,
        ];
        for (i, word) in words.iter().enumerate() {
            out[10 + 8 * i..18 + 8 * i].copy_from_slice(&word.to_le_bytes());
        }
        out[42..].copy_from_slice(&self.nonce);
        out
    }

    /// Reads a `Hello`; any bytes give a value or a reason, never a panic.
    pub(crate) fn decode(bytes: &[u8; Self::LEN]) -> Result<Hello, &'static str> {
        if bytes[..8] != MAGIC {
            return Err("no bwx handshake");
        }
        let kind = Kind::from_byte(bytes[8]).ok_or("an unknown connection kind")?;
        let mut words = [0u64; 4];
        for (i, word) in words.iter_mut().enumerate() {
            let mut le = [0u8; 8];
            le.copy_from_slice(&bytes[10 + 8 * i..18 + 8 * i]);
            *word = u64::from_le_bytes(le);
        }
        let mut nonce = [0u8; NONCE];
        nonce.copy_from_slice(&bytes[42..]);
        Ok(Hello {
            kind,
            flags: bytes[9],
            shape: Shape {
                flow: words[0],
                processes: words[1],
                workers: words[2],
            },
            process: words[3],
            nonce,
        })
    }
}

const CHALLENGE_LEN: usize = 8 + 1 + NONCE + PROOF;
const REPLY_LEN: usize = 8 + PROOF;
const VERDICT_LEN: usize = 8 + 1;

/// The key both sides share after a handshake, for sealed frames and heartbeats.
#[derive(Clone)]
pub(crate) struct Session {
    key: [u8; 32],
    /// Whether this side connected (the keys of the two directions differ).
    connector: bool,
}

impl Session {
    /// The key of what this side sends, and of what it receives.
    pub(crate) fn keys(&self) -> ([u8; 32], [u8; 32]) {
        let up = mac(&self.key, &[b"bwx/connector-to-acceptor"]);
        let down = mac(&self.key, &[b"bwx/acceptor-to-connector"]);
        if self.connector { (up, down) } else { (down, up) }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC-SHA-256 takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether `proof` is the HMAC of `parts`, compared in constant time.
fn verify(key: &[u8], parts: &[&[u8]], proof: &[u8]) -> bool {
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return false;
    };
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(proof).is_ok()
}

pub(crate) fn nonce() -> io::Result<[u8; NONCE]> {
    let mut nonce = [0u8; NONCE];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(format!("no random nonce: {e}")))?;
    Ok(nonce)
}

/// A connection whose reads and writes can be bounded in time.
pub(crate) trait Timed: Read + Write {
    fn set_timeouts(&mut self, timeout: Duration) -> io::Result<()>;
}

impl Timed for TcpStream {
    fn set_timeouts(&mut self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the handshake took too long",
        ));
    }
    Ok(left)
}

/// Reads exactly `buf.len()` bytes before `deadline`, however slowly they trickle in.
fn read_by(stream: &mut impl Timed, buf: &mut [u8], deadline: Instant) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        stream.set_timeouts(left(deadline)?)?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed during the handshake",
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the handshake took too long",
                ));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_by(stream: &mut impl Timed, bytes: &[u8], deadline: Instant) -> io::Result<()> {
    stream.set_timeouts(left(deadline)?)?;
    stream.write_all(bytes)?;
    stream.flush()
}

/// A connection the acceptor took.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) peer: usize,
    pub(crate) kind: Kind,
    pub(crate) session: Session,
}

/// The acceptor's side, for process `me`. `claim(peer, kind)` reserves the connection
/// slot of an authenticated peer and says whether it was free (`release` undoes it when
/// the final answer cannot be sent). Returns why the connection was refused, for the log.
pub(crate) fn accept(
    stream: &mut impl Timed,
    me: usize,
    shape: Shape,
    security: &Security,
    deadline: Instant,
    claim: &dyn Fn(usize, Kind) -> bool,
    release: &dyn Fn(usize, Kind),
) -> Result<Accepted, String> {
    let io = |e: io::Error| format!("{e}");
    let mut hello_bytes = [0u8; Hello::LEN];
    read_by(stream, &mut hello_bytes, deadline).map_err(|e| format!("no bwx handshake ({e})"))?;
    let hello = Hello::decode(&hello_bytes)?;
    let key = security.key();
    let nonce_a = nonce().map_err(io)?;
    let proof_a = mac(key, &[b"bwx/acceptor", &hello_bytes, &nonce_a]);
    let mut challenge = [0u8; CHALLENGE_LEN];
    challenge[..8].copy_from_slice(&MAGIC);
    challenge[8] = security.flags();
    challenge[9..9 + NONCE].copy_from_slice(&nonce_a);
    challenge[9 + NONCE..].copy_from_slice(&proof_a);
    write_by(stream, &challenge, deadline).map_err(io)?;
    let who = format!("the peer claiming to be process {}", hello.process);
    if let Some(why) = security.mismatch(hello.flags, &who) {
        return Err(why);
    }
    let mut reply = [0u8; REPLY_LEN];
    read_by(stream, &mut reply, deadline).map_err(|e| format!("no answer to the challenge ({e})"))?;
    let proven = reply[..8] == MAGIC
        && verify(
            key,
            &[b"bwx/connector", &hello_bytes, &nonce_a, &proof_a],
            &reply[8..],
        );
    let peer = hello.process;
    let verdict = if !proven {
        Verdict::WrongSecret
    } else if hello.shape.flow != shape.flow {
        Verdict::OtherFlow
    } else if hello.shape.processes != shape.processes {
        Verdict::OtherProcessCount
    } else if hello.shape.workers != shape.workers {
        Verdict::OtherWorkerCount
    } else if peer <= me as u64 || peer >= shape.processes || !claim(peer as usize, hello.kind) {
        Verdict::BadIndex
    } else {
        Verdict::Accepted
    };
    let mut answer = [0u8; VERDICT_LEN];
    answer[..8].copy_from_slice(&MAGIC);
    answer[8] = verdict as u8;
    let sent = write_by(stream, &answer, deadline);
    if verdict != Verdict::Accepted {
        let why = match verdict {
            Verdict::WrongSecret => "it does not know the cluster secret (or replayed an old handshake)",
            other => other.explain(),
        };
        return Err(format!("refused {who}: {why}"));
    }
    if let Err(e) = sent {
        release(peer as usize, hello.kind);
        return Err(format!("process {peer} left during the handshake: {e}"));
    }
    Ok(Accepted {
        peer: peer as usize,
        kind: hello.kind,
        session: Session {
            key: mac(key, &[b"bwx/session", &hello_bytes, &nonce_a]),
            connector: false,
        },
    })
}

/// Why the connector's handshake failed.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The connection failed or timed out (worth another try).
    Io(io::Error),
    /// Something answered that does not speak this handshake.
    NotBwx,
    /// The acceptor cannot prove the secret, or the security options differ.
    Security(String),
    /// The acceptor refused this process.
    Refused(Verdict),
}

/// The connector's side: process `me` connects to `peer` for `kind`.
pub(crate) fn connect(
    stream: &mut impl Timed,
    me: usize,
    peer: usize,
    kind: Kind,
    shape: Shape,
    security: &Security,
    deadline: Instant,
) -> Result<Session, ConnectError> {
    let hello = Hello {
        kind,
        flags: security.flags(),
        shape,
        process: me as u64,
        nonce: nonce().map_err(ConnectError::Io)?,
    };
    let hello_bytes = hello.encode();
    write_by(stream, &hello_bytes, deadline).map_err(ConnectError::Io)?;
    let mut challenge = [0u8; CHALLENGE_LEN];
    read_by(stream, &mut challenge, deadline).map_err(ConnectError::Io)?;
    if challenge[..8] != MAGIC {
        return Err(ConnectError::NotBwx);
    }
    if let Some(why) = security.mismatch(challenge[8], &format!("process {peer}")) {
        return Err(ConnectError::Security(why));
    }
    let key = security.key();
    let nonce_a = &challenge[9..9 + NONCE];
    let proof_a = &challenge[9 + NONCE..];
    if !verify(key, &[b"bwx/acceptor", &hello_bytes, nonce_a], proof_a) {
        return Err(ConnectError::Security(format!(
            "process {peer} could not prove the cluster secret: the secrets differ"
        )));
    }
    let mut reply = [0u8; REPLY_LEN];
    reply[..8].copy_from_slice(&MAGIC);
    reply[8..].copy_from_slice(&mac(key, &[b"bwx/connector", &hello_bytes, nonce_a, proof_a]));
    write_by(stream, &reply, deadline).map_err(ConnectError::Io)?;
    let mut answer = [0u8; VERDICT_LEN];
    read_by(stream, &mut answer, deadline).map_err(ConnectError::Io)?;
    if answer[..8] != MAGIC {
        return Err(ConnectError::NotBwx);
    }
    match Verdict::from_byte(answer[8]) {
        Some(Verdict::Accepted) => Ok(Session {
            key: mac(key, &[b"bwx/session", &hello_bytes, nonce_a]),
            connector: true,
        }),
        Some(verdict) => Err(ConnectError::Refused(verdict)),
        None => Err(ConnectError::NotBwx),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use proptest::prelude::*;

    use super::*;

    /// One end of an in-memory connection: reads what was scripted, records what is written;
    /// reading past the script times out, as a silent peer would.
    pub(crate) struct Scripted {
        pub(crate) input: VecDeque<u8>,
        pub(crate) output: Vec<u8>,
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.input.is_empty() {
                return Err(io::Error::new(io::ErrorKind::WouldBlock, "silence"));
            }
            let n = buf.len().min(self.input.len()).min(7);
            for b in buf.iter_mut().take(n) {
                *b = self.input.pop_front().unwrap_or_default();
            }
            Ok(n)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Timed for Scripted {
        fn set_timeouts(&mut self, _: Duration) -> io::Result<()> {
            Ok(())
        }
    }

    fn secured(secret: &str) -> Security {
        Security {
            secret: Some(ClusterSecret::new(secret).unwrap()),
            encrypt: false,
        }
    }

    const SECRET: &str = "a cluster secret of some length";

    /// Runs both sides over a loopback socket.
    fn pair(
        acceptor: Security,
        connector: Security,
        shape_a: Shape,
        shape_c: Shape,
    ) -> (Result<Accepted, String>, Result<Session, ConnectError>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let side = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
            accept(
                &mut stream,
                0,
                shape_a,
                &acceptor,
                deadline,
                &|_, _| true,
                &|_, _| {},
            )
        });
        let mut stream = TcpStream::connect(address).unwrap();
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let connected = connect(&mut stream, 1, 0, Kind::Data, shape_c, &connector, deadline);
        (side.join().unwrap(), connected)
    }

    #[test]
    fn both_sides_agree_on_keys_and_refuse_what_differs() {
        let shape = Shape::new("f", 2, 1);
        let (accepted, session) = pair(secured(SECRET), secured(SECRET), shape, shape);
        let (accepted, session) = (accepted.unwrap(), session.unwrap());
        assert_eq!((accepted.peer, accepted.kind), (1, Kind::Data));
        let (a_send, a_recv) = accepted.session.keys();
        let (c_send, c_recv) = session.keys();
        assert_eq!((a_send, a_recv), (c_recv, c_send));
        assert_ne!(a_send, a_recv);

        let (refused, err) = pair(secured(SECRET), secured("another secret, as long"), shape, shape);
        assert!(refused.is_err());
        let ConnectError::Security(why) = err.unwrap_err() else {
            panic!()
        };
        assert!(why.contains("secrets differ"), "{why}");

        let (refused, err) = pair(secured(SECRET), Security::default(), shape, shape);
        assert!(refused.unwrap_err().contains("has no cluster secret"));
        let ConnectError::Security(why) = err.unwrap_err() else {
            panic!()
        };
        assert!(why.contains("process 0 has a cluster secret"), "{why}");

        let (refused, err) = pair(secured(SECRET), secured(SECRET), shape, Shape::new("g", 2, 1));
        assert!(refused.unwrap_err().contains("different flow"));
        assert!(matches!(
            err.unwrap_err(),
            ConnectError::Refused(Verdict::OtherFlow)
        ));
    }

    #[test]
    fn a_replayed_handshake_is_refused() {
        // Record what a real connector sends to a real acceptor...
        let shape = Shape::new("f", 2, 1);
        let security = secured(SECRET);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let recorded = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            s.spawn(|| {
                let (mut real, _) = listener.accept().unwrap();
                let mut hello = [0u8; Hello::LEN];
                real.read_exact(&mut hello).unwrap();
                let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
                let mut replay_input = hello.to_vec();
                // The acceptor reads through a tap that records what the connector sent.
                let mut conn = Relay {
                    real: &mut real,
                    seen: &mut replay_input,
                    first: Some(hello.to_vec()),
                };
                accept(&mut conn, 0, shape, &security, deadline, &|_, _| true, &|_, _| {}).unwrap();
                *recorded.lock().unwrap() = replay_input;
            });
            let mut stream = TcpStream::connect(address).unwrap();
            let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
            connect(&mut stream, 1, 0, Kind::Data, shape, &security, deadline).unwrap();
        });
        // ... and replay it to a fresh acceptor: its new nonce makes the old proof wrong.
        let recorded = recorded.into_inner().unwrap();
        assert_eq!(recorded.len(), Hello::LEN + REPLY_LEN);
        let mut replay = Scripted {
            input: recorded.into_iter().collect(),
            output: Vec::new(),
        };
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let err = accept(
            &mut replay,
            0,
            shape,
            &security,
            deadline,
            &|_, _| true,
            &|_, _| {},
        )
        .unwrap_err();
        assert!(err.contains("replayed"), "{err}");
        assert_eq!(replay.output[replay.output.len() - 1], Verdict::WrongSecret as u8);
    }

    /// Passes reads and writes to a socket, keeping a copy of what was read.
    struct Relay<'a> {
        real: &'a mut TcpStream,
        seen: &'a mut Vec<u8>,
        first: Option<Vec<u8>>,
    }

    impl Read for Relay<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if let Some(first) = self.first.take() {
                buf[..first.len()].copy_from_slice(&first);
                return Ok(first.len());
            }
            let n = self.real.read(buf)?;
            self.seen.extend_from_slice(&buf[..n]);
            Ok(n)
        }
    }

    impl Write for Relay<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.real.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.real.flush()
        }
    }

    impl Timed for Relay<'_> {
        fn set_timeouts(&mut self, t: Duration) -> io::Result<()> {
            self.real.set_timeouts(t)
        }
    }

    #[test]
    fn a_silent_or_slow_stranger_times_out_within_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let _idle = TcpStream::connect(address).unwrap();
        let (mut stream, _) = listener.accept().unwrap();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(300);
        let err = accept(
            &mut stream,
            0,
            Shape::new("f", 2, 1),
            &secured(SECRET),
            deadline,
            &|_, _| true,
            &|_, _| {},
        )
        .unwrap_err();
        assert!(err.contains("took too long"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

        /// Whatever a stranger sends, the acceptor refuses it with a reason and never panics.
        #[test]
        fn arbitrary_bytes_never_pass_or_panic_the_acceptor(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            keep_magic in any::<bool>(),
        ) {
            let mut input = bytes;
            if keep_magic && input.len() >= 8 {
                input[..8].copy_from_slice(&MAGIC);
            }
            let mut conn = Scripted { input: input.into_iter().collect(), output: Vec::new() };
            let deadline = Instant::now() + Duration::from_secs(1);
            let outcome = accept(&mut conn, 0, Shape::new("f", 3, 2), &secured(SECRET), deadline, &|_, _| true, &|_, _| {});
            prop_assert!(outcome.is_err());
        }

        /// Whatever an acceptor answers, the connector fails with a reason and never panics.
        #[test]
        fn arbitrary_answers_never_pass_or_panic_the_connector(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut input = bytes;
            if input.len() >= 8 {
                input[..8].copy_from_slice(&MAGIC);
            }
            let mut conn = Scripted { input: input.into_iter().collect(), output: Vec::new() };
            let deadline = Instant::now() + Duration::from_secs(1);
            let outcome = connect(&mut conn, 1, 0, Kind::Heartbeat, Shape::new("f", 3, 2), &secured(SECRET), deadline);
            prop_assert!(outcome.is_err());
        }

        #[test]
        fn hellos_round_trip(kind in 0u8..2, flags in any::<u8>(), words in any::<[u64; 4]>(), nonce in any::<[u8; 32]>()) {
            let hello = Hello {
                kind: Kind::from_byte(kind).unwrap(),
                flags,
                shape: Shape { flow: words[0], processes: words[1], workers: words[2] },
                process: words[3],
                nonce,
            };
            prop_assert_eq!(Hello::decode(&hello.encode()), Ok(hello));
        }
    }
}
