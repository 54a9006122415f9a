//! What timely's network threads read and write: [`PeerStream`], a connection to one peer
//! that checks every message header before timely sees it, and optionally seals the bytes.
//!
//! timely 0.32 lets its caller hand it any stream type (`initialize_networking_from_sockets`
//! is generic over its `Stream` trait), so this is done without changing timely:
//!
//! - **Checked frames.** timely trusts the headers it reads: a header addressed to a worker
//!   this process does not have indexes out of bounds in its receive thread, and one that
//!   announces 2^40 bytes makes it wait for (and try to buffer) them. [`FrameCheck`] reads
//!   along and refuses, before a byte is handed over, a header whose sender is not one of the
//!   peer's workers, whose receivers are not this process's, or whose length exceeds
//!   [`MAX_MESSAGE`]; and anything after the end-of-stream header.
//! - **Sealed records** (with `--cluster-encryption`): every `write` of timely's sender
//!   becomes one ChaCha20-Poly1305 record (at most 64 KiB of plaintext, a 4-byte length
//!   before it), under a key of this connection and direction derived in the handshake and a
//!   counter nonce, so records cannot be read, altered, reordered or replayed. timely's
//!   sender writes through a 64 KiB buffer, so records are large and few.
//! - **Named failures.** A connection that ends without timely's end-of-stream header, fails,
//!   or carries a bad frame stops the execution with an error naming the peer, recorded
//!   before timely's thread panics (as it does on any connection error); that panic is then
//!   silent. This does not depend on the names of timely's threads.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Tag};
use timely::communication::allocator::zero_copy::stream::Stream;

use crate::engine::failure::{self, Failure};
use crate::errors::FlowError;

/// The largest message a peer may announce: far above any batch of records, far below
/// what would exhaust memory.
pub(crate) const MAX_MESSAGE: u64 = 1 << 30;
/// The bytes of one of timely's message headers: six big-endian u64.
const HEADER: usize = 48;
/// The most plaintext in one sealed record.
const MAX_RECORD: usize = 64 * 1024;
const TAG: usize = 16;

/// Reads along a peer's byte stream and checks each of timely's message headers.
#[derive(Debug, Clone)]
pub(crate) struct FrameCheck {
    header: [u8; HEADER],
    have: usize,
    payload_left: u64,
    ended: bool,
    /// The global indices of the peer's workers (the only valid senders).
    senders: std::ops::Range<u64>,
    /// The global indices of this process's workers (the only valid receivers).
    receivers: std::ops::Range<u64>,
}

impl FrameCheck {
    /// For messages from process `peer` to process `me`, each with `workers` workers.
    pub(crate) fn new(peer: usize, me: usize, workers: usize) -> FrameCheck {
        let range = |p: usize| (p * workers) as u64..((p + 1) * workers) as u64;
        FrameCheck {
            header: [0; HEADER],
            have: 0,
            payload_left: 0,
            ended: false,
            senders: range(peer),
            receivers: range(me),
        }
    }

    /// Whether timely's end-of-stream header has passed.
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    /// Checks the next bytes of the stream; the error says what is wrong.
    pub(crate) fn scan(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            if self.ended {
                return Err("it sent data after the end of its stream".to_string());
            }
            if self.payload_left > 0 {
                let n = (bytes.len() as u64).min(self.payload_left);
                self.payload_left -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            let n = bytes.len().min(HEADER - self.have);
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == HEADER {
                self.have = 0;
                self.check_header()?;
            }
        }
        Ok(())
    }

    fn check_header(&mut self) -> Result<(), String> {
        let field = |i: usize| {
            let mut be = [0u8; 8];
            be.copy_from_slice(&self.header[8 * i..8 * i + 8]);
            u64::from_be_bytes(be)
        };
        let (source, lower, upper, length) = (field(1), field(2), field(3), field(4));
        if length == 0 {
            self.ended = true;
            return Ok(());
        }
        if length > MAX_MESSAGE {
            return Err(format!(
                "it announced a message of {length} bytes (at most {MAX_MESSAGE} are accepted)"
            ));
        }
        if !self.senders.contains(&source) {
            return Err(format!(
                "it sent a message from worker {source}, which is not one of its workers {:?}",
                self.senders
            ));
        }
        if lower >= upper || lower < self.receivers.start || upper > self.receivers.end {
            return Err(format!(
                "it sent a message addressed to workers {lower}..{upper}, but this process has workers {:?}",
                self.receivers
            ));
        }
        self.payload_left = length;
        Ok(())
    }
}

