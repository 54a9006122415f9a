//! Throughput of the server connectors (PostgreSQL, Redis Streams, NATS JetStream, MQTT)
//! on 1 and 2 workers, beside the rate of the client crate used directly for the same work
//! in the same run: the cost bwx adds over its client.
//!
//! For each system: the raw client writes N items, the bwx sink writes N items, the raw
//! client reads N items, the bwx source reads N items. Wall time and the process's CPU time
//! (user + system, from `getrusage`) per measurement; the servers' own CPU is not counted.
//!
//! ```text
//! scripts/servers.sh start && eval "$(scripts/servers.sh env)"
//! cargo run --release --example connector_bench --features postgres,redis,nats,mqtt -- 100000
//! ```
//!
//! Each measurement uses fresh resources (a table, streams, topics) named after the run.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bwx::inputs::ConnectorError;
use bwx::outputs::{DynamicSink, StatelessSinkPartition};
use bwx::prelude::*;
use bwx::testing::TestingSource;

/// Process CPU time so far (user + system).
fn cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we pass.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// One measurement's row.
struct Row {
    system: &'static str,
    what: String,
    items: u64,
    wall: Duration,
    cpu: Duration,
}

fn measure(
    system: &'static str,
    what: impl Into<String>,
    items: u64,
    f: impl FnOnce() -> Result<()>,
) -> Result<Row> {
    let (c0, t0) = (cpu(), Instant::now());
    f()?;
    let row = Row {
        system,
        what: what.into(),
        items,
        wall: t0.elapsed(),
        cpu: cpu() - c0,
    };
    eprintln!(
        "{system:8} {:36} {:>10.0} items/s  (cpu {:.2} s)",
        row.what,
        items as f64 / row.wall.as_secs_f64(),
        row.cpu.as_secs_f64()
    );
    Ok(row)
}

/// Counts what it gets, on every worker.
#[derive(Clone, Default)]
struct Count(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl<T: Data> DynamicSink for CountOf<T> {
    type Item = T;
    type Partition = CountOf<T>;
    fn build(&self, _: &StepId, _: usize, _: usize) -> Result<CountOf<T>, ConnectorError> {
        Ok(CountOf(self.0.clone(), std::marker::PhantomData))
    }
}

struct CountOf<T>(Count, std::marker::PhantomData<fn(T)>);

impl<T: 'static> StatelessSinkPartition for CountOf<T> {
    type Item = T;
    fn write_batch(&mut self, items: &mut Vec<T>) -> Result<(), ConnectorError> {
        self.0
            .0
            .fetch_add(items.len() as u64, std::sync::atomic::Ordering::Relaxed);
        items.clear();
        Ok(())
    }
}

/// Runs `flow` on `workers` threads with 1 s epochs.
fn run(flow: &Dataflow, workers: usize) -> Result<()> {
    let config = RunConfig::default().epoch_interval(Duration::from_secs(1));
    bwx::run_workers(flow, workers, config).map_err(|e| anyhow::anyhow!(e.report()))
}

/// Reads a source to its end on `workers` workers and checks the count.
fn read_all<S, M>(source: S, workers: usize, n: u64) -> Result<()>
where
    S: bwx::operators::IntoSource<M>,
{
    let count = Count::default();
    let flow = Dataflow::new("read");
    flow.input("inp", source)
        .output("out", CountOf(count.clone(), std::marker::PhantomData));
    run(&flow, workers)?;
    let got = count.0.load(std::sync::atomic::Ordering::Relaxed);
    anyhow::ensure!(got == n, "read {got} items of {n}");
    Ok(())
}

fn numbers(n: u64) -> TestingSource<u64> {
    TestingSource::new(0..n).batch_size(1000)
}

fn tag() -> String {
    format!("bench{}", std::process::id())
}

mod pg {
    use super::*;
    use bwx::postgres::postgres::binary_copy::BinaryCopyInWriter;
    use bwx::postgres::postgres::types::Type;
    use bwx::postgres::postgres::{Client, NoTls};
    use bwx::postgres::{PostgresSink, PostgresSource};

    fn table(client: &mut Client, name: &str) -> Result<()> {
        client.batch_execute(&format!(
            "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id bigint PRIMARY KEY, v bigint NOT NULL)"
        ))?;
        Ok(())
    }

