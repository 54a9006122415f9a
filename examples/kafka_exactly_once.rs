//! Kafka in, running count per word, Kafka out exactly once.
//!
//! Reads words from a topic, keeps a running count per word, and writes `word: count` to
//! another topic through the exactly-once sink: each epoch's output is one Kafka
//! transaction per slot, committed once the epoch is in the recovery store. However often
//! the flow is stopped or killed and resumed from its recovery directory, a consumer with
//! `isolation.level=read_committed` sees every count exactly once.
//!
//! Start a broker that implements transactions (noida-db: `scripts/kafka-brokers.sh start
//! noida`; tansu does not), then:
//!
//! ```sh
//! cargo run --example kafka_exactly_once --features kafka -- 127.0.0.1:29092 /tmp/wc-recovery
//! ```
//!
//! The first run creates the topics, writes some words and counts them; run it again (or
//! kill it with Ctrl-C or `kill -9` and run it again) and it writes more words and
//! continues from where the recovery directory says, with the counts going on.

use std::path::Path;
use std::time::Duration;

use bwx::connectors::kafka::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use bwx::connectors::kafka::rdkafka::client::DefaultClientContext;
use bwx::connectors::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use bwx::connectors::kafka::rdkafka::error::KafkaError;
use bwx::connectors::kafka::rdkafka::message::Message;
use bwx::connectors::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use bwx::connectors::kafka::rdkafka::types::RDKafkaErrorCode;
use bwx::connectors::kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use bwx::connectors::kafka::{self, KafkaConfig, KafkaSink, KafkaSinkMessage, KafkaSource};
use bwx::prelude::*;
use bwx::recovery::SqliteRecovery;

/// The input topic of `main`.
pub const WORDS: &str = "bwx-eos-words";
/// The output topic of `main`.
pub const COUNTS: &str = "bwx-eos-counts";

/// The flow: words in, `word: count` out, exactly once.
pub fn count_flow(
    config: &KafkaConfig,
    words: &str,
    counts: &str,
    transactional_id_prefix: &str,
) -> Dataflow {
    let flow = Dataflow::new("word_counts");
    let msgs = kafka::input(&flow, "in", KafkaSource::new(config.clone(), [words]).tail(false));
    msgs.errs
        .inspect("consumer_errors", |_, e| eprintln!("consumer error: {}", e.error));
    msgs.oks
        .filter_map("word", |m| String::from_utf8(m.value?).ok())
        .map("keyed", |w: String| (w.to_lowercase(), ()))
        .stateful_map("count", |n: Option<u64>, ()| {
            let n = n.unwrap_or(0) + 1;
            (Some(n), n)
        })
        // The key routes each word to one transaction slot, so a word's counts stay in order.
        .map("msg", |(word, n): (String, u64)| {
            let msg = KafkaSinkMessage::new(
                Some(word.clone().into_bytes()),
                Some(format!("{word}: {n}").into_bytes()),
            );
            (word, msg)
        })
        .output(
            "out",
            KafkaSink::new(config.clone(), Some(counts)).exactly_once(transactional_id_prefix),
        );
    flow
}

/// Runs the flow once, resuming from (or starting) the recovery directory `dir`.
pub fn run_counts(
    config: &KafkaConfig,
    words: &str,
    counts: &str,
    prefix: &str,
    dir: &Path,
) -> anyhow::Result<()> {
    if !dir.exists() {
        bwx::recovery::init_dir(dir, 2)?;
    }
    let store = SqliteRecovery::open(dir, Duration::ZERO, "word_counts")?;
    let run = RunConfig::default()
        .epoch_interval(Duration::from_millis(500))
        .recovery(store);
    bwx::run_workers(&count_flow(config, words, counts, prefix), 2, run)?;
    Ok(())
}

/// Creates a topic; one that exists already is fine.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for r in rt.block_on(admin.create_topics([&topic], &AdminOptions::new()))? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("cannot create topic {t}: {e}"),
        }
    }
    Ok(())
}

/// Writes words to the input topic.
pub fn write_words<'a>(
    brokers: &str,
    topic: &str,
    words: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<()> {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    for w in words {
        producer
            .send(BaseRecord::<(), str>::to(topic).payload(w))
            .map_err(|(e, _)| e)?;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

/// Reads every committed count, as a `read_committed` consumer (librdkafka's default) does.
pub fn read_counts(brokers: &str, topic: &str) -> anyhow::Result<Vec<String>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bwx-eos-example-reader")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()?;
    let partitions = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))?
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len());
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let (mut out, mut ended) = (Vec::new(), 0);
    while ended < partitions {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()),
            Some(Err(KafkaError::PartitionEOF(_))) => ended += 1,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("no message and no end of partition within 10 s"),
        }
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:29092".into());
    let dir = args.next().unwrap_or_else(|| "bwx-eos-recovery".into());
    let config = KafkaConfig::new(&brokers);
    create_topic(&brokers, WORDS, 3)?;
    create_topic(&brokers, COUNTS, 3)?;
    write_words(
        &brokers,
        WORDS,
        "the quick brown fox jumps over the lazy dog the end".split(' '),
    )?;
    run_counts(&config, WORDS, COUNTS, "bwx-eos-example", Path::new(&dir))?;
    for line in read_counts(&brokers, COUNTS)? {
        println!("{line}");
    }
    Ok(())
}
