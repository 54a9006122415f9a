//! Exactly-once Kafka under kill -9: a Kafka → per-key count → Kafka flow with recovery
//! and the exactly-once sink runs as 1 worker, 2 workers and 2 processes in turn (so every
//! restart rescales), and is killed with SIGKILL at seeded random moments (half timed from
//! start-up, half from the run's first output record, while transactions are open); then a
//! `read_committed` consumer that is not bwx reads the output topic, and every input
//! record must be there exactly once, in order per key.
//!
//! Also: a transaction left open by a killed process is visible to `read_uncommitted`
//! readers only, and a recovery store older than what Kafka has committed is refused.
//!
//! The brokers: each of `BWX_KAFKA_TXN_BROKERS` (comma-separated `host:port`), which must
//! implement transactions, transactional offset commits and `read_committed` fetches;
//! `.ci/run` sets noida-db's. Not tansu (it shows aborted records to `read_committed`
//! readers) and not librdkafka's mock cluster (it accepts transactional offset commits
//! without storing them, and shows aborted records too): against either, the kill test
//! finds duplicates. The reader is kafka-python run by `BWX_KAFKA_PYTHON` (the Python of
//! the brokers' venv, set by `.ci/run`); without it, an rdkafka consumer. By hand:
//!
//! ```text
//! scripts/kafka-brokers.sh start noida
//! BWX_KAFKA_TXN_BROKERS=127.0.0.1:29092 BWX_KAFKA_PYTHON=target/kafka-brokers/venv/bin/python \
//!     cargo test --features kafka --test kafka_exactly_once -- --nocapture
//! ```
//!
//! `BWX_EOS_KILLS` sets the number of kills per broker (21 by default) and `BWX_EOS_SEED`
//! the seed of their moments (7 by default). The test binary
//! re-executes itself as the flow's processes (`eos_process`).
#![cfg(feature = "kafka")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bwx::connectors::kafka::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use bwx::connectors::kafka::rdkafka::client::DefaultClientContext;
use bwx::connectors::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use bwx::connectors::kafka::rdkafka::message::Message;
use bwx::connectors::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use bwx::connectors::kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use bwx::connectors::kafka::{self, KafkaConfig, KafkaSink, KafkaSinkMessage, KafkaSource};
use bwx::prelude::*;
use bwx::recovery::SqliteRecovery;

const IN_PARTS: i32 = 4;
const OUT_PARTS: i32 = 3;
const KEYS: usize = 24;
const RECORDS: usize = 6000;
/// Per record, so that a run lasts long enough to be killed in the middle.
const PACE: Duration = Duration::from_micros(1500);
const EPOCH: Duration = Duration::from_millis(50);
const RECOVERY_PARTS: usize = 2;
const SLOTS: usize = 3;
/// (processes, workers per process) of the runs, in turn.
const SHAPES: [(usize, usize); 3] = [(1, 1), (1, 2), (2, 1)];

/// The flow under test: reads `in`, counts per key, writes `key,seq,count` exactly once.
fn flow(brokers: &str, input: &str, output: &str, prefix: &str, pace: Duration, slots: usize) -> Dataflow {
    let config = KafkaConfig::new(brokers);
    let flow = Dataflow::new("eos");
    let msgs = kafka::input(
        &flow,
        "in",
        KafkaSource::new(config.clone(), [input])
            .tail(false)
            .batch_size(16),
    );
    msgs.oks
        .map("keyed", move |m| {
            if !pace.is_zero() {
                std::thread::sleep(pace);
            }
            let key = String::from_utf8(m.key.unwrap_or_default()).unwrap();
            let seq = String::from_utf8(m.value.unwrap_or_default()).unwrap();
            (key, seq)
        })
        .stateful_map("count", |n: Option<u64>, seq: String| {
            let n = n.unwrap_or(0) + 1;
            (Some(n), (seq, n))
        })
        .map("msg", |(key, (seq, n)): (String, (String, u64))| {
            let value = format!("{key},{seq},{n}");
            (
                key.clone(),
                KafkaSinkMessage::new(Some(key.into_bytes()), Some(value.into_bytes())),
            )
        })
        .output(
            "out",
            KafkaSink::new(config, Some(output))
                .exactly_once(prefix)
                .slots(slots),
        );
    flow
}

