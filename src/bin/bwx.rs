//! The `bwx` tool: work with recovery directories when there is no flow binary at hand.
//!
//! ```text
//! bwx recovery init DIR N             create DIR (0700) and N partitions (0600)
//! bwx recovery inspect DIR [--json]   executions, worker counts, frontiers, steps, key counts
//! bwx recovery inspect DIR --step S --key K [--json]   one key's decoded state
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bwx::recovery::{init_dir, inspect};
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
    /// Creates DIR if needed and N recovery partitions in it.
    Init {
        /// The recovery directory.
        dir: PathBuf,
        /// How many partitions (at least the most workers you expect to run with).
        count: usize,
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
        Command::Recovery(Recovery::Init { dir, count }) => {
            let files = init_dir(&dir, count)?;
            println!("{} recovery partitions in {}", files.len(), dir.display());
        }
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
