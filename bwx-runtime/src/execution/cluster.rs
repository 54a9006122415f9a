//! One process's part of a cluster, set up: authenticated connections to every peer, the
//! heartbeat watching them, and timely's allocators over the checked (and maybe sealed)
//! data connections.

use std::sync::Arc;

use timely::communication::Hooks;
use timely::communication::allocator::zero_copy::initialize::{
    CommsGuard, initialize_networking_from_sockets,
};
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};

use super::ClusterOptions;
use super::handshake::{Security, Shape};
use super::heartbeat::{Heartbeat, HeartbeatPeer, StopFlags};
use super::network::{self, Listening};
use super::wire::{FrameCheck, PeerLink, PeerStream};
use crate::engine::failure::Failure;
use crate::errors::FlowError;
use crate::flow::Dataflow;

pub(crate) struct Connected {
    pub(crate) builders: Vec<AllocatorBuilder>,
    pub(crate) comms: CommsGuard,
    pub(crate) heartbeat: Heartbeat,
    pub(crate) listening: Listening,
}

impl Connected {
    pub(crate) fn connect(
        flow: &Dataflow,
        addresses: &[String],
        process: usize,
        threads: usize,
        options: &ClusterOptions,
        stop: StopFlags,
        failure: &Arc<Failure>,
    ) -> Result<Connected, FlowError> {
        if options.encrypt && options.secret.is_none() {
            return Err(FlowError::Setup(
                "encrypting the cluster connections needs a cluster secret \
                 (BWX_CLUSTER_SECRET or BWX_CLUSTER_SECRET_FILE)"
                    .to_string(),
            ));
        }
        let security = Security {
            secret: options.secret.clone(),
            encrypt: options.encrypt,
        };
        let links = network::connect(
            addresses,
            &network::Setup {
                process,
                shape: Shape::new(flow.id().as_str(), addresses.len(), threads),
                security: &security,
                bind: options.bind.as_deref(),
                startup_timeout: options.startup_timeout,
                stop: &stop.requested,
            },
        )?;
        let io = |e: std::io::Error| FlowError::Setup(format!("cannot set up the cluster connections: {e}"));
        let mut sockets = Vec::with_capacity(addresses.len());
        let mut watched = Vec::with_capacity(addresses.len());
        for (peer, (data, heartbeat)) in links.data.into_iter().zip(links.heartbeats).enumerate() {
            let (Some(data), Some(heartbeat)) = (data, heartbeat) else {
                sockets.push(None);
                continue;
            };
            let link = Arc::new(PeerLink::new(peer, addresses[peer].clone(), failure.clone()));
            watched.push(HeartbeatPeer {
                link: link.clone(),
                stream: heartbeat.stream,
                data: data.stream.try_clone().map_err(io)?,
                keys: heartbeat.session.keys(),
            });
            let keys = security.encrypt.then(|| data.session.keys());
            let check = FrameCheck::new(peer, process, threads);
            sockets.push(Some(PeerStream::new(data.stream, link, check, keys)));
        }
        let heartbeat =
            Heartbeat::start(watched, options.heartbeat_timeout, failure.clone(), stop).map_err(io)?;
        let hooks = Hooks::default();
        let local = ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
        let (builders, comms) =
            initialize_networking_from_sockets(local, sockets, process, threads, hooks).map_err(io)?;
        Ok(Connected {
            builders: builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
            comms,
            heartbeat,
            listening: links.listener,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use super::super::handshake::{self, HANDSHAKE_TIMEOUT, Kind, Timed};
    use super::*;
    use crate::execution::{ClusterOptions, ClusterSecret, RunConfig, cluster_main};
    use crate::testing::{TestingSink, TestingSource};

    const SECRET: &str = "the secret of the process tests";

    fn options() -> ClusterOptions {
        ClusterOptions::default()
            .secret(ClusterSecret::new(SECRET).unwrap())
            .heartbeat_timeout(Duration::from_secs(30))
            .startup_timeout(Duration::from_secs(20))
    }

    fn security() -> Security {
        Security {
            secret: Some(ClusterSecret::new(SECRET).unwrap()),
            encrypt: false,
        }
    }

    fn flow(out: &TestingSink<u64>) -> Dataflow {
        let flow = Dataflow::new("net");
        flow.input("inp", TestingSource::new(0..100u64))
            .redistribute("spread")
            .output("out", out.clone());
        flow
    }

    fn addresses() -> Vec<String> {
        let held: Vec<std::net::TcpListener> = (0..2)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        held.iter().map(|l| l.local_addr().unwrap().to_string()).collect()
    }

    /// Process 0 of two, on a thread of this test.
    fn process_0(
        addresses: &[String],
        out: &TestingSink<u64>,
    ) -> std::thread::JoinHandle<Result<(), FlowError>> {
        let (flow, addresses) = (flow(out), addresses.to_vec());
        std::thread::spawn(move || {
            cluster_main(&flow, addresses, 0, 1, RunConfig::default().cluster(options()))
        })
    }

    /// Connects to process 0 as process 1 would, until it listens.
    fn connect(address: &str, kind: Kind, writes: &mut Vec<u8>) -> TcpStream {
        let started = Instant::now();
        loop {
            if let Ok(stream) = TcpStream::connect(address) {
                let mut tap = Tap { stream, writes };
                let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
                let shape = Shape::new("net", 2, 1);
                if handshake::connect(&mut tap, 1, 0, kind, shape, &security(), deadline).is_ok() {
                    return tap.stream;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "process 0 never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A socket that keeps a copy of what is written to it.
    struct Tap<'a> {
        stream: TcpStream,
        writes: &'a mut Vec<u8>,
    }

    impl Read for Tap<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.stream.read(buf)
        }
    }

    impl Write for Tap<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.stream.write(buf)?;
            self.writes.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.stream.flush()
        }
    }

    impl Timed for Tap<'_> {
        fn set_timeouts(&mut self, timeout: Duration) -> std::io::Result<()> {
            self.stream.set_timeouts(timeout)
        }
    }

    fn header(source: u64, lower: u64, upper: u64, length: u64) -> Vec<u8> {
        [3, source, lower, upper, length, 0]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect()
    }

    /// Sends `bytes` as an authenticated process 1 and returns process 0's error.
    fn error_after(bytes: &[u8]) -> (String, Duration) {
        let addresses = addresses();
        let process = process_0(&addresses, &TestingSink::new());
        let mut data = connect(&addresses[0], Kind::Data, &mut Vec::new());
        let _heartbeat = connect(&addresses[0], Kind::Heartbeat, &mut Vec::new());
        let sent = Instant::now();
        data.write_all(bytes).unwrap();
        let err = process.join().unwrap().unwrap_err().to_string();
        (err, sent.elapsed())
    }

    #[test]
    fn a_header_for_worker_7_stops_the_process_naming_the_peer() {
        let (err, took) = error_after(&header(1, 7, 8, 16));
        assert!(
            err.contains("process 1 (127.0.0.1:") && err.contains("addressed to workers 7..8"),
            "{err}"
        );
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn a_header_announcing_2_40_bytes_stops_the_process_at_once() {
        let (err, took) = error_after(&header(1, 0, 1, 1 << 40));
        assert!(err.contains("a message of 1099511627776 bytes"), "{err}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn random_bytes_after_a_replayed_handshake_are_refused_and_the_real_peer_joins() {
        // Record a real handshake of process 1 with a process 0 of this cluster...
        let addresses = addresses();
        let first = process_0(&addresses, &TestingSink::new());
        let mut recorded = Vec::new();
        let data = connect(&addresses[0], Kind::Data, &mut recorded);
        let heartbeat = connect(&addresses[0], Kind::Heartbeat, &mut Vec::new());
        drop((data, heartbeat));
        assert!(first.join().unwrap().is_err(), "process 0 lost its peer");

        // ... replay it to a new process 0, with 4 KB of random bytes after it.
        let out = TestingSink::new();
        let process = process_0(&addresses, &out);
        let started = Instant::now();
        let mut replay = loop {
            if let Ok(stream) = TcpStream::connect(&addresses[0]) {
                break stream;
            }
            assert!(started.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut noise = vec![0u8; 4096];
        getrandom::fill(&mut noise).unwrap();
        replay.write_all(&recorded).unwrap();
        let _ = replay.write_all(&noise);
        replay.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = Vec::new();
        let _ = replay.read_to_end(&mut answer);
        assert_eq!(
            answer.last(),
            Some(&5),
            "the verdict is 'wrong secret': {answer:?}"
        );

        // The real process 1 then joins, and the flow runs to its end.
        let theirs = TestingSink::new();
        let (flow, addrs) = (flow(&theirs), addresses.clone());
        let peer = std::thread::spawn(move || {
            cluster_main(&flow, addrs, 1, 1, RunConfig::default().cluster(options()))
        });
        process.join().unwrap().unwrap();
        peer.join().unwrap().unwrap();
        let mut got = out.take();
        got.extend(theirs.take());
        got.sort_unstable();
        assert_eq!(got, (0..100).collect::<Vec<u64>>());
    }

    #[test]
    fn sealed_connections_carry_the_flow_and_refuse_a_peer_that_does_not_seal() {
        let addresses = addresses();
        let run = |process: usize, encrypt: bool, out: &TestingSink<u64>| {
            let (flow, addresses) = (flow(out), addresses.clone());
            let config = RunConfig::default().cluster(options().encrypt(encrypt));
            std::thread::spawn(move || cluster_main(&flow, addresses, process, 1, config))
        };
        let (ours, theirs) = (TestingSink::new(), TestingSink::new());
        let first = run(0, true, &ours);
        // A process that does not seal is refused with the reason, and the cluster waits on.
        let err = run(1, false, &TestingSink::new())
            .join()
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("encrypts its connections, and this process does not"),
            "{err}"
        );
        let second = run(1, true, &theirs);
        first.join().unwrap().unwrap();
        second.join().unwrap().unwrap();
        let mut got = ours.take();
        got.extend(theirs.take());
        got.sort_unstable();
        assert_eq!(got, (0..100).collect::<Vec<u64>>());
    }
}