/// One process of the flow, when the test starts this binary as one.
#[test]
fn eos_process() {
    let Ok(dir) = std::env::var("BWX_EOS_DIR") else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap();
    let addrs: Vec<String> = var("BWX_EOS_ADDRS").split(',').map(String::from).collect();
    let me: usize = var("BWX_EOS_PROC").parse().unwrap();
    let workers: usize = var("BWX_EOS_WORKERS").parse().unwrap();
    let store = SqliteRecovery::open(&dir, Duration::ZERO, "eos").unwrap();
    println!("resumed");
    std::io::stdout().flush().unwrap();
    let epoch = Duration::from_millis(var("BWX_EOS_EPOCH_MS").parse().unwrap());
    let pace = Duration::from_micros(var("BWX_EOS_PACE_US").parse().unwrap());
    let config = RunConfig::default().epoch_interval(epoch).recovery(store);
    let flow = flow(
        &var("BWX_EOS_BROKERS"),
        &var("BWX_EOS_IN"),
        &var("BWX_EOS_OUT"),
        &var("BWX_EOS_PREFIX"),
        pace,
        SLOTS,
    );
    if let Err(e) = bwx::cluster_main(&flow, addrs, me, workers, config) {
        eprintln!("{}", e.report());
        std::process::exit(1);
    }
}

/// A broker to test against (one of `BWX_KAFKA_TXN_BROKERS`).
struct Broker(String);

impl Broker {
    fn all() -> Vec<Broker> {
        match std::env::var("BWX_KAFKA_TXN_BROKERS") {
            Ok(list) => list
                .split(',')
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(|b| Broker(b.to_string()))
                .collect(),
            Err(_) => {
                eprintln!("BWX_KAFKA_TXN_BROKERS is not set: skipping the exactly-once Kafka tests");
                Vec::new()
            }
        }
    }

    fn brokers(&self) -> String {
        self.0.clone()
    }

    fn name(&self) -> &str {
        &self.0
    }

    fn topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.0)
            .create()
            .unwrap();
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for r in block_on(admin.create_topics([&topic], &AdminOptions::new())).unwrap() {
            r.unwrap();
        }
    }
}

/// Runs a future to completion on this thread (the admin client's calls are futures).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// A fresh name per test and run, so that reruns against a real broker do not meet old data.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("eos-{what}-{}-{nanos}", std::process::id())
}

/// Writes the input: `RECORDS` records over `KEYS` keys, value = the key's sequence number;
/// every key in one partition. Returns each key's record count.
fn seed(brokers: &str, topic: &str, records: usize) -> BTreeMap<String, usize> {
    seed_more(brokers, topic, records, BTreeMap::new())
}

/// Writes `records` more records after those `counts` says each key has; returns the new
/// counts.
fn seed_more(
    brokers: &str,
    topic: &str,
    records: usize,
    mut counts: BTreeMap<String, usize>,
) -> BTreeMap<String, usize> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in 0..records {
        let k = i % KEYS;
        let key = format!("k{k:02}");
        let n = counts.entry(key.clone()).or_insert(0usize);
        let value = n.to_string();
        *n += 1;
        let mut record = BaseRecord::to(topic)
            .key(key.as_bytes())
            .payload(value.as_bytes())
            .partition(k as i32 % IN_PARTS);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(10));
                    record = r;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    counts
}

/// Reads a whole topic as `(key, value)` per record, with a client that is not bwx:
/// kafka-python when `BWX_KAFKA_PYTHON` names a Python that has it, else rdkafka.
fn read_back(broker: &Broker, topic: &str, isolation: &str) -> Vec<(String, String)> {
    match std::env::var("BWX_KAFKA_PYTHON") {
        Ok(python) => read_with_python(&python, &broker.0, topic, isolation),
        Err(_) => read_with_rdkafka(&broker.0, topic, isolation),
    }
}

const PY_READER: &str = r#"
import sys, time
from kafka import KafkaConsumer, TopicPartition
brokers, topic, isolation = sys.argv[1:4]
c = KafkaConsumer(bootstrap_servers=brokers, isolation_level=isolation, enable_auto_commit=False,
                  group_id=None, auto_offset_reset="earliest")
deadline = time.time() + 30
parts = None
while not parts and time.time() < deadline:
    parts = c.partitions_for_topic(topic)
    if not parts:
        time.sleep(0.2)
