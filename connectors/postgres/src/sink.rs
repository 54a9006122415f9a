//! [`PostgresSink`]: each epoch's rows in one transaction, prepared when the epoch closes
//! and committed once it is durable: exactly-once.

use std::collections::VecDeque;
use std::marker::PhantomData;

use bwx_runtime::inputs::ConnectorError;
use bwx_runtime::outputs::{Delivery, FixedPartitionedSink, StatefulSinkPartition};
use bwx_runtime::{ExchangeData, Key, StepId};
use postgres::Client;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use serde::{Deserialize, Serialize};

use crate::conn::{Server, identifier, into_connector};
use crate::{PgError, ToRow};

/// The table of committed epochs unless [`PostgresSink::epochs_table`] says otherwise.
pub const DEFAULT_EPOCHS_TABLE: &str = "bwx_sink_epochs";

/// Writes the values of a keyed stream as rows of a table, exactly once across failures
/// and resumes.
///
/// The sink has `slots` partitions (`slot-0`, `slot-1`, ...; 2 unless told), each with a
/// connection of its own; a key always goes to the same slot. Each epoch's rows of a slot
/// are one transaction, written with binary `COPY`:
///
/// 1. while the epoch is open, its rows are copied into the slot's open transaction;
/// 2. when the epoch closes (`pre_commit`), the transaction also records the epoch in the
///    epochs table (`bwx_sink_epochs(sink, part, epoch)`) and is prepared (`PREPARE
///    TRANSACTION 'bwx:<sink>:<slot>:<epoch>'`): durable on the server, invisible to readers;
/// 3. once the epoch is durable in every recovery partition (`commit`), it is committed
///    (`COMMIT PREPARED`), rows and epoch together.
///
/// A resumed slot commits the prepared transactions of the epochs its recovery state
/// covers and rolls back the later ones, which the resumed flow writes again; then the
/// epochs table says what the table holds, and a recovery state that disagrees (a restored
/// backup older than the table) is refused with an error instead of writing rows twice.
/// Without recovery each epoch is committed as soon as it is prepared.
///
/// The server must allow prepared transactions: `max_prepared_transactions` at least twice
/// the number of slots (it is 0 by default; the sink says so when it is). A slot holds at
/// most a few prepared transactions at a time, each for the moment between an epoch's close
/// and its durability; a flow abandoned for good leaves its last ones prepared until a run
/// resumes it, or until they are rolled back by hand (`pg_prepared_xacts`).
///
/// ```no_run
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::testing::TestingSource;
/// use bwx_postgres::PostgresSink;
///
/// let sink = PostgresSink::new("host=localhost user=app dbname=shop", "totals", &["item", "total"])
///     .unwrap()
///     .slots(4);
/// let flow = Dataflow::new("totals");
/// flow.input("inp", TestingSource::new(vec![("apple".to_string(), 3i64), ("pear".to_string(), 5)]))
///     .map("row", |(item, n): (String, i64)| (item.clone(), (item, n)))
///     .output("out", sink);
/// bwx_runtime::run_main(&flow).unwrap();
/// ```
pub struct PostgresSink<K, V> {
    server: Server,
    table: String,
    columns: Vec<String>,
    slots: usize,
    name: Option<String>,
    epochs: String,
    _kv: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for PostgresSink<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("at", &self.server.at)
            .field("table", &self.table)
            .field("columns", &self.columns)
            .field("slots", &self.slots)
            .finish()
    }
}

impl<K, V> PostgresSink<K, V> {
    /// Writes to `columns` of `table` on the server of `conninfo` (a libpq connection
    /// string, `host=... user=... dbname=...`). Fails if a name is not a plain identifier
    /// or the connection string does not parse; the table is checked when the flow starts.
    pub fn new(conninfo: &str, table: &str, columns: &[&str]) -> Result<Self, PgError> {
        let table = identifier("table", table)?;
        let columns = columns
            .iter()
            .map(|c| identifier("column", c))
            .collect::<Result<Vec<_>, _>>()?;
        if columns.is_empty() {
            return Err(PgError::BadIdentifier {
                what: "column list",
                name: String::new(),
            });
        }
        Ok(PostgresSink {
            server: Server::parse(conninfo)?,
            table,
            columns,
            slots: 2,
            name: None,
            epochs: DEFAULT_EPOCHS_TABLE.to_string(),
            _kv: PhantomData,
        })
    }

    /// How many partitions (connections and transactions) write in parallel (at least 1).
    /// Keep it when resuming: a slot's key range depends on it.
    pub fn slots(mut self, slots: usize) -> Self {
        self.slots = slots.max(1);
        self
    }

    /// The name the sink's epochs and prepared transactions go by: `<step id>/<table>`
    /// unless told. Two flows with the same step id writing one table need different names.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Keeps the committed epochs in another table (created if missing).
    pub fn epochs_table(mut self, table: &str) -> Result<Self, PgError> {
        self.epochs = identifier("table", table)?;
        Ok(self)
    }

