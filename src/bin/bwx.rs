//! The `bwx` tool: work with recovery directories when there is no flow binary at hand.
//!
//! ```text
//! bwx recovery init DIR N             create DIR (0700) and N partitions (0600)
//! bwx recovery init DIR N --parts 0,2 --store-id ID
//!                                     create partitions 0 and 2 of N, for a host that keeps
//!                                     its own (every host: the same ID)
//! bwx recovery store-id [DIR]         print a new store id, or the one of DIR's partitions
//! bwx recovery inspect DIR [--json]   executions, worker counts, frontiers, steps, key counts
//! bwx recovery inspect DIR --step S --key K [--json]   one key's decoded state
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bwx::recovery::{init_dir, init_parts, inspect, new_store_id, parse_parts, store_id_of};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bwx", version, about = "bwx tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Recovery directories.
    #[command(subcommand)]
    Recovery(Recovery),
}

#[derive(Subcommand)]
enum Recovery {
    /// Creates DIR if needed and N recovery partitions in it (or the ones --parts lists).
    Init {
        /// The recovery directory.
        dir: PathBuf,
        /// How many partitions the set has (at least the most workers you expect to run with).
        count: usize,
        /// Create only these partitions of the set, for a host that keeps its own on its own
        /// disk: indexes and ranges such as `0,2` or `0-3`. Needs --store-id.
        #[arg(long, value_parser = parse_part_list, requires = "store_id")]
        parts: Option<PartList>,
        /// The id of the store, the same on every host (see `store-id`). Without it, a new
        /// store gets a fresh id.
        #[arg(long)]
        store_id: Option<String>,
    },
    /// Prints a new store id for `init --store-id`, or with DIR the id of its partitions (to
    /// give a new host's partitions the id of the others).
    StoreId {
        /// A recovery directory.
        dir: Option<PathBuf>,
    },
    /// Shows what a recovery directory holds, checking it as a resume would.
    Inspect {
        /// The recovery directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Show the state of one key of this step (with --key).
        #[arg(long, requires = "key")]
        step: Option<String>,
        /// The key, as JSON or as a plain string.
        #[arg(long, requires = "step")]
        key: Option<String>,
    },
}

/// The partitions `init --parts` creates.
#[derive(Clone)]
struct PartList(Vec<usize>);

fn parse_part_list(text: &str) -> Result<PartList, String> {
    parse_parts(text).map(PartList).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Recovery(Recovery::Init {
            dir,
            count,
            parts,
            store_id: None,
        }) => {
            debug_assert!(parts.is_none(), "clap requires --store-id with --parts");
            let files = init_dir(&dir, count)?;
            println!("{} recovery partitions in {}", files.len(), dir.display());
        }
        Command::Recovery(Recovery::Init {
            dir,
            count,
            parts,
            store_id: Some(id),
        }) => {
            let parts = parts.map_or_else(|| (0..count).collect(), |p| p.0);
            init_parts(&dir, count, &parts, &id)?;
            let names: Vec<String> = parts.iter().map(|p| format!("part-{p}")).collect();
            println!(
                "recovery partitions {} of {count} in {}, store id {id}",
                names.join(", "),
                dir.display()
            );
        }
        Command::Recovery(Recovery::StoreId { dir: None }) => println!("{}", new_store_id()),
        Command::Recovery(Recovery::StoreId { dir: Some(dir) }) => println!("{}", store_id_of(&dir)?),
        Command::Recovery(Recovery::Inspect {
            dir,
            json,
            step: Some(step),
            key: Some(key),
        }) => {
            let found = inspect::key_state(&dir, &step, &key)?
                .with_context(|| format!("step '{step}' has no stored state for key {key}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                println!("{step} {}: {}", found.key, found.state);
            }
        }
        Command::Recovery(Recovery::Inspect { dir, json, .. }) => {
            let found = inspect(&dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                print!("{found}");
            }
        }
    }
    Ok(())
}