parts = [TopicPartition(topic, p) for p in sorted(parts)]
c.assign(parts)
c.seek_to_beginning(*parts)
end = c.end_offsets(parts)
idle_since = time.time()
while time.time() < deadline + 60:
    if all(c.position(p) >= end[p] for p in parts):
        break
    got = c.poll(timeout_ms=200)
    if got:
        idle_since = time.time()
    elif time.time() - idle_since > 10:
        break
    for tp, records in got.items():
        for r in records:
            print(r.key.decode() + "\t" + r.value.decode())
print("END")
"#;

fn read_with_python(python: &str, brokers: &str, topic: &str, isolation: &str) -> Vec<(String, String)> {
    let out = Command::new(python)
        .args(["-c", PY_READER, brokers, topic, isolation])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success() && text.ends_with("END\n"),
        "the Python reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter(|l| *l != "END")
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn read_with_rdkafka(brokers: &str, topic: &str, isolation: &str) -> Vec<(String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..OUT_PARTS {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut ended = std::collections::HashSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ended.len() < OUT_PARTS as usize && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push((
                String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
            )),
            Some(Err(bwx::connectors::kafka::rdkafka::error::KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            _ => {}
        }
    }
    out
}

/// What a read-back holds against the input: records lost, duplicated, and keys whose
/// records came out of order.
#[derive(Debug, Default, PartialEq, Eq)]
struct Check {
    lost: usize,
    duplicates: usize,
    out_of_order: usize,
    wrong: usize,
}

fn check(expected: &BTreeMap<String, usize>, got: &[(String, String)]) -> Check {
    let mut per_key: BTreeMap<&str, Vec<(usize, usize)>> = BTreeMap::new();
    let mut c = Check::default();
    for (key, value) in got {
        let parts: Vec<&str> = value.split(',').collect();
        match parts[..] {
            [k, seq, n] if k == key => per_key
                .entry(key)
                .or_default()
                .push((seq.parse().unwrap(), n.parse().unwrap())),
            _ => c.wrong += 1,
        }
    }
    for (key, n) in expected {
        let seen = per_key.remove(key.as_str()).unwrap_or_default();
        let distinct: std::collections::BTreeSet<usize> = seen.iter().map(|(s, _)| *s).collect();
        c.lost += (0..*n).filter(|s| !distinct.contains(s)).count();
        c.duplicates += seen.len() - distinct.len();
        // In order, and the count is the sequence number plus one (state and output agree).
        let ordered = seen
            .iter()
            .enumerate()
            .all(|(i, (s, count))| *s == i && *count == i + 1);
        c.out_of_order += usize::from(!ordered);
    }
    c.wrong += per_key.values().map(Vec::len).sum::<usize>();
    c
}

fn free_ports(n: usize) -> Vec<String> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| format!("127.0.0.1:{}", l.local_addr().unwrap().port()))
        .collect()
}

/// The names one flow's runs share, and its pace and epoch interval.
struct Setup {
    brokers: String,
    input: String,
    output: String,
    prefix: String,
    dir: PathBuf,
    pace: Duration,
    epoch: Duration,
}

struct Running {
    children: Vec<Child>,
    ready: mpsc::Receiver<()>,
    stderr: Vec<std::sync::Arc<std::sync::Mutex<String>>>,
}

fn start(s: &Setup, dir: &Path, (processes, workers): (usize, usize)) -> Running {
    let addrs = free_ports(processes).join(",");
    let (tx, ready) = mpsc::channel();
    let mut stderr = Vec::new();
    let children = (0..processes)
        .map(|p| {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["eos_process", "--exact", "--nocapture", "--test-threads", "1"])
                .env("BWX_EOS_DIR", dir)
                .env("BWX_EOS_ADDRS", &addrs)
                .env("BWX_EOS_PROC", p.to_string())
                .env("BWX_EOS_WORKERS", workers.to_string())
                .env("BWX_EOS_BROKERS", &s.brokers)
                .env("BWX_EOS_IN", &s.input)
                .env("BWX_EOS_OUT", &s.output)
                .env("BWX_EOS_PREFIX", &s.prefix)
                .env("BWX_EOS_PACE_US", s.pace.as_micros().to_string())
                .env("BWX_EOS_EPOCH_MS", s.epoch.as_millis().to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.contains("resumed") {
                        let _ = tx.send(());
                    }
                }
            });
            let err = child.stderr.take().unwrap();
            let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let keep = text.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let mut t = keep.lock().unwrap();
                    t.push_str(&line);
                    t.push('\n');
                }
            });
            stderr.push(text);
            child
        })
        .collect();
    Running {
        children,
        ready,
        stderr,
    }
}

