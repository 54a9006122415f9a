//! The on-disk store: a directory of SQLite partition files `part-N.sqlite3`.
//!
//! Each partition file holds:
//! - `meta(name, value)`: `format_version` and, once a flow has written to it, `flow_id`;
//! - `parts(part_index, part_count)`: which partition of which set this file is;
//! - `exs(ex_num, worker_count, resume_epoch)`: the executions that wrote to it;
//! - `fronts(ex_num, worker_index, worker_frontier)`: per worker, the first epoch whose
//!   snapshots it has not yet made durable (written to partition `worker % part_count`);
//! - `commits(part_index, commit_epoch)`: the GC point: superseded snapshots older than it
//!   are gone, so no execution may resume before it;
//! - `snaps(step_id, state_key, snap_epoch, ser_change, checksum)`: the state of a key at
//!   the close of an epoch, `NULL` when the key's state was discarded.
//!
//! Snapshots go to partition `partition_of(step, key) % part_count`, a stable hash. Every
//! worker opens every partition file it writes to; SQLite's WAL mode serialises writers from
//! threads and processes of one host. Workers on several hosts need the directory on
//! storage they all reach (as in Bytewax), with working POSIX locks.

mod file;
mod schema;

pub(crate) use file::{
    PartIdentity, check_set, create_dir, create_partition, list_partitions, open_partition, part_path,
    quick_check, sql_err,
};
pub(crate) use schema::{checksum, partition_of};
