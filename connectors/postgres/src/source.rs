//! [`PostgresSource`]: the rows of a table or query, read incrementally by a key column.

use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use bwx_runtime::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use bwx_runtime::{Data, StepId};
use postgres::{Client, Statement};
use serde::{Deserialize, Serialize};

use crate::conn::{Server, identifier, into_connector};
use crate::{FromRow, PgError};

/// Reads the rows of a table or a query in the order of an integer key column, resuming
/// after the last key read.
///
/// Each poll reads the next `batch_size` rows with a key greater than the last one
/// (`WHERE key > $last ORDER BY key LIMIT n`, an index range scan when the key is indexed),
/// so the key must be unique and grow with every new row (a `bigserial` or identity
/// column, or a sequence); the last key read is the partition's recovery state. With
/// [`partitions`](Self::partitions) `n`, partition `i` reads the rows whose key is `i`
/// modulo `n`, so several workers read one table.
///
/// By default the source tails the table: when it has read everything it looks for new
/// rows every [`poll_interval`](Self::poll_interval) and never ends. With `tail(false)` it
/// ends when it has read the rows that were there.
///
/// A row whose key is below one already read is never read: rows must become visible in
/// key order. A transaction that takes a key from a sequence and commits after a later one
/// breaks that; if writers do so, read from a query that lags behind (for example
/// `WHERE created < now() - interval '5 seconds'`).
///
/// A missing table or column, or an unreachable server, stops the flow before it starts,
/// naming the step.
///
/// ```no_run
/// use bwx_runtime::prelude::*;
/// use bwx_runtime::testing::TestingSink;
/// use bwx_postgres::PostgresSource;
///
/// let source = PostgresSource::<(i64, String)>::table("host=localhost dbname=shop", "orders", "id", &["id", "item"])
///     .unwrap()
///     .partitions(2)
///     .tail(false);
/// let flow = Dataflow::new("orders");
/// let out = TestingSink::new();
/// flow.input("inp", source).output("out", out.clone());
/// bwx_runtime::run_workers(&flow, 2, RunConfig::default()).unwrap();
/// ```
pub struct PostgresSource<T> {
    server: Server,
    /// The table, or the query as a subquery.
    from: String,
    label: String,
    key: String,
    columns: Vec<String>,
    parts: usize,
    batch: usize,
    tail: bool,
    poll: Duration,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for PostgresSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSource")
            .field("at", &self.server.at)
            .field("from", &self.label)
            .field("key", &self.key)
            .field("partitions", &self.parts)
            .finish()
    }
}

impl<T> PostgresSource<T> {
    /// Reads `columns` of `table` in the order of `key`.
    pub fn table(conninfo: &str, table: &str, key: &str, columns: &[&str]) -> Result<Self, PgError> {
        let table = identifier("table", table)?;
        Self::build(conninfo, table.clone(), table, key, columns)
    }

    /// Reads `columns` of the rows of `query` (any `SELECT`, used as a subquery) in the
    /// order of its column `key`; `name` names its partitions (and so its stored positions).
    pub fn query(
        conninfo: &str,
        name: &str,
        query: &str,
        key: &str,
        columns: &[&str],
    ) -> Result<Self, PgError> {
        Self::build(
            conninfo,
            format!("({query}) AS bwx_query"),
            name.to_string(),
            key,
            columns,
        )
    }

    fn build(
        conninfo: &str,
        from: String,
        label: String,
        key: &str,
        columns: &[&str],
    ) -> Result<Self, PgError> {
        Ok(PostgresSource {
            server: Server::parse(conninfo)?,
            from,
            label,
            key: identifier("key column", key)?,
            columns: columns
                .iter()
                .map(|c| identifier("column", c))
                .collect::<Result<_, _>>()?,
            parts: 1,
            batch: 1000,
            tail: true,
            poll: Duration::from_millis(500),
            _t: PhantomData,
        })
    }

    /// Splits the rows into `n` partitions by key modulo `n` (at least 1; default 1). Keep
    /// it when resuming: a partition's rows depend on it.
    pub fn partitions(mut self, n: usize) -> Self {
        self.parts = n.max(1);
        self
    }

    /// Rows read per poll (at least 1; default 1000).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Whether to keep looking for new rows (default) or end after the last one.
    pub fn tail(mut self, tail: bool) -> Self {
        self.tail = tail;
        self
    }