/// Waits for every process; after `limit`, kills the ones left. Whether all succeeded.
fn wait_all(children: &mut [Child], limit: Duration) -> bool {
    let until = Instant::now() + limit;
    let mut ok = true;
    for c in children.iter_mut() {
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                ok &= status.success();
                break;
            }
            if Instant::now() > until {
                let _ = c.kill();
                let _ = c.wait();
                ok = false;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    ok
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn setup(broker: &Broker, base: &Path, name: &str) -> Setup {
    let s = Setup {
        brokers: broker.brokers(),
        input: unique(&format!("{name}-in")),
        output: unique(&format!("{name}-out")),
        prefix: unique(name),
        dir: base.join(name),
        pace: PACE,
        epoch: EPOCH,
    };
    broker.topic(&s.input, IN_PARTS);
    broker.topic(&s.output, OUT_PARTS);
    bwx::recovery::init_dir(&s.dir, RECOVERY_PARTS).unwrap();
    s
}

#[derive(Debug, Default)]
struct Summary {
    runs: usize,
    kills: [usize; SHAPES.len()],
    /// Kills timed from the run's first output record.
    after_output: usize,
}

/// Kills the flow `kills` times at seeded moments, rotating the shape of the cluster,
/// then lets it finish.
fn kill_and_resume(s: &Setup, kills: usize, seed: u64) -> Summary {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let watch = uncommitted_watch(&s.brokers, &s.output, OUT_PARTS);
    let mut summary = Summary::default();
    let mut killed = 0;
    loop {
        let shape_index = summary.runs % SHAPES.len();
        let shape = SHAPES[shape_index];
        let mut run = start(s, &s.dir, shape);
        summary.runs += 1;
        if killed < kills {
            // Half the kills count from just after start-up (resume, fencing,
            // republishing), half from the run's first new output record, seen by a
            // `read_uncommitted` reader (open transactions, seals, commits).
            let after_output = rng.below(2) == 0;
            let kill_after = Duration::from_millis(rng.below(if after_output { 400 } else { 1200 }));
            // What earlier runs wrote is not this run's output.
            while watch.poll(Duration::from_millis(100)).is_some() {}
            let mut output_seen = !after_output;
            let mut ready = 0;
            let started = Instant::now();
            let mut clock = started;
            let mut exited = false;
            while ready < shape.0 || !output_seen || clock.elapsed() < kill_after {
                while run.ready.try_recv().is_ok() {
                    ready += 1;
                }
                if !output_seen && watch.poll(Duration::ZERO).is_some() {
                    output_seen = true;
                    clock = Instant::now();
                }
                if run
                    .children
                    .iter_mut()
                    .any(|c| c.try_wait().ok().flatten().is_some())
                {
                    exited = true;
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "a run neither wrote nor ended in 60 s"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            summary.after_output += usize::from(after_output && !exited);
            if !exited {
                let victim = rng.below(shape.0 as u64) as usize;
                // SAFETY: a signal to a child process this test owns.
                unsafe { libc::kill(run.children[victim].id() as i32, libc::SIGKILL) };
                let status = run.children[victim].wait().unwrap();
                assert_eq!(status.signal(), Some(libc::SIGKILL));
                killed += 1;
                summary.kills[shape_index] += 1;
            }
            // The other process stops on its own once its peer is gone.
            wait_all(&mut run.children, Duration::from_secs(30));
            if exited {
                // The flow finished before the kill moment: every later run reads nothing
                // new, so the remaining kills land in start-up and resume.
                let errors: String = run.stderr.iter().map(|e| e.lock().unwrap().clone()).collect();
                assert!(!errors.contains("exactly-once cannot be kept"), "{errors}");
            }
        } else {
            let ok = wait_all(&mut run.children, Duration::from_secs(120));
            let errors: String = run.stderr.iter().map(|e| e.lock().unwrap().clone()).collect();
            assert!(ok, "the last run failed: {errors}");
            return summary;
        }
    }
}

#[test]
fn killed_and_rescaled_flows_write_every_record_exactly_once() {
    if std::env::var("BWX_EOS_DIR").is_ok() {
        return;
    }
    let kills: usize = std::env::var("BWX_EOS_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(21);
    let base = tempfile::tempdir().unwrap();
    for (i, broker) in Broker::all().iter().enumerate() {
        let started = Instant::now();
        let s = setup(broker, base.path(), &format!("kills{i}"));
        let expected = seed(&s.brokers, &s.input, RECORDS);
        let seed: u64 = std::env::var("BWX_EOS_SEED")
            .ok()
            .and_then(|k| k.parse().ok())
            .unwrap_or(7);
        let summary = kill_and_resume(&s, kills, seed + i as u64);
        let committed = read_back(broker, &s.output, "read_committed");
        let uncommitted = read_back(broker, &s.output, "read_uncommitted");
        let result = check(&expected, &committed);
        println!(
            "exactly-once kafka on {}: runs={} kills={:?} (1 worker, 2 workers, 2 processes) after_output={} records={} \
             read_committed={} lost={} duplicates={} out_of_order_keys={} wrong={} read_uncommitted={} elapsed_s={}",
            broker.name(),
            summary.runs,
            summary.kills,
            summary.after_output,
            RECORDS,
            committed.len(),
            result.lost,
            result.duplicates,
            result.out_of_order,
            result.wrong,
            uncommitted.len(),
            started.elapsed().as_secs()
        );
        assert_eq!(result, Check::default(), "on {}", broker.name());
        assert_eq!(committed.len(), RECORDS);
        assert!(summary.kills.iter().sum::<usize>() >= kills);
        assert!(
            summary.kills.iter().all(|k| *k > 0),
            "every shape killed: {:?}",
            summary.kills
        );
        assert!(summary.after_output > 0, "no kill while output was being written");
        // What read_uncommitted sees beyond the committed records is aborted output.
        assert!(uncommitted.len() >= committed.len());
    }
}

/// A `read_uncommitted` consumer of every partition of `topic`.
fn uncommitted_watch(brokers: &str, topic: &str, partitions: i32) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("watch"))
        .set("isolation.level", "read_uncommitted")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    consumer
}

#[test]
fn an_open_transaction_is_seen_by_read_uncommitted_readers_only() {
    if std::env::var("BWX_EOS_DIR").is_ok() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let records = 60_000;
    for (i, broker) in Broker::all().iter().enumerate() {
        let mut s = setup(broker, base.path(), &format!("open{i}"));
        // One long epoch (the run lasts about 6 s): its output is one transaction per slot,
        // produced while the epoch runs.
        s.pace = Duration::from_micros(100);
        s.epoch = Duration::from_secs(30);
        let expected = seed(&s.brokers, &s.input, records);
        let watch = uncommitted_watch(&s.brokers, &s.output, OUT_PARTS);
        let mut run = start(&s, &s.dir, (1, 1));
        let started = Instant::now();
        // Killed as soon as the first records of the open transactions reach the broker.
        let seen = loop {
            if let Some(m) = watch.poll(Duration::from_millis(5)) {
                break m.unwrap().offset();
            }
            assert!(
                run.children[0].try_wait().unwrap().is_none(),
                "the flow ended before it was killed: {}",
                run.stderr[0].lock().unwrap()
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no output within 60 s"
            );
        };
        // SAFETY: a signal to a child process this test owns.
        unsafe { libc::kill(run.children[0].id() as i32, libc::SIGKILL) };
        run.children[0].wait().unwrap();
        let committed_at_kill = read_back(broker, &s.output, "read_committed");
        let uncommitted_at_kill = read_back(broker, &s.output, "read_uncommitted");
        // The resumed producers fence the killed ones (their transactions are aborted) and
        // the epoch, never durable, is read and written again.
        let mut resumed = start(&s, &s.dir, (1, 1));
        let ok = wait_all(&mut resumed.children, Duration::from_secs(120));
        assert!(
            ok,
            "the resumed run failed: {}",
            resumed.stderr[0].lock().unwrap()
        );
        let committed = read_back(broker, &s.output, "read_committed");
        let uncommitted = read_back(broker, &s.output, "read_uncommitted");
        println!(
            "open transaction on {}: first record seen at offset {seen}; at the kill: read_committed={} read_uncommitted={}; \
             after the resume: read_committed={} read_uncommitted={} (records {records})",
            broker.name(),
            committed_at_kill.len(),
            uncommitted_at_kill.len(),
            committed.len(),
            uncommitted.len()
        );
        assert!(
            committed_at_kill.len() < uncommitted_at_kill.len(),
            "on {}: read_uncommitted saw no more than read_committed at the kill",
            broker.name()
        );
        assert_eq!(
            check(&expected, &committed),
            Check::default(),
            "on {}",
            broker.name()
        );
        assert_eq!(committed.len(), records);
        assert!(
            uncommitted.len() > records,
            "on {}: the aborted records are not visible to read_uncommitted",
            broker.name()
        );
    }
}

/// Runs the flow in this process to the end of its input.
fn run_here(s: &Setup, dir: &Path) -> Result<(), bwx::FlowError> {
    run_with(s, dir, SLOTS, RunConfig::default())
}

fn run_with(s: &Setup, dir: &Path, slots: usize, config: RunConfig) -> Result<(), bwx::FlowError> {
    let store = SqliteRecovery::open(dir, Duration::ZERO, "eos").unwrap();
    let config = config.epoch_interval(EPOCH).recovery(store);
    bwx::run_main_with(
        &flow(&s.brokers, &s.input, &s.output, &s.prefix, Duration::ZERO, slots),
        config,
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_store_older_than_the_committed_output_is_refused() {
    if std::env::var("BWX_EOS_DIR").is_ok() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    for (i, broker) in Broker::all().iter().enumerate() {
        let s = setup(broker, base.path(), &format!("old{i}"));
        let first = seed(&s.brokers, &s.input, 240);
        run_here(&s, &s.dir).unwrap();
        let backup = base.path().join(format!("old{i}-backup"));
        copy_dir(&s.dir, &backup);
        seed(&s.brokers, &s.input, 240);
        run_here(&s, &s.dir).unwrap();
        let committed = read_back(broker, &s.output, "read_committed").len();
        assert_eq!(committed, 480);
        // The store restored from the backup is older than what Kafka has committed.
        let restored = base.path().join(format!("old{i}-restored"));
        copy_dir(&backup, &restored);
        let err = run_here(&s, &restored).unwrap_err().report();
        assert!(
            err.contains("step eos.out")
                && err.contains("slot txn-")
                && err.contains("Kafka has committed epoch")
                && err.contains("state of the slot ends at epoch")
                && err.contains("exactly-once cannot be kept"),
            "{err}"
        );
        // So is a new store under the same transactional ids.
        let new = base.path().join(format!("old{i}-new"));
        bwx::recovery::init_dir(&new, RECOVERY_PARTS).unwrap();
        let err = run_here(&s, &new).unwrap_err().report();
        assert!(
            err.contains("the recovery store has no state for the slot"),
            "{err}"
        );
        // Neither refused run wrote anything.
        assert_eq!(read_back(broker, &s.output, "read_committed").len(), committed);
        assert_eq!(first.values().sum::<usize>(), 240);
        println!("refused on {}: {err}", broker.name());
    }
}

#[test]
fn a_resume_with_another_number_of_slots_is_refused() {
    if std::env::var("BWX_EOS_DIR").is_ok() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    for (i, broker) in Broker::all().iter().enumerate() {
        let s = setup(broker, base.path(), &format!("slots{i}"));
        let first = seed(&s.brokers, &s.input, 240);
        run_here(&s, &s.dir).unwrap();
        let expected = seed_more(&s.brokers, &s.input, 240, first);
        // More slots: the stored slots refuse. Fewer: the store's extra slots match no
        // partition, and where the user drops them, the remaining slots refuse.
        let mut refusals = Vec::new();
        for (slots, config) in [
            (SLOTS + 1, RunConfig::default()),
            (SLOTS - 1, RunConfig::default().drop_unmatched_state(true)),
        ] {
            let err = run_with(&s, &s.dir, slots, config).unwrap_err().report();
            assert!(
                err.contains("step eos.out")
                    && err.contains("slot txn-")
                    && err.contains(&format!("written with {SLOTS} slots"))
                    && err.contains(&format!("now has {slots} slots")),
                "{err}"
            );
            refusals.push(err);
        }
        // Nothing of the refused runs is in Kafka; with the stored number of slots the
        // flow goes on exactly once.
        assert_eq!(read_back(broker, &s.output, "read_committed").len(), 240);
        run_here(&s, &s.dir).unwrap();
        assert_eq!(
            check(&expected, &read_back(broker, &s.output, "read_committed")),
            Check::default()
        );
        println!("refused on {}: {}", broker.name(), refusals.join("\n"));
    }
}