    /// Connects and checks that the columns exist; their types, for the binary copy.
    fn column_types(&self, client: &mut Client) -> Result<Vec<Type>, PgError> {
        let probe = format!("SELECT {} FROM {} LIMIT 0", self.columns.join(", "), self.table);
        let statement = client.prepare(&probe).map_err(
            self.server
                .failed(format!("read the columns of table {}", self.table)),
        )?;
        Ok(statement.columns().iter().map(|c| c.type_().clone()).collect())
    }
}

/// A slot's recovery state: the last epoch it prepared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresSinkState {
    /// The last epoch whose rows this slot prepared, if any.
    pub prepared_through: Option<u64>,
}

impl<K: Key, V: ToRow + ExchangeData> FixedPartitionedSink for PostgresSink<K, V> {
    type Key = K;
    type Value = V;
    type State = PostgresSinkState;
    type Partition = PostgresSinkPartition<V>;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        // A wrong address or a missing table stops the flow before it starts.
        let mut client = self.server.connect().map_err(into_connector)?;
        self.column_types(&mut client).map_err(into_connector)?;
        Ok((0..self.slots).map(|i| format!("slot-{i}")).collect())
    }

    fn build_part(
        &self,
        step_id: &StepId,
        for_part: &str,
        resume: Option<PostgresSinkState>,
    ) -> Result<PostgresSinkPartition<V>, ConnectorError> {
        let sink = self
            .name
            .clone()
            .unwrap_or_else(|| format!("{step_id}/{}", self.table));
        PostgresSinkPartition::open(self, sink, for_part, resume.unwrap_or_default()).map_err(into_connector)
    }

    fn delivery(&self) -> Delivery {
        Delivery::ExactlyOnce
    }
}

/// One slot of a [`PostgresSink`]: a connection and its epoch's transaction.
pub struct PostgresSinkPartition<V> {
    client: Client,
    /// A second connection for commits while a transaction is open on the first.
    committer: Option<Client>,
    server: Server,
    copy: String,
    types: Vec<Type>,
    sink: String,
    part: String,
    epochs: String,
    /// A transaction is open with rows of the current epoch.
    open: bool,
    /// Epochs prepared and not committed, oldest first.
    prepared: VecDeque<u64>,
    state: PostgresSinkState,
    _v: PhantomData<fn(V)>,
}

impl<V> PostgresSinkPartition<V> {
    fn open<K>(
        sink_cfg: &PostgresSink<K, V>,
        sink: String,
        part: &str,
        state: PostgresSinkState,
    ) -> Result<Self, PgError> {
        let server = sink_cfg.server.clone();
        let mut client = server.connect()?;
        let allowed = client
            .query_one("SELECT current_setting('max_prepared_transactions')::int", &[])
            .map_err(server.failed("read max_prepared_transactions"))?
            .get::<_, i32>(0);
        if allowed == 0 {
            return Err(PgError::NoPreparedTransactions { at: server.at });
        }
        let types = sink_cfg.column_types(&mut client)?;
        create_epochs_table(&mut client, &server, &sink_cfg.epochs)?;
        let mut part = PostgresSinkPartition {
            client,
            committer: None,
            copy: format!(
                "COPY {} ({}) FROM STDIN BINARY",
                sink_cfg.table,
                sink_cfg.columns.join(", ")
            ),
            types,
            sink,
            part: part.to_string(),
            epochs: sink_cfg.epochs.clone(),
            open: false,
            prepared: VecDeque::new(),
            state,
            server,
            _v: PhantomData,
        };
        part.recover()?;
        Ok(part)
    }

    fn gid_prefix(&self) -> String {
        format!("bwx:{}:{}:", self.sink, self.part)
    }

    fn gid(&self, epoch: u64) -> String {
        gid(&self.sink, &self.part, epoch)
    }

