//! [`PgError`]: what went wrong, naming the server, table, sink and partition.

/// An error of the PostgreSQL connectors. Every one names where it happened; the
/// PostgreSQL error (with the server's message, detail and hint) is its
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to PostgreSQL at {at}")]
    Connect {
        /// `host:port/dbname` (never the password).
        at: String,
        /// Why.
        #[source]
        source: postgres::Error,
    },
    /// A statement failed.
    #[error("cannot {doing} ({at})")]
    Statement {
        /// What the connector was doing.
        doing: String,
        /// `host:port/dbname`.
        at: String,
        /// Why.
        #[source]
        source: postgres::Error,
    },
    /// The connection string does not parse.
    #[error("bad PostgreSQL connection string: {0}")]
    Config(#[source] postgres::Error),
    /// A name is not a plain SQL identifier.
    #[error("{what} {name:?} is not a plain identifier (letters, digits and `_`, optionally `schema.`)")]
    BadIdentifier {
        /// What it names (a table, a column).
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The server does not allow prepared transactions, which exactly-once needs.
    #[error(
        "the exactly-once PostgreSQL sink needs prepared transactions, but max_prepared_transactions is 0 on {at}: set it (postgresql.conf) to at least twice the number of sink partitions"
    )]
    NoPreparedTransactions {
        /// `host:port/dbname`.
        at: String,
    },
    /// The table already holds epochs that the recovery state does not know of.
    #[error(
        "partition '{part}' of sink '{sink}' committed epoch {committed} (table {markers}), but its recovery state resumes after epoch {resumed}: the recovery store is older than the table (a restored backup?), and resuming would write epochs {resumed}+1..={committed} again"
    )]
    AheadOfRecovery {
        /// The sink's name.
        sink: String,
        /// The partition.
        part: String,
        /// The last epoch committed to the table.
        committed: u64,
        /// The epoch the recovery state covers.
        resumed: u64,
        /// The epochs table.
        markers: String,
    },
    /// The table lacks epochs that the recovery state says were prepared.
    #[error(
        "partition '{part}' of sink '{sink}' prepared epoch {resumed} (its recovery state says so), but table {markers} {}: the prepared transaction was lost on the server, and its rows are missing",
        last_epoch(.committed)
    )]
    BehindRecovery {
        /// The sink's name.
        sink: String,
        /// The partition.
        part: String,
        /// The last epoch committed to the table, if any.
        committed: Option<u64>,
        /// The epoch the recovery state covers.
        resumed: u64,
        /// The epochs table.
        markers: String,
    },
}

fn last_epoch(committed: &Option<u64>) -> String {
    match committed {
        Some(c) => format!("ends at epoch {c}"),
        None => "holds no epoch of it".into(),
    }
}