/// Who is at the other end, and whom to tell when the connection fails.
pub(crate) struct PeerLink {
    pub(crate) peer: usize,
    pub(crate) address: String,
    failure: Arc<Failure>,
    /// Set once the peer's end-of-stream header has arrived: it sent all it had.
    ended: AtomicBool,
}

impl PeerLink {
    pub(crate) fn new(peer: usize, address: String, failure: Arc<Failure>) -> PeerLink {
        PeerLink {
            peer,
            address,
            failure,
            ended: AtomicBool::new(false),
        }
    }

    /// Whether the peer finished sending (its connection closing is then no failure).
    pub(crate) fn finished(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    fn name(&self) -> String {
        format!("process {} ({})", self.peer, self.address)
    }

    /// The peer is gone (a crash, a kill, a reset connection).
    fn lost(&self, why: &str) {
        self.failure.fail_from_peer(FlowError::Cluster(format!(
            "lost the connection to {} before it finished: {why} (did it crash or get killed?)",
            self.name()
        )));
    }

    /// The peer sent something it should not have; this process stops and tells the others.
    fn malformed(&self, why: &str) {
        self.failure.fail(FlowError::Cluster(format!(
            "{} sent data that is not a valid message: {why}; closed the connection",
            self.name()
        )));
    }

    fn enter_thread(&self) {
        failure::enter_network_thread(&self.failure, &self.name());
    }
}

/// Seals outgoing records.
struct Sealer {
    cipher: ChaCha20Poly1305,
    counter: u64,
    record: Vec<u8>,
}

/// Opens incoming records.
struct Opener {
    cipher: ChaCha20Poly1305,
    counter: u64,
}

fn nonce(counter: u64) -> chacha20poly1305::Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce.into()
}

impl Sealer {
    fn new(key: &[u8; 32]) -> Sealer {
        Sealer {
            cipher: ChaCha20Poly1305::new(key.into()),
            counter: 0,
            record: Vec::with_capacity(4 + MAX_RECORD + TAG),
        }
    }

    /// Seals `plain` (at most [`MAX_RECORD`] bytes) into `self.record`.
    fn seal(&mut self, plain: &[u8]) -> io::Result<&[u8]> {
        let counter = self.counter;
        self.counter = counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("the connection sealed 2^64 records; reconnect"))?;
        self.record.clear();
        self.record
            .extend_from_slice(&((plain.len() + TAG) as u32).to_be_bytes());
        self.record.extend_from_slice(plain);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce(counter), b"", &mut self.record[4..])
            .map_err(|_| io::Error::other("cannot seal a record"))?;
        self.record.extend_from_slice(&tag);
        Ok(&self.record)
    }
}

impl Opener {
    fn new(key: &[u8; 32]) -> Opener {
        Opener {
            cipher: ChaCha20Poly1305::new(key.into()),
            counter: 0,
        }
    }

    /// Opens one record's body (ciphertext and tag) in place; returns the plaintext length.
    fn open(&mut self, body: &mut [u8]) -> Result<usize, String> {
        let plain = body.len() - TAG;
        let (text, tag) = body.split_at_mut(plain);
        let tag = Tag::from_slice(tag);
        self.cipher
            .decrypt_in_place_detached(&nonce(self.counter), b"", text, tag)
            .map_err(|_| "a sealed record failed authentication (altered, replayed or not from the peer)")?;
        self.counter += 1;
        Ok(plain)
    }
}

struct Reader {
    check: FrameCheck,
    open: Option<Opener>,
    plain: Vec<u8>,
    pos: usize,
}

struct Writer {
    seal: Option<Sealer>,
}

/// A connection to one peer, as timely's network threads use it (see the module docs).
pub(crate) struct PeerStream {
    socket: TcpStream,
    link: Arc<PeerLink>,
    reader: Arc<Mutex<Reader>>,
    writer: Arc<Mutex<Writer>>,
}

