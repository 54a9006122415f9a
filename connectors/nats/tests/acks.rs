//! What the JetStream source acknowledges, and when: driven the way the engine drives a
//! partition (read, snapshot, commit), against a real server (`BWX_NATS_URL`, see
//! `tests/conformance.rs`).

use std::time::Duration;

use async_nats::jetstream::{self, Context, stream};
use bwx_nats::{JetStreamPosition, JetStreamSource, NatsError};
use bwx_runtime::StepId;
use bwx_runtime::inputs::{FixedPartitionedSource, StatefulSourcePartition};
use tokio::runtime::Runtime;

fn url() -> Option<String> {
    bwx_runtime::testing::conformance::server_address("BWX_NATS_URL")
}

fn step() -> StepId {
    serde_json::from_str("\"f.inp\"").unwrap()
}

/// A stream `<name>` on `<name>.in` holding the messages `1..=n`.
fn stream_of(url: &str, name: &str, n: u64) -> (Runtime, Context) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let js = rt.block_on(async {
        let js = jetstream::new(async_nats::connect(url).await.unwrap());
        js.create_stream(stream::Config {
            name: name.to_string(),
            subjects: vec![format!("{name}.in")],
            ..Default::default()
        })
        .await
        .unwrap();
        for i in 1..=n {
            js.publish(format!("{name}.in"), i.to_string().into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        js
    });
    (rt, js)
}

/// The acknowledgement floor of the source's consumer of `stream`.
fn ack_floor(rt: &Runtime, js: &Context, stream: &str) -> u64 {
    rt.block_on(async {
        let consumer = format!("bwx-{stream}");
        let info = js
            .get_stream(stream)
            .await
            .unwrap()
            .consumer_info(consumer)
            .await
            .unwrap();
        info.ack_floor.stream_sequence
    })
}

fn name(test: &str) -> String {
    format!("acks_{test}_{}", std::process::id())
}

fn payloads(batch: &[bwx_nats::JetStreamMessage]) -> Vec<String> {
    batch
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect()
}

#[test]
fn messages_are_acknowledged_when_their_position_is_durable_and_not_before() {
    let Some(url) = url() else { return };
    let stream = name("durable");
    let (rt, js) = stream_of(&url, &stream, 6);
    let source = JetStreamSource::new(&url, [stream.as_str()])
        .unwrap()
        .batch_size(2);
    let mut part = source.build_part(&step(), &stream, None).unwrap();
    let mut batch = Vec::new();
    part.next_batch(&mut batch).unwrap();
    let first = part.snapshot();
    part.next_batch(&mut batch).unwrap();
    let second = part.snapshot();
    assert_eq!(payloads(&batch), ["1", "2", "3", "4"]);
    assert_eq!((first.last_sequence, second.last_sequence), (2, 4));
    assert_eq!(ack_floor(&rt, &js, &stream), 0, "nothing is durable yet");
    part.commit(&first).unwrap();
    assert_eq!(ack_floor(&rt, &js, &stream), 2);
    part.commit(&second).unwrap();
    assert_eq!(ack_floor(&rt, &js, &stream), 4);
}

#[test]
fn a_resume_starts_after_its_position_even_behind_the_acknowledgements_and_refuses_one_whose_messages_are_gone()
 {
    let Some(url) = url() else { return };
    let stream = name("resume");
    let (rt, js) = stream_of(&url, &stream, 6);
    let source = JetStreamSource::new(&url, [stream.as_str()])
        .unwrap()
        .batch_size(2)
        .tail(false);
    let read_all = |part: &mut bwx_nats::JetStreamPartition| {
        let mut out = Vec::new();
        while part.next_batch(&mut out).unwrap() == bwx_runtime::inputs::BatchStatus::Active {}
        payloads(&out)
    };
    let mut part = source.build_part(&step(), &stream, None).unwrap();
    let mut batch = Vec::new();
    part.next_batch(&mut batch).unwrap();
    let older = part.snapshot();
    part.next_batch(&mut batch).unwrap();
    let durable = part.snapshot();
    part.commit(&durable).unwrap();
    drop(part);
    // Resumed from the durable position: the rest, once.
    let mut resumed = source.build_part(&step(), &stream, Some(durable)).unwrap();
    assert_eq!(read_all(&mut resumed), ["5", "6"]);
    drop(resumed);
    assert_eq!(
        ack_floor(&rt, &js, &stream),
        0,
        "the new consumer acknowledged nothing yet"
    );
    // A recovery store older than the acknowledgements (a restored backup) resumes from
    // its own position while the stream still holds the messages after it.
    let mut part = source.build_part(&step(), &stream, Some(durable)).unwrap();
    let mut again = Vec::new();
    part.next_batch(&mut again).unwrap();
    part.commit(&part.snapshot()).unwrap();
    drop(part);
    let mut behind = source.build_part(&step(), &stream, Some(older)).unwrap();
    assert_eq!(read_all(&mut behind), ["3", "4", "5", "6"]);
    drop(behind);
    // Once they are gone, it cannot.
    rt.block_on(async {
        js.get_stream(&stream).await.unwrap().purge().await.unwrap();
    });
    let err = match source.build_part(&step(), &stream, Some(older)) {
        Ok(_) => panic!("resumed although the messages after its position are gone"),
        Err(e) => e,
    };
    let err = err.downcast_ref::<NatsError>().expect("a NatsError");
    assert!(
        matches!(
            err,
            NatsError::MessagesGone {
                first: 7,
                resumed: 2,
                ..
            }
        ),
        "{err}"
    );
    // A fresh run reads what the stream holds.
    let mut fresh = source.build_part(&step(), &stream, None).unwrap();
    assert!(read_all(&mut fresh).is_empty());
}

#[test]
fn messages_delivered_again_after_the_ack_wait_are_skipped() {
    let Some(url) = url() else { return };
    let stream = name("redelivered");
    let (_rt, _js) = stream_of(&url, &stream, 4);
    let source = JetStreamSource::new(&url, [stream.as_str()])
        .unwrap()
        .batch_size(2)
        .ack_wait(Duration::from_millis(200));
    let mut part = source
        .build_part(&step(), &stream, Some(JetStreamPosition::default()))
        .unwrap();
    let mut batch = Vec::new();
    part.next_batch(&mut batch).unwrap();
    assert_eq!(payloads(&batch), ["1", "2"]);
    // No commit: the server delivers 1 and 2 again after the wait.
    std::thread::sleep(Duration::from_millis(500));
    let mut later = Vec::new();
    for _ in 0..20 {
        part.next_batch(&mut later).unwrap();
        if later.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(payloads(&later), ["3", "4"]);
}

#[test]
fn an_epoch_that_publishes_more_than_the_clients_in_flight_limit_ends() {
    let Some(url) = url() else { return };
    use bwx_runtime::{Dataflow, RunConfig};
    let stream = name("inflight");
    // async-nats lets 5,000 acknowledgements wait by default; the sink awaited none before
    // the epoch's close, so the 5,001st publication waited forever.
    let n = 6_000u64;
    let (rt, js) = stream_of(&url, &stream, 0);
    let sink = bwx_nats::JetStreamSink::new(&url, &format!("{stream}.in")).unwrap();
    let flow = Dataflow::new("publish");
    flow.input(
        "inp",
        bwx_runtime::testing::TestingSource::new(0..n).batch_size(1000),
    )
    .map("payload", |i| i.to_string())
    .output("out", sink);
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // One epoch for everything.
        let config = RunConfig::default().epoch_interval(Duration::from_secs(600));
        let _ = done_tx.send(bwx_runtime::run_workers(&flow, 1, config).map_err(|e| e.report()));
    });
    match done.recv_timeout(Duration::from_secs(60)) {
        Ok(result) => result.unwrap(),
        Err(_) => panic!("publishing {n} messages in one epoch did not end in 60 s"),
    }
    let stored = rt.block_on(async {
        js.get_stream(&stream)
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap()
            .state
            .messages
    });
    assert_eq!(stored, n);
}