    pub fn bench(url: &str, n: u64, rows: &mut Vec<Row>) -> Result<()> {
        let mut client = Client::connect(url, NoTls)?;
        let raw = format!("{}_raw", tag());
        table(&mut client, &raw)?;
        rows.push(measure("postgres", "raw COPY, one transaction", n, || {
            let mut tx = client.transaction()?;
            let writer = tx.copy_in(&format!("COPY {raw} (id, v) FROM STDIN BINARY"))?;
            let mut copy = BinaryCopyInWriter::new(writer, &[Type::INT8, Type::INT8]);
            for i in 0..n as i64 {
                copy.write(&[&i, &(i * 2)])?;
            }
            copy.finish()?;
            tx.commit()?;
            Ok(())
        })?);
        for workers in [1, 2] {
            let name = format!("{}_sink{workers}", tag());
            table(&mut client, &name)?;
            let sink = PostgresSink::<u64, (i64, i64)>::new(url, &name, &["id", "v"])?.slots(2);
            rows.push(measure(
                "postgres",
                format!("PostgresSink, {workers} worker(s)"),
                n,
                || {
                    let flow = Dataflow::new("write");
                    flow.input("inp", numbers(n))
                        .map("row", |i| (i, (i as i64, i as i64 * 2)))
                        .output("out", sink);
                    run(&flow, workers)
                },
            )?);
        }
        rows.push(measure("postgres", "raw SELECT by key, 1000 a query", n, || {
            let next = client.prepare(&format!(
                "SELECT id, v FROM {raw} WHERE id > $1 ORDER BY id LIMIT 1000"
            ))?;
            let (mut after, mut read) = (-1i64, 0u64);
            loop {
                let got = client.query(&next, &[&after])?;
                let Some(last) = got.last() else { break };
                after = last.get(0);
                read += got.len() as u64;
            }
            anyhow::ensure!(read == n, "read {read}");
            Ok(())
        })?);
        for workers in [1, 2] {
            let source = PostgresSource::<(i64,)>::table(url, &raw, "id", &["v"])?
                .partitions(2)
                .batch_size(1000)
                .tail(false);
            rows.push(measure(
                "postgres",
                format!("PostgresSource, {workers} worker(s)"),
                n,
                || read_all(source, workers, n),
            )?);
        }
        Ok(())
    }
}

mod redis_bench {
    use super::*;
    use bwx::redis::redis;
    use bwx::redis::{RedisStreamSink, RedisStreamSource};

    pub fn bench(url: &str, n: u64, rows: &mut Vec<Row>) -> Result<()> {
        let mut con = redis::Client::open(url)?.get_connection()?;
        let raw = [format!("{}:raw:0", tag()), format!("{}:raw:1", tag())];
        rows.push(measure("redis", "raw XADD, pipelines of 1000", n, || {
            for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
                let mut pipe = redis::pipe();
                for i in chunk {
                    pipe.cmd("XADD")
                        .arg(&raw[(*i % 2) as usize])
                        .arg("*")
                        .arg("v")
                        .arg(*i)
                        .ignore();
                }
                pipe.query::<()>(&mut con)?;
            }
            Ok(())
        })?);
        for workers in [1, 2] {
            let sink = RedisStreamSink::new(url, &format!("{}:sink{workers}", tag()))?;
            rows.push(measure(
                "redis",
                format!("RedisStreamSink, {workers} worker(s)"),
                n,
                || {
                    let flow = Dataflow::new("write");
                    flow.input("inp", numbers(n))
                        .redistribute("spread")
                        .map("fields", |i| vec![("v".to_string(), i.to_string())])
                        .output("out", sink);
                    run(&flow, workers)
                },
            )?);
        }
        rows.push(measure("redis", "raw XREAD, 1000 a call", n, || {
            let mut read = 0u64;
            for stream in &raw {
                let mut after = "0-0".to_string();
                loop {
                    let reply: redis::streams::StreamReadReply = redis::cmd("XREAD")
                        .arg("COUNT")
                        .arg(1000)
                        .arg("STREAMS")
                        .arg(stream)
                        .arg(&after)
                        .query(&mut con)?;
                    let Some(key) = reply.keys.into_iter().next() else {
                        break;
                    };
                    let Some(last) = key.ids.last() else { break };
                    after = last.id.clone();
                    read += key.ids.len() as u64;
                }
            }
            anyhow::ensure!(read == n, "read {read}");
            Ok(())
        })?);
        for workers in [1, 2] {
            let source = RedisStreamSource::new(url, raw.clone())?
                .batch_size(1000)
                .tail(false);
            rows.push(measure(
                "redis",
                format!("RedisStreamSource, {workers} worker(s)"),
                n,
                || read_all(source, workers, n),
            )?);
        }
        Ok(())
    }
}

