//! The Redis Streams connectors on the conformance kit, against a real server.
//!
//! They run when `BWX_REDIS_URL` names a server (as `.ci/run` sets it; by hand:
//! `scripts/servers.sh start && eval "$(scripts/servers.sh env)"`), and otherwise skip,
//! saying so, unless `BWX_REQUIRE_SERVERS` is set (as `.ci/run` sets it): then they fail.

use std::sync::Mutex;
use std::time::Duration;

use bwx_redis::{RedisStreamSink, RedisStreamSource, StreamEntry};
use bwx_runtime::inputs::ConnectorError;
use bwx_runtime::operators::{DynamicKind, FixedKind};
use bwx_runtime::testing::conformance::{Case, Ending, SinkKit, SinkSystem, SourceKit, SourceSystem};
use redis::Connection;

fn url() -> Option<String> {
    bwx_runtime::testing::conformance::server_address("BWX_REDIS_URL")
}

const NOWHERE: &str = "redis://127.0.0.1:1/";

fn connect(url: &str) -> Mutex<Connection> {
    Mutex::new(
        redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .expect("connect to BWX_REDIS_URL"),
    )
}

/// Three streams `<case>:0`, `<case>:1`, `<case>:2`; each record is an entry with a field
/// `record`.
struct Streams {
    url: String,
    con: Mutex<Connection>,
    tail: bool,
}

fn stream(case: &Case, part: usize) -> String {
    format!("{}:{part}", case.name())
}

impl SourceSystem for Streams {
    type Kind = FixedKind;
    type Source = RedisStreamSource;

    fn describe(&self) -> String {
        format!("RedisStreamSource (tail {})", self.tail)
    }
    fn partitions(&self) -> usize {
        3
    }
    fn ending(&self) -> Ending {
        if self.tail { Ending::Tails } else { Ending::AtEof }
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        let mut con = self.con.lock().unwrap();
        for p in 0..3 {
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream(case, p))
                .arg("unused")
                .arg("$")
                .arg("MKSTREAM")
                .query::<()>(&mut *con)?;
        }
        Ok(())
    }
    fn append(&self, case: &Case, part: usize, records: &[u64]) -> Result<(), ConnectorError> {
        let mut pipe = redis::pipe();
        for r in records {
            pipe.cmd("XADD")
                .arg(stream(case, part))
                .arg("*")
                .arg("record")
                .arg(r)
                .ignore();
        }
        pipe.query::<()>(&mut *self.con.lock().unwrap())?;
        Ok(())
    }
    fn source(&self, case: &Case) -> Result<RedisStreamSource, ConnectorError> {
        Ok(
            RedisStreamSource::new(&self.url, (0..3).map(|p| stream(case, p)))?
                .batch_size(2)
                .poll_interval(Duration::from_millis(10))
                .tail(self.tail),
        )
    }
    fn record(&self, entry: &StreamEntry) -> Option<u64> {
        std::str::from_utf8(entry.field("record")?).ok()?.parse().ok()
    }
    fn missing(&self, case: &Case) -> Option<Result<RedisStreamSource, ConnectorError>> {
        let missing = format!("{}:missing", case.name());
        Some(RedisStreamSource::new(&self.url, [missing]).map_err(Into::into))
    }
    fn unreachable(&self, case: &Case) -> Option<Result<RedisStreamSource, ConnectorError>> {
        Some(RedisStreamSource::new(NOWHERE, [stream(case, 0)]).map_err(Into::into))
    }
}

#[test]
fn redis_stream_source_tailing_conforms() {
    let Some(url) = url() else { return };
    let con = connect(&url);
    SourceKit::new(
        Streams { url, con, tail: true },
        "redis_stream_source_tailing_conforms",
    )
    .run()
    .assert_passed();
}

#[test]
fn redis_stream_source_to_the_end_conforms() {
    let Some(url) = url() else { return };
    let con = connect(&url);
    SourceKit::new(
        Streams {
            url,
            con,
            tail: false,
        },
        "redis_stream_source_to_the_end_conforms",
    )
    .run()
    .assert_passed();
}

/// The stream `<case>` written by the sink.
struct Out {
    url: String,
    con: Mutex<Connection>,
}

type Fields = Vec<(String, String)>;

impl SinkSystem for Out {
    type Kind = DynamicKind;
    type Item = Fields;
    type Sink = RedisStreamSink<Fields>;

    fn describe(&self) -> String {
        "RedisStreamSink".into()
    }
    fn prepare(&self, _: &Case) -> Result<(), ConnectorError> {
        Ok(())
    }
    fn sink(&self, case: &Case) -> Result<Self::Sink, ConnectorError> {
        Ok(RedisStreamSink::new(&self.url, case.name())?)
    }
    fn item(&self, record: u64) -> Fields {
        vec![("record".to_string(), record.to_string())]
    }
    fn read_back(&self, case: &Case) -> Result<Vec<u64>, ConnectorError> {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(case.name())
            .arg("-")
            .arg("+")
            .query(&mut *self.con.lock().unwrap())?;
        entries
            .into_iter()
            .map(|(_, fields)| Ok(fields.first().ok_or("an entry without fields")?.1.parse()?))
            .collect()
    }
    fn unreachable(&self, case: &Case) -> Option<Result<Self::Sink, ConnectorError>> {
        Some(RedisStreamSink::new(NOWHERE, case.name()).map_err(Into::into))
    }
}

#[test]
fn redis_stream_sink_conforms() {
    let Some(url) = url() else { return };
    let con = connect(&url);
    SinkKit::new(Out { url, con }, "redis_stream_sink_conforms")
        .run()
        .assert_passed();
}