    /// Finishes what a previous execution left prepared: commits the epochs the recovery
    /// state covers, rolls back the others, and checks the epochs table against the state.
    fn recover(&mut self) -> Result<(), PgError> {
        let prefix = self.gid_prefix();
        let rows = self
            .client
            .query(
                "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
                &[],
            )
            .map_err(self.server.failed("list the prepared transactions"))?;
        let mut left: Vec<u64> = rows
            .iter()
            .filter_map(|r| r.get::<_, String>(0).strip_prefix(&prefix)?.parse().ok())
            .collect();
        left.sort_unstable();
        for epoch in left {
            let covered = self.state.prepared_through.is_some_and(|s| epoch <= s);
            let (verb, doing) = if covered {
                ("COMMIT", "commit")
            } else {
                ("ROLLBACK", "roll back")
            };
            let gid = self.gid(epoch);
            self.client
                .batch_execute(&format!("{verb} PREPARED '{gid}'"))
                .map_err(
                    self.server
                        .failed(format!("{doing} the prepared transaction {gid}")),
                )?;
        }
        let committed: Option<i64> = self
            .client
            .query_one(
                &format!(
                    "SELECT max(epoch) FROM {} WHERE sink = $1 AND part = $2",
                    self.epochs
                ),
                &[&self.sink, &self.part],
            )
            .map_err(self.server.failed(format!("read table {}", self.epochs)))?
            .get(0);
        let committed = committed.map(|c| c as u64);
        if let Some(resumed) = self.state.prepared_through {
            match committed {
                Some(c) if c > resumed => {
                    return Err(PgError::AheadOfRecovery {
                        sink: self.sink.clone(),
                        part: self.part.clone(),
                        committed: c,
                        resumed,
                        markers: self.epochs.clone(),
                    });
                }
                Some(c) if c == resumed => {}
                _ => {
                    return Err(PgError::BehindRecovery {
                        sink: self.sink.clone(),
                        part: self.part.clone(),
                        committed,
                        resumed,
                        markers: self.epochs.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, values: &mut Vec<V>) -> Result<(), PgError>
    where
        V: ToRow,
    {
        if values.is_empty() {
            return Ok(());
        }
        if !self.open {
            self.client
                .batch_execute("BEGIN")
                .map_err(self.server.failed("begin a transaction"))?;
            self.open = true;
        }
        let server = &self.server;
        let writer = self
            .client
            .copy_in(&self.copy)
            .map_err(server.failed(format!("start `{}`", self.copy)))?;
        let mut rows = BinaryCopyInWriter::new(writer, &self.types);
        for value in values.drain(..) {
            value
                .with_values(|fields| rows.write(fields))
                .map_err(server.failed(format!("write a row with `{}`", self.copy)))?;
        }
        rows.finish()
            .map_err(server.failed(format!("finish `{}`", self.copy)))?;
        Ok(())
    }

    fn prepare(&mut self, epoch: u64) -> Result<(), PgError> {
        if !self.open {
            return Ok(());
        }
        let record = format!(
            "INSERT INTO {} (sink, part, epoch) VALUES ($1, $2, $3)",
            self.epochs
        );
        self.client
            .execute(&record, &[&self.sink, &self.part, &(epoch as i64)])
            .map_err(
                self.server
                    .failed(format!("record epoch {epoch} in {}", self.epochs)),
            )?;
        let gid = self.gid(epoch);
        self.client
            .batch_execute(&format!("PREPARE TRANSACTION '{gid}'"))
            .map_err(
                self.server
                    .failed(format!("prepare the transaction of epoch {epoch}")),
            )?;
        self.open = false;
        self.prepared.push_back(epoch);
        self.state.prepared_through = Some(epoch);
        Ok(())
    }

    fn commit_through(&mut self, epoch: u64) -> Result<(), PgError> {
        if self.prepared.front().is_none_or(|&e| e > epoch) {
            return Ok(());
        }
        // `COMMIT PREPARED` runs outside a transaction block: while the next epoch's
        // transaction is open on the slot's connection, it goes through a second one.
        let client = if self.open {
            if self.committer.is_none() {
                self.committer = Some(self.server.connect()?);
            }
            self.committer.as_mut().unwrap_or(&mut self.client)
        } else {
            &mut self.client
        };
        let mut last = None;
        while let Some(&e) = self.prepared.front()
            && e <= epoch
        {
            let gid = gid(&self.sink, &self.part, e);
            client
                .batch_execute(&format!("COMMIT PREPARED '{gid}'"))
                .map_err(self.server.failed(format!("commit the transaction of epoch {e}")))?;
            self.prepared.pop_front();
            last = Some(e);
        }
        if let Some(e) = last {
            // Only the last committed epoch of a slot is needed to resume.
            let forget = format!(
                "DELETE FROM {} WHERE sink = $1 AND part = $2 AND epoch < $3",
                self.epochs
            );
            client
                .execute(&forget, &[&self.sink, &self.part, &(e as i64)])
                .map_err(self.server.failed(format!("trim {}", self.epochs)))?;
        }
        Ok(())
    }
}

/// The id of the prepared transaction of `epoch`, quoted for a string literal.
fn gid(sink: &str, part: &str, epoch: u64) -> String {
    format!("bwx:{sink}:{part}:{epoch}").replace('\'', "''")
}

/// Creates the epochs table if it is missing; several slots may try at once.
fn create_epochs_table(client: &mut Client, server: &Server, table: &str) -> Result<(), PgError> {
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {table} (sink text NOT NULL, part text NOT NULL, epoch bigint NOT NULL, PRIMARY KEY (sink, part, epoch))"
    );
    match client.batch_execute(&create) {
        Ok(()) => Ok(()),
        // Another slot created it at the same moment (unique_violation on the catalog).
        Err(e)
            if e.code()
                .is_some_and(|c| c.code() == "23505" || c.code() == "42P07") =>
        {
            Ok(())
        }
        Err(e) => Err(server.failed(format!("create table {table}"))(e)),
    }
}

impl<V: ToRow + 'static> StatefulSinkPartition for PostgresSinkPartition<V> {
    type Value = V;
    type State = PostgresSinkState;

    fn write_batch(&mut self, values: &mut Vec<V>) -> Result<(), ConnectorError> {
        self.write(values).map_err(into_connector)
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        self.prepare(epoch).map_err(into_connector)
    }

    fn snapshot(&self) -> PostgresSinkState {
        self.state
    }

    fn commit(&mut self, epoch: u64) -> Result<(), ConnectorError> {
        self.commit_through(epoch).map_err(into_connector)
    }
}
