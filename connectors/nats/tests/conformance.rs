//! The NATS JetStream connectors on the conformance kit, against a real server.
//!
//! They run when `BWX_NATS_URL` names a server with JetStream (as `.ci/run` sets it; by
//! hand: `scripts/servers.sh start && eval "$(scripts/servers.sh env)"`), and otherwise
//! skip, saying so, unless `BWX_REQUIRE_SERVERS` is set (as `.ci/run` sets it): then they
//! fail.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, Context, stream};
use bwx_nats::{JetStreamMessage, JetStreamSink, JetStreamSource};
use bwx_runtime::inputs::ConnectorError;
use bwx_runtime::operators::{DynamicKind, FixedKind};
use bwx_runtime::testing::conformance::{Case, Ending, SinkKit, SinkSystem, SourceKit, SourceSystem};
use futures_util::StreamExt;
use tokio::runtime::Runtime;

fn url() -> Option<String> {
    bwx_runtime::testing::conformance::server_address("BWX_NATS_URL")
}

const NOWHERE: &str = "nats://127.0.0.1:1";

/// A plain client of the server, to create streams, publish and read back.
struct Nats {
    url: String,
    rt: Runtime,
    js: Context,
}

impl Nats {
    fn new(url: String) -> Nats {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let js = rt
            .block_on(async {
                Ok::<_, async_nats::ConnectError>(jetstream::new(async_nats::connect(&url).await?))
            })
            .expect("connect to BWX_NATS_URL");
        Nats { url, js, rt }
    }

    fn create_stream(&self, name: &str, subject: &str) -> Result<(), ConnectorError> {
        self.rt.block_on(self.js.create_stream(stream::Config {
            name: name.to_string(),
            subjects: vec![subject.to_string()],
            ..Default::default()
        }))?;
        Ok(())
    }

    fn publish(
        &self,
        subject: &str,
        payloads: impl IntoIterator<Item = String>,
    ) -> Result<(), ConnectorError> {
        self.rt.block_on(async {
            let mut acks = Vec::new();
            for p in payloads {
                acks.push(self.js.publish(subject.to_string(), p.into()).await?);
            }
            for ack in acks {
                ack.await?;
            }
            Ok(())
        })
    }

    /// Every message of `stream`, through an ephemeral consumer.
    fn read_all(&self, stream: &str) -> Result<Vec<Vec<u8>>, ConnectorError> {
        self.rt.block_on(async {
            let stream = self.js.get_stream(stream).await?;
            let consumer = stream
                .create_consumer(pull::Config {
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::None,
                    ..Default::default()
                })
                .await?;
            let mut out = Vec::new();
            loop {
                let mut batch = consumer.fetch().max_messages(1000).messages().await?;
                let before = out.len();
                while let Some(m) = batch.next().await {
                    out.push(m?.payload.to_vec());
                }
                if out.len() == before {
                    return Ok(out);
                }
            }
        })
    }
}

/// Three streams `<case>_<p>` capturing the subjects `<case>.<p>`.
struct Streams {
    nats: Nats,
    tail: bool,
}

impl SourceSystem for Streams {
    type Kind = FixedKind;
    type Source = JetStreamSource;

    fn describe(&self) -> String {
        format!("JetStreamSource (tail {})", self.tail)
    }
    fn partitions(&self) -> usize {
        3
    }
    fn ending(&self) -> Ending {
        if self.tail { Ending::Tails } else { Ending::AtEof }
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        for p in 0..3 {
            self.nats
                .create_stream(&format!("{}_{p}", case.name()), &format!("{}.{p}", case.name()))?;
        }
        Ok(())
    }
    fn append(&self, case: &Case, part: usize, records: &[u64]) -> Result<(), ConnectorError> {
        self.nats.publish(
            &format!("{}.{part}", case.name()),
            records.iter().map(u64::to_string),
        )
    }
    fn source(&self, case: &Case) -> Result<JetStreamSource, ConnectorError> {
        Ok(
            JetStreamSource::new(&self.nats.url, (0..3).map(|p| format!("{}_{p}", case.name())))?
                .batch_size(2)
                .poll_interval(Duration::from_millis(10))
                .tail(self.tail),
        )
    }
    fn record(&self, message: &JetStreamMessage) -> Option<u64> {
        std::str::from_utf8(&message.payload).ok()?.parse().ok()
    }
    fn missing(&self, case: &Case) -> Option<Result<JetStreamSource, ConnectorError>> {
        Some(JetStreamSource::new(&self.nats.url, [format!("{}_missing", case.name())]).map_err(Into::into))
    }
    fn unreachable(&self, case: &Case) -> Option<Result<JetStreamSource, ConnectorError>> {
        Some(JetStreamSource::new(NOWHERE, [format!("{}_0", case.name())]).map_err(Into::into))
    }
}

#[test]
fn jetstream_source_tailing_conforms() {
    let Some(url) = url() else { return };
    SourceKit::new(
        Streams {
            nats: Nats::new(url),
            tail: true,
        },
        "jetstream_source_tailing_conforms",
    )
    .run()
    .assert_passed();
}

#[test]
fn jetstream_source_to_the_end_conforms() {
    let Some(url) = url() else { return };
    SourceKit::new(
        Streams {
            nats: Nats::new(url),
            tail: false,
        },
        "jetstream_source_to_the_end_conforms",
    )
    .run()
    .assert_passed();
}

/// The stream `<case>` capturing `<case>.out`, written by the sink.
struct Out {
    nats: Nats,
}

impl SinkSystem for Out {
    type Kind = DynamicKind;
    type Item = String;
    type Sink = JetStreamSink<String>;

    fn describe(&self) -> String {
        "JetStreamSink".into()
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        self.nats
            .create_stream(case.name(), &format!("{}.out", case.name()))
    }
    fn sink(&self, case: &Case) -> Result<Self::Sink, ConnectorError> {
        Ok(JetStreamSink::new(
            &self.nats.url,
            &format!("{}.out", case.name()),
        )?)
    }
    fn item(&self, record: u64) -> String {
        record.to_string()
    }
    fn read_back(&self, case: &Case) -> Result<Vec<u64>, ConnectorError> {
        self.nats
            .read_all(case.name())?
            .into_iter()
            .map(|p| Ok(String::from_utf8(p)?.parse()?))
            .collect()
    }
    fn missing(&self, case: &Case) -> Option<Result<Self::Sink, ConnectorError>> {
        // No stream captures this subject.
        Some(JetStreamSink::new(&self.nats.url, &format!("{}.nobody", case.name())).map_err(Into::into))
    }
    fn unreachable(&self, case: &Case) -> Option<Result<Self::Sink, ConnectorError>> {
        Some(JetStreamSink::new(NOWHERE, &format!("{}.out", case.name())).map_err(Into::into))
    }
}

#[test]
fn jetstream_sink_conforms() {
    let Some(url) = url() else { return };
    SinkKit::new(Out { nats: Nats::new(url) }, "jetstream_sink_conforms")
        .run()
        .assert_passed();
}