    /// How long a tailing partition waits after it found no new rows (default 500 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll = interval;
        self
    }

    /// The statements of partition `i`: from the start, and after a key.
    fn statements(&self, client: &mut Client, i: usize) -> Result<(Statement, Statement), PgError> {
        let columns: String = self.columns.iter().map(|c| format!(", {c}")).collect();
        let key = &self.key;
        let part = if self.parts > 1 {
            let n = self.parts;
            format!("(({key}::bigint % {n}) + {n}) % {n} = {i}")
        } else {
            "true".into()
        };
        let select = |lower: &str| {
            format!(
                "SELECT {key}::bigint{columns} FROM {} WHERE {lower}{part} ORDER BY {key} LIMIT {}",
                self.from, self.batch
            )
        };
        let doing = format!("read {} by {key}", self.label);
        let first = client
            .prepare(&select(""))
            .map_err(self.server.failed(doing.clone()))?;
        let next = client
            .prepare(&select(&format!("{key} > $1::bigint AND ")))
            .map_err(self.server.failed(doing))?;
        Ok((first, next))
    }
}

/// A partition's recovery state: the last key read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresSourceState {
    /// The key of the last row read, if any.
    pub after: Option<i64>,
}

impl<T: FromRow + Data> FixedPartitionedSource for PostgresSource<T> {
    type Item = T;
    type State = PostgresSourceState;
    type Partition = PostgresSourcePartition<T>;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        // A wrong address, table, key or column stops the flow before it starts.
        let mut client = self.server.connect().map_err(into_connector)?;
        self.statements(&mut client, 0).map_err(into_connector)?;
        Ok((0..self.parts).map(|i| format!("{}#{i}", self.label)).collect())
    }

    fn build_part(
        &self,
        _: &StepId,
        for_part: &str,
        resume: Option<PostgresSourceState>,
    ) -> Result<PostgresSourcePartition<T>, ConnectorError> {
        let index: usize = for_part
            .rsplit_once('#')
            .and_then(|(_, i)| i.parse().ok())
            .filter(|i| *i < self.parts)
            .ok_or_else(|| {
                format!(
                    "{for_part:?} is not a partition of this source ({} partitions)",
                    self.parts
                )
            })?;
        let mut client = self.server.connect().map_err(into_connector)?;
        let (first, next) = self.statements(&mut client, index).map_err(into_connector)?;
        Ok(PostgresSourcePartition {
            client,
            server: self.server.clone(),
            label: for_part.to_string(),
            first,
            next,
            state: resume.unwrap_or_default(),
            batch: self.batch,
            tail: self.tail,
            poll: self.poll,
            awake: None,
            _t: PhantomData,
        })
    }
}

/// One partition of a [`PostgresSource`].
pub struct PostgresSourcePartition<T> {
    client: Client,
    server: Server,
    label: String,
    first: Statement,
    next: Statement,
    state: PostgresSourceState,
    batch: usize,
    tail: bool,
    poll: Duration,
    awake: Option<SystemTime>,
    _t: PhantomData<fn() -> T>,
}

impl<T: FromRow> PostgresSourcePartition<T> {
    fn read(&mut self, batch: &mut Vec<T>) -> Result<BatchStatus, PgError> {
        let doing = || format!("read partition {}", self.label);
        let rows = match self.state.after {
            None => self.client.query(&self.first, &[]),
            Some(after) => self.client.query(&self.next, &[&after]),
        }
        .map_err(self.server.failed(doing()))?;
        for row in &rows {
            let key: i64 = row.try_get(0).map_err(self.server.failed(doing()))?;
            batch.push(T::from_row(row, 1).map_err(self.server.failed(doing()))?);
            self.state.after = Some(key);
        }
        if rows.len() == self.batch {
            self.awake = None;
            return Ok(BatchStatus::Active);
        }
        if !self.tail {
            return Ok(BatchStatus::Eof);
        }
        self.awake = Some(SystemTime::now() + self.poll);
        Ok(BatchStatus::Active)
    }
}

impl<T: FromRow + 'static> StatefulSourcePartition for PostgresSourcePartition<T> {
    type Item = T;
    type State = PostgresSourceState;

    fn next_batch(&mut self, batch: &mut Vec<T>) -> Result<BatchStatus, ConnectorError> {
        self.read(batch).map_err(into_connector)
    }

    fn next_awake(&self) -> Option<SystemTime> {
        self.awake
    }

    fn snapshot(&self) -> PostgresSourceState {
        self.state
    }
}