impl PeerStream {
    /// `keys` are this side's (send, receive) keys when the connection is sealed.
    pub(crate) fn new(
        socket: TcpStream,
        link: Arc<PeerLink>,
        check: FrameCheck,
        keys: Option<([u8; 32], [u8; 32])>,
    ) -> PeerStream {
        PeerStream {
            socket,
            link,
            reader: Arc::new(Mutex::new(Reader {
                check,
                open: keys.as_ref().map(|(_, recv)| Opener::new(recv)),
                plain: Vec::new(),
                pos: 0,
            })),
            writer: Arc::new(Mutex::new(Writer {
                seal: keys.as_ref().map(|(send, _)| Sealer::new(send)),
            })),
        }
    }

    fn reader(&self) -> MutexGuard<'_, Reader> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses the rest of the stream after a bad frame.
    fn refuse(&self, why: &str) -> io::Error {
        self.link.malformed(why);
        let _ = self.socket.shutdown(Shutdown::Both);
        io::Error::new(io::ErrorKind::InvalidData, why.to_string())
    }

    /// Reads one sealed record into `reader.plain`; `false` at a clean end of the stream.
    fn next_record(&self, reader: &mut Reader) -> io::Result<bool> {
        let mut len = [0u8; 4];
        if !read_full(&self.socket, &mut len, true)? {
            return Ok(false);
        }
        let len = u32::from_be_bytes(len) as usize;
        if !(TAG < len && len <= MAX_RECORD + TAG) {
            return Err(self.refuse(&format!("it announced a sealed record of {len} bytes")));
        }
        reader.plain.resize(len, 0);
        read_full(&self.socket, &mut reader.plain, false)?;
        let opener = reader
            .open
            .as_mut()
            .ok_or_else(|| io::Error::other("not a sealed stream"))?;
        let plain = opener.open(&mut reader.plain).map_err(|why| self.refuse(&why))?;
        reader.plain.truncate(plain);
        reader.pos = 0;
        Ok(true)
    }

    /// The read, before the end-of-stream check.
    fn read_checked(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut guard = self.reader();
        let reader = &mut *guard;
        if reader.open.is_none() {
            let n = (&self.socket).read(buf)?;
            if let Err(why) = reader.check.scan(&buf[..n]) {
                return Err(self.refuse(&why));
            }
            return Ok(n);
        }
        while reader.pos == reader.plain.len() {
            if !self.next_record(reader)? {
                return Ok(0);
            }
            if let Err(why) = reader.check.scan(&reader.plain) {
                return Err(self.refuse(&why));
            }
        }
        let n = buf.len().min(reader.plain.len() - reader.pos);
        buf[..n].copy_from_slice(&reader.plain[reader.pos..reader.pos + n]);
        reader.pos += n;
        Ok(n)
    }
}

/// Fills `buf`; `Ok(false)` if the stream ended before its first byte and `clean_end` allows it.
fn read_full(mut socket: &TcpStream, buf: &mut [u8], clean_end: bool) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match socket.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 && clean_end => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream ended inside a record",
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl Read for PeerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.link.enter_thread();
        let read = self.read_checked(buf);
        if self.reader().check.ended() {
            self.link.ended.store(true, Ordering::SeqCst);
        }
        match read {
            Ok(0) if !buf.is_empty() => {
                if !self.reader().check.ended() {
                    self.link.lost("the connection closed");
                }
                Ok(0)
            }
            Ok(n) => Ok(n),
            Err(e) => {
                if e.kind() != io::ErrorKind::InvalidData {
                    self.link.lost(&e.to_string());
                }
                Err(e)
            }
        }
    }
}

impl Write for PeerStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.link.enter_thread();
        let mut writer = self.writer();
        let outcome = match writer.seal.as_mut() {
            None => (&self.socket).write(buf),
            Some(seal) => {
                let n = buf.len().min(MAX_RECORD);
                seal.seal(&buf[..n])
                    .and_then(|record| (&self.socket).write_all(record))
                    .map(|()| n)
            }
        };
        if let Err(e) = &outcome {
            self.link.lost(&format!("cannot send: {e}"));
        }
        outcome
    }

    fn flush(&mut self) -> io::Result<()> {
        (&self.socket).flush()
    }
}

