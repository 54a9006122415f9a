//! What the PostgreSQL sink does with the transactions a stopped execution left prepared,
//! and what the source does with a query; against a real server (`BWX_POSTGRES_URL`, see
//! `tests/conformance.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};

use bwx_postgres::postgres::{Client, NoTls};
use bwx_postgres::{PgError, PostgresSink, PostgresSinkPartition, PostgresSource};
use bwx_runtime::StepId;
use bwx_runtime::outputs::{FixedPartitionedSink, StatefulSinkPartition};
use bwx_runtime::prelude::*;
use bwx_runtime::testing::{MemoryStore, TestingSink};

fn url() -> Option<String> {
    bwx_runtime::testing::conformance::server_address("BWX_POSTGRES_URL")
}

/// A fresh table `(record bigint)` named after the test.
fn table(client: &mut Client, test: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "rec_{test}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    client
        .batch_execute(&format!("CREATE TABLE {name} (record bigint NOT NULL)"))
        .unwrap();
    name
}

fn records(client: &mut Client, table: &str) -> Vec<i64> {
    let mut out: Vec<i64> = client
        .query(&format!("SELECT record FROM {table}"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    out.sort_unstable();
    out
}

fn prepared(client: &mut Client, table: &str) -> usize {
    client
        .query("SELECT gid FROM pg_prepared_xacts", &[])
        .unwrap()
        .iter()
        .filter(|r| r.get::<_, String>(0).contains(table))
        .count()
}

/// The step id partitions are opened for (it names the sink's prepared transactions).
fn step() -> StepId {
    serde_json::from_str("\"f.out\"").unwrap()
}

fn open(
    sink: &PostgresSink<u64, (i64,)>,
    state: Option<bwx_postgres::PostgresSinkState>,
) -> PostgresSinkPartition<(i64,)> {
    sink.build_part(&step(), "slot-0", state)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn write(part: &mut PostgresSinkPartition<(i64,)>, values: &[i64]) {
    let mut batch: Vec<(i64,)> = values.iter().map(|v| (*v,)).collect();
    part.write_batch(&mut batch).unwrap();
}

#[test]
fn an_epoch_durable_but_not_committed_is_committed_by_the_resumed_slot() {
    let Some(url) = url() else { return };
    let mut client = Client::connect(&url, NoTls).unwrap();
    let table = table(&mut client, "durable");
    let sink = PostgresSink::<u64, (i64,)>::new(&url, &table, &["record"])
        .unwrap()
        .slots(1);
    let mut part = open(&sink, None);
    write(&mut part, &[1, 2]);
    part.pre_commit(1).unwrap();
    let durable = part.snapshot();
    // The process dies after the epoch became durable, before `commit(1)`.
    drop(part);
    assert_eq!(
        records(&mut client, &table),
        Vec::<i64>::new(),
        "a prepared epoch is invisible"
    );
    assert_eq!(prepared(&mut client, &table), 1);
    let mut resumed = open(&sink, Some(durable));
    assert_eq!(records(&mut client, &table), vec![1, 2]);
    assert_eq!(prepared(&mut client, &table), 0);
    write(&mut resumed, &[3]);
    resumed.pre_commit(2).unwrap();
    resumed.commit(2).unwrap();
    assert_eq!(records(&mut client, &table), vec![1, 2, 3]);
}

#[test]
fn epochs_prepared_after_the_durable_one_are_rolled_back() {
    let Some(url) = url() else { return };
    let mut client = Client::connect(&url, NoTls).unwrap();
    let table = table(&mut client, "rollback");
    let sink = PostgresSink::<u64, (i64,)>::new(&url, &table, &["record"])
        .unwrap()
        .slots(1);
    let mut part = open(&sink, None);
    write(&mut part, &[1]);
    part.pre_commit(1).unwrap();
    let durable = part.snapshot();
    // Epoch 2 is prepared while epoch 1 is still waiting for its commit: the commit of
    // epoch 1 then goes through the slot's second connection.
    write(&mut part, &[2]);
    part.commit(1).unwrap();
    part.pre_commit(2).unwrap();
    write(&mut part, &[3]);
    drop(part);
    assert_eq!(records(&mut client, &table), vec![1]);
    assert_eq!(prepared(&mut client, &table), 1, "epoch 2 stays prepared");
    // Epoch 2 never became durable: it is rolled back, and the resumed flow writes it again.
    let _resumed = open(&sink, Some(durable));
    assert_eq!(records(&mut client, &table), vec![1]);
    assert_eq!(prepared(&mut client, &table), 0);
}

#[test]
fn a_recovery_state_older_than_the_table_is_refused() {
    let Some(url) = url() else { return };
    let mut client = Client::connect(&url, NoTls).unwrap();
    let table = table(&mut client, "older");
    let sink = PostgresSink::<u64, (i64,)>::new(&url, &table, &["record"])
        .unwrap()
        .slots(1);
    let mut part = open(&sink, None);
    write(&mut part, &[1]);
    part.pre_commit(1).unwrap();
    let old = part.snapshot();
    part.commit(1).unwrap();
    write(&mut part, &[2]);
    part.pre_commit(2).unwrap();
    part.commit(2).unwrap();
    drop(part);
    // A backup of the recovery store from before epoch 2 was restored.
    let err = match sink.build_part(&step(), "slot-0", Some(old)) {
        Ok(_) => panic!("resumed from a state older than the table"),
        Err(e) => e,
    };
    let pg = err.downcast_ref::<PgError>().expect("a PgError");
    assert!(
        matches!(
            pg,
            PgError::AheadOfRecovery {
                committed: 2,
                resumed: 1,
                ..
            }
        ),
        "{pg}"
    );
    assert!(
        pg.to_string().contains("would write epochs 1+1..=2 again"),
        "{pg}"
    );
    assert_eq!(records(&mut client, &table), vec![1, 2]);
}

#[test]
fn a_query_is_read_incrementally_and_resumes_after_its_last_key() {
    let Some(url) = url() else { return };
    let mut client = Client::connect(&url, NoTls).unwrap();
    let t = table(&mut client, "query");
    client
        .batch_execute(&format!(
            "ALTER TABLE {t} ADD COLUMN id bigserial PRIMARY KEY; INSERT INTO {t} (record) SELECT g FROM generate_series(1, 10) g"
        ))
        .unwrap();
    let run = |store| {
        let query = format!("SELECT id, record * 10 AS tens FROM {t} WHERE record % 2 = 0");
        let source = PostgresSource::<(i64,)>::query(&url, "evens", &query, "id", &["tens"])
            .unwrap()
            .batch_size(2)
            .tail(false);
        let flow = Dataflow::new("q");
        let out = TestingSink::new();
        flow.input("inp", source)
            .map("v", |(v,)| v)
            .output("out", out.clone());
        bwx_runtime::run_main_with(&flow, RunConfig::default().recovery(store)).unwrap();
        out.take()
    };
    let store = MemoryStore::new(1);
    assert_eq!(run(store.clone()), vec![20, 40, 60, 80, 100]);
    client
        .batch_execute(&format!(
            "INSERT INTO {t} (record) SELECT g FROM generate_series(11, 14) g"
        ))
        .unwrap();
    assert_eq!(run(store.resume()), vec![120, 140]);
}

#[test]
fn a_missing_key_column_names_it() {
    let Some(url) = url() else { return };
    let mut client = Client::connect(&url, NoTls).unwrap();
    let t = table(&mut client, "nokey");
    let flow = Dataflow::new("q");
    let source = PostgresSource::<(i64,)>::table(&url, &t, "no_such_key", &["record"]).unwrap();
    flow.input("inp", source).output("out", TestingSink::new());
    let err = bwx_runtime::run_main(&flow).unwrap_err().report();
    assert!(err.starts_with("step 'q.inp'"), "{err}");
    assert!(err.contains("column \"no_such_key\" does not exist"), "{err}");
}