mod nats_bench {
    use super::*;
    use async_nats::jetstream::consumer::{AckPolicy, pull};
    use async_nats::jetstream::{self, stream};
    use bwx::nats::async_nats;
    use bwx::nats::{JetStreamSink, JetStreamSource};
    use futures_util::StreamExt;

    pub fn bench(url: &str, n: u64, rows: &mut Vec<Row>) -> Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let js = rt.block_on(async { anyhow::Ok(jetstream::new(async_nats::connect(url).await?)) })?;
        let name = |what: &str| format!("{}_{what}", tag());
        for what in ["raw0", "raw1", "sink1", "sink2"] {
            rt.block_on(js.create_stream(stream::Config {
                name: name(what),
                subjects: vec![format!("{}.x", name(what))],
                ..Default::default()
            }))?;
        }
        rows.push(measure("nats", "raw publish, acks awaited per 1000", n, || {
            rt.block_on(async {
                let mut acks = Vec::with_capacity(1000);
                for i in 0..n {
                    let subject = format!("{}.x", name(if i % 2 == 0 { "raw0" } else { "raw1" }));
                    acks.push(js.publish(subject, i.to_string().into()).await?);
                    if acks.len() == 1000 {
                        for ack in acks.drain(..) {
                            ack.await?;
                        }
                    }
                }
                for ack in acks {
                    ack.await?;
                }
                anyhow::Ok(())
            })
        })?);
        for workers in [1, 2] {
            let sink = JetStreamSink::new(url, &format!("{}.x", name(&format!("sink{workers}"))))?;
            rows.push(measure(
                "nats",
                format!("JetStreamSink, {workers} worker(s)"),
                n,
                || {
                    let flow = Dataflow::new("write");
                    flow.input("inp", numbers(n))
                        .redistribute("spread")
                        .map("payload", |i| i.to_string())
                        .output("out", sink);
                    run(&flow, workers)
                },
            )?);
        }
        rows.push(measure("nats", "raw pull consumer, fetch 1000", n, || {
            rt.block_on(async {
                let mut read = 0u64;
                for what in ["raw0", "raw1"] {
                    let consumer = js
                        .get_stream(name(what))
                        .await?
                        .create_consumer(pull::Config {
                            ack_policy: AckPolicy::None,
                            ..Default::default()
                        })
                        .await?;
                    loop {
                        let mut batch = consumer.fetch().max_messages(1000).messages().await?;
                        let mut got = 0;
                        while let Some(m) = batch.next().await {
                            m.map_err(|e| anyhow::anyhow!(e))?;
                            got += 1;
                        }
                        if got == 0 {
                            break;
                        }
                        read += got;
                    }
                }
                anyhow::ensure!(read == n, "read {read}");
                anyhow::Ok(())
            })
        })?);
        for workers in [1, 2] {
            let source = JetStreamSource::new(url, [name("raw0"), name("raw1")])?
                .consumer_prefix(&format!("w{workers}"))
                .batch_size(1000)
                .tail(false);
            rows.push(measure(
                "nats",
                format!("JetStreamSource, {workers} worker(s)"),
                n,
                || read_all(source, workers, n),
            )?);
        }
        Ok(())
    }
}

mod mqtt_bench {
    use super::*;
    use bwx::mqtt::rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    use bwx::mqtt::{MqttSink, MqttSource};