impl Stream for PeerStream {
    fn try_clone(&self) -> io::Result<Self> {
        Ok(PeerStream {
            socket: self.socket.try_clone()?,
            link: self.link.clone(),
            reader: self.reader.clone(),
            writer: self.writer.clone(),
        })
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.socket.set_nonblocking(nonblocking)
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.shutdown(how)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn header(source: u64, lower: u64, upper: u64, length: u64) -> Vec<u8> {
        [7, source, lower, upper, length, 1]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect()
    }

    #[test]
    fn the_reported_frames_are_refused() {
        // Process 0 of 2 processes with 2 workers each, reading from process 1.
        let mut check = FrameCheck::new(1, 0, 2);
        let err = check.scan(&header(2, 7, 8, 10)).unwrap_err();
        assert!(
            err.contains("addressed to workers 7..8") && err.contains("0..2"),
            "{err}"
        );
        let mut check = FrameCheck::new(1, 0, 2);
        let err = check.scan(&header(2, 0, 1, 1 << 40)).unwrap_err();
        assert!(err.contains("1099511627776 bytes"), "{err}");
        let mut check = FrameCheck::new(1, 0, 2);
        let err = check.scan(&header(0, 0, 1, 8)).unwrap_err();
        assert!(err.contains("from worker 0"), "{err}");
        let mut check = FrameCheck::new(1, 0, 2);
        check.scan(&header(0, 0, 0, 0)).unwrap();
        assert!(check.ended());
        assert!(check.scan(&[1]).unwrap_err().contains("after the end"));
    }

    /// A stream of valid messages from process 1 to process 0 (2 workers each).
    fn valid_stream() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec((2u64..4, 0u64..2, 1u64..3, 0usize..100), 0..20).prop_map(|msgs| {
            let mut out = Vec::new();
            for (source, lower, span, len) in msgs {
                let upper = (lower + span).min(2);
                out.extend(header(source, lower, upper.max(lower + 1), len as u64 + 1));
                out.extend(std::iter::repeat_n(0xAB, len + 1));
            }
            out.extend(header(0, 0, 0, 0));
            out
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

        /// Valid streams pass however they are cut into reads.
        #[test]
        fn valid_streams_pass_in_any_chunks(stream in valid_stream(), cuts in proptest::collection::vec(1usize..64, 1..50)) {
            let mut check = FrameCheck::new(1, 0, 2);
            let mut rest = &stream[..];
            let mut cuts = cuts.into_iter().cycle();
            while !rest.is_empty() {
                let n = cuts.next().unwrap_or(1).min(rest.len());
                prop_assert_eq!(check.scan(&rest[..n]), Ok(()));
                rest = &rest[n..];
            }
            prop_assert!(check.ended());
        }

        /// Arbitrary bytes never panic the check, and whatever it lets through stays within
        /// this process's workers and the size limit.
        #[test]
        fn arbitrary_bytes_never_panic_the_check(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut check = FrameCheck::new(1, 0, 2);
            let _ = check.scan(&bytes);
        }

        /// A sealed record opens only unaltered, in order, with the right key.
        #[test]
        fn sealed_records_detect_any_change(plain in proptest::collection::vec(any::<u8>(), 1..2000), flip in any::<usize>(), bit in 0u8..8) {
            let key = [7u8; 32];
            let mut sealer = Sealer::new(&key);
            let record = sealer.seal(&plain).unwrap().to_vec();
            let mut body = record[4..].to_vec();
            prop_assert_eq!(Opener::new(&key).open(&mut body.clone()), Ok(plain.len()));
            let mut opened = body.clone();
            Opener::new(&key).open(&mut opened).unwrap();
            prop_assert_eq!(&opened[..plain.len()], &plain[..]);
            let i = flip % body.len();
            body[i] ^= 1 << bit;
            prop_assert!(Opener::new(&key).open(&mut body).is_err());
            // The second record of a stream does not open as the first.
            let second = sealer.seal(&plain).unwrap()[4..].to_vec();
            prop_assert!(Opener::new(&key).open(&mut second.clone()).is_err());
        }
    }
}
