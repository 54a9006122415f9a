//! PostgreSQL for bwx: [`PostgresSink`] writes each epoch's rows in one transaction,
//! exactly once across failures; [`PostgresSource`] reads a table or a query incrementally
//! by an integer key column, resumable from the last key read.
//!
//! | connector | kind | partitions | recovery state | delivery |
//! | --- | --- | --- | --- | --- |
//! | [`PostgresSink`] | fixed-partitioned sink of `(key, row)` | `slot-<i>`, by key | the last epoch prepared | exactly-once: one prepared transaction per epoch and slot, committed with the epoch in `bwx_sink_epochs` |
//! | [`PostgresSource`] | fixed-partitioned source of rows | `<table>#<i>`, key modulo n | the last key read | exactly-once (position in the snapshot) |
//!
//! Rows are tuples of up to 8 fields (or your own types, with [`ToRow`] and [`FromRow`]);
//! the client is the `postgres` crate (rust-postgres) over plain TCP. Both connectors pass
//! the conformance kit (`bwx::testing::conformance`) against a real server: see
//! `tests/conformance.rs`, which reads the server from `BWX_POSTGRES_URL` (a libpq
//! connection string; `scripts/servers.sh` starts one).
//!
//! ```no_run
//! use bwx_runtime::prelude::*;
//! use bwx_postgres::{PostgresSink, PostgresSource};
//!
//! let url = "host=localhost user=app dbname=shop";
//! // Copy new orders into a table of totals per item, exactly once.
//! let orders = PostgresSource::<(String, i64)>::table(url, "orders", "id", &["item", "quantity"]).unwrap();
//! let totals = PostgresSink::new(url, "order_lines", &["item", "quantity"]).unwrap();
//! let flow = Dataflow::new("copy");
//! flow.input("orders", orders)
//!     .map("key", |(item, n): (String, i64)| (item.clone(), (item, n)))
//!     .output("lines", totals);
//! ```

mod conn;
mod error;
mod row;
mod sink;
mod source;

pub use error::PgError;
pub use row::{FromRow, ToRow};
pub use sink::{DEFAULT_EPOCHS_TABLE, PostgresSink, PostgresSinkPartition, PostgresSinkState};
pub use source::{PostgresSource, PostgresSourcePartition, PostgresSourceState};

/// The `postgres` crate this one is built on, for its types (`ToSql`, `FromSql`, `Row`).
pub use postgres;
