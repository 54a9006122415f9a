//! The PostgreSQL connectors on the conformance kit, against a real server.
//!
//! They run when `BWX_POSTGRES_URL` is a libpq connection string (as `.ci/run` sets it; by
//! hand: `scripts/servers.sh start && eval "$(scripts/servers.sh env)"`), and otherwise
//! skip, saying so, unless `BWX_REQUIRE_SERVERS` is set (as `.ci/run` sets it): then they
//! fail. The server needs `max_prepared_transactions` > 0.

use std::sync::Mutex;
use std::time::Duration;

use bwx_postgres::postgres::{Client, NoTls};
use bwx_postgres::{PostgresSink, PostgresSource};
use bwx_runtime::inputs::ConnectorError;
use bwx_runtime::operators::FixedKind;
use bwx_runtime::testing::conformance::{
    Case, Ending, SinkKit, SinkSystem, SourceKit, SourceSystem, record_seq,
};

fn url() -> Option<String> {
    bwx_runtime::testing::conformance::server_address("BWX_POSTGRES_URL")
}

/// Nothing listens on port 1.
const NOWHERE: &str = "host=127.0.0.1 port=1 user=bwx dbname=postgres connect_timeout=3";

/// A table `<case>(id bigint primary key, record bigint)`; partition `p` of 3 holds the
/// ids `p` modulo 3.
struct Table {
    url: String,
    client: Mutex<Client>,
    tail: bool,
}

impl Table {
    fn new(url: String, tail: bool) -> Table {
        let client = Mutex::new(Client::connect(&url, NoTls).expect("connect to BWX_POSTGRES_URL"));
        Table { url, client, tail }
    }
}

impl SourceSystem for Table {
    type Kind = FixedKind;
    type Source = PostgresSource<(i64,)>;

    fn describe(&self) -> String {
        format!("PostgresSource (tail {})", self.tail)
    }
    fn partitions(&self) -> usize {
        3
    }
    fn ending(&self) -> Ending {
        if self.tail { Ending::Tails } else { Ending::AtEof }
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        let create = format!(
            "CREATE TABLE {} (id bigint PRIMARY KEY, record bigint NOT NULL)",
            case.name()
        );
        self.client.lock().unwrap().batch_execute(&create)?;
        Ok(())
    }
    fn append(&self, case: &Case, part: usize, records: &[u64]) -> Result<(), ConnectorError> {
        let values: Vec<String> = records
            .iter()
            .map(|&r| format!("({}, {r})", record_seq(r) as usize * 3 + part))
            .collect();
        let insert = format!(
            "INSERT INTO {} (id, record) VALUES {}",
            case.name(),
            values.join(", ")
        );
        self.client.lock().unwrap().batch_execute(&insert)?;
        Ok(())
    }
    fn source(&self, case: &Case) -> Result<Self::Source, ConnectorError> {
        Ok(PostgresSource::table(&self.url, case.name(), "id", &["record"])?
            .partitions(3)
            .batch_size(2)
            .poll_interval(Duration::from_millis(20))
            .tail(self.tail))
    }
    fn record(&self, item: &(i64,)) -> Option<u64> {
        u64::try_from(item.0).ok()
    }
    fn missing(&self, case: &Case) -> Option<Result<Self::Source, ConnectorError>> {
        let table = format!("{}_missing", case.name());
        Some(PostgresSource::table(&self.url, &table, "id", &["record"]).map_err(Into::into))
    }
    fn unreachable(&self, case: &Case) -> Option<Result<Self::Source, ConnectorError>> {
        Some(PostgresSource::table(NOWHERE, case.name(), "id", &["record"]).map_err(Into::into))
    }
}

#[test]
fn postgres_source_tailing_conforms() {
    let Some(url) = url() else { return };
    SourceKit::new(Table::new(url, true), "postgres_source_tailing_conforms")
        .run()
        .assert_passed();
}

#[test]
fn postgres_source_to_the_end_conforms() {
    let Some(url) = url() else { return };
    SourceKit::new(Table::new(url, false), "postgres_source_to_the_end_conforms")
        .run()
        .assert_passed();
}

/// A table `<case>(record bigint)` written by the sink.
struct Rows {
    url: String,
    client: Mutex<Client>,
}

impl SinkSystem for Rows {
    type Kind = FixedKind;
    type Item = (u64, (i64,));
    type Sink = PostgresSink<u64, (i64,)>;

    fn describe(&self) -> String {
        "PostgresSink".into()
    }
    fn prepare(&self, case: &Case) -> Result<(), ConnectorError> {
        let create = format!("CREATE TABLE {} (record bigint NOT NULL)", case.name());
        self.client.lock().unwrap().batch_execute(&create)?;
        Ok(())
    }
    fn sink(&self, case: &Case) -> Result<Self::Sink, ConnectorError> {
        Ok(PostgresSink::new(&self.url, case.name(), &["record"])?
            .slots(3)
            .name(case.name()))
    }
    fn item(&self, record: u64) -> (u64, (i64,)) {
        (record % 7, (record as i64,))
    }
    fn read_back(&self, case: &Case) -> Result<Vec<u64>, ConnectorError> {
        let rows = self
            .client
            .lock()
            .unwrap()
            .query(&format!("SELECT record FROM {}", case.name()), &[])?;
        Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
    }
    fn missing(&self, case: &Case) -> Option<Result<Self::Sink, ConnectorError>> {
        let table = format!("{}_missing", case.name());
        Some(PostgresSink::new(&self.url, &table, &["record"]).map_err(Into::into))
    }
    fn unreachable(&self, case: &Case) -> Option<Result<Self::Sink, ConnectorError>> {
        Some(PostgresSink::new(NOWHERE, case.name(), &["record"]).map_err(Into::into))
    }
}

#[test]
fn postgres_sink_conforms() {
    let Some(url) = url() else { return };
    let client = Mutex::new(Client::connect(&url, NoTls).expect("connect to BWX_POSTGRES_URL"));
    SinkKit::new(Rows { url, client }, "postgres_sink_conforms")
        .run()
        .assert_passed();
}