    fn client(addr: &str, id: &str, clean: bool) -> Result<(Client, std::sync::mpsc::Receiver<Event>)> {
        let (host, port) = addr.rsplit_once(':').context("BWX_MQTT_ADDR is host:port")?;
        let mut options = MqttOptions::new(id, host, port.parse()?);
        options
            .set_clean_session(clean)
            .set_keep_alive(Duration::from_secs(30));
        let (client, mut connection) = Client::new(options, 1024);
        let (tx, rx) = std::sync::mpsc::sync_channel(1 << 16);
        std::thread::spawn(move || {
            for event in connection.iter() {
                let Ok(event) = event else { return };
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        Ok((client, rx))
    }

    pub fn bench(addr: &str, n: u64, rows: &mut Vec<Row>) -> Result<()> {
        let topics = [format!("{}/raw/0", tag()), format!("{}/raw/1", tag())];
        // Sessions first: the broker keeps messages only for subscribers that exist.
        let source = |workers: usize| -> Result<MqttSource> {
            Ok(MqttSource::new(addr, &format!("{}-src{workers}", tag()), topics.clone())?.batch_size(1000))
        };
        for workers in [1, 2] {
            source(workers)?.create_sessions()?;
        }
        let (raw_reader, raw_events) = client(addr, &format!("{}-rawreader", tag()), false)?;
        for t in &topics {
            raw_reader.subscribe(t, QoS::AtLeastOnce)?;
        }
        std::thread::sleep(Duration::from_millis(200));
        rows.push(measure("mqtt", "raw QoS 1 publish, acks awaited", n, || {
            let (client, events) = client(addr, &format!("{}-rawpub", tag()), true)?;
            let mut acked = 0;
            for i in 0..n {
                client.publish(
                    &topics[(i % 2) as usize],
                    QoS::AtLeastOnce,
                    false,
                    i.to_string().into_bytes(),
                )?;
                while let Ok(e) = events.try_recv() {
                    acked += matches!(e, Event::Incoming(Packet::PubAck(_))) as u64;
                }
            }
            while acked < n {
                let e = events.recv_timeout(Duration::from_secs(30))?;
                acked += matches!(e, Event::Incoming(Packet::PubAck(_))) as u64;
            }
            client.disconnect()?;
            Ok(())
        })?);
        for workers in [1, 2] {
            let sink = MqttSink::new(
                addr,
                &format!("{}-sink{workers}", tag()),
                &format!("{}/sink", tag()),
            )?;
            rows.push(measure(
                "mqtt",
                format!("MqttSink, {workers} worker(s)"),
                n,
                || {
                    let flow = Dataflow::new("write");
                    flow.input("inp", numbers(n))
                        .redistribute("spread")
                        .map("payload", |i| i.to_string())
                        .output("out", sink);
                    run(&flow, workers)
                },
            )?);
        }
        rows.push(measure("mqtt", "raw QoS 1 subscriber", n, || {
            let mut read = 0;
            while read < n {
                if let Event::Incoming(Packet::Publish(_)) =
                    raw_events.recv_timeout(Duration::from_secs(30))?
                {
                    read += 1;
                }
            }
            Ok(())
        })?);
        for workers in [1, 2] {
            let source = source(workers)?;
            rows.push(measure(
                "mqtt",
                format!("MqttSource, {workers} worker(s)"),
                n,
                || {
                    // A tailing source: stopped once it counted every message.
                    let count = Count::default();
                    let flow = Dataflow::new("read");
                    flow.input("inp", source)
                        .output("out", CountOf(count.clone(), std::marker::PhantomData));
                    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let config = RunConfig::default()
                        .epoch_interval(Duration::from_secs(1))
                        .stop_flag(stop.clone());
                    let watch = std::thread::spawn({
                        let count = count.clone();
                        move || {
                            let until = Instant::now() + Duration::from_secs(120);
                            while count.0.load(std::sync::atomic::Ordering::Relaxed) < n
                                && Instant::now() < until
                            {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            stop.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                    });
                    bwx::run_workers(&flow, workers, config).map_err(|e| anyhow::anyhow!(e.report()))?;
                    let _ = watch.join();
                    let got = count.0.load(std::sync::atomic::Ordering::Relaxed);
                    anyhow::ensure!(got >= n, "read {got} of {n}");
                    Ok(())
                },
            )?);
        }
        Ok(())
    }
}

fn main() -> Result<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let env = |name: &str| {
        std::env::var(name).with_context(|| format!("{name} is not set (scripts/servers.sh env)"))
    };
    let mut rows = Vec::new();
    pg::bench(&env("BWX_POSTGRES_URL")?, n, &mut rows)?;
    redis_bench::bench(&env("BWX_REDIS_URL")?, n, &mut rows)?;
    nats_bench::bench(&env("BWX_NATS_URL")?, n, &mut rows)?;
    mqtt_bench::bench(&env("BWX_MQTT_ADDR")?, n, &mut rows)?;
    println!("| system | what | items | wall s | items/s | cpu s |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.2} |",
            r.system,
            r.what,
            r.items,
            r.wall.as_secs_f64(),
            r.items as f64 / r.wall.as_secs_f64(),
            r.cpu.as_secs_f64()
        );
    }
    Ok(())
}
