//! (a) a-wordcount: lines from 4 shard files, words counted per batch before the exchange.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};

use rustc_hash::FxHashMap;

use bwx::inputs::{BatchStatus, ConnectorError, FixedPartitionedSource, StatefulSourcePartition};
use bwx::prelude::*;
use bwx::testing::TestingSink;

use crate::{Outcome, args::Args};

const LINES_PER_BATCH: usize = 1000;

/// One partition per shard file; each batch is up to 1000 lines.
struct Shards {
    dir: String,
}

impl FixedPartitionedSource for Shards {
    type Item = String;
    type State = u64;
    type Partition = ShardPart;

    fn list_parts(&self) -> Result<Vec<String>, ConnectorError> {
        Ok((0..4)
            .map(|p| format!("{}/wc/shards/part-{p}.txt", self.dir))
            .collect())
    }

    fn build_part(
        &self,
        _step: &StepId,
        path: &str,
        resume: Option<u64>,
    ) -> Result<ShardPart, ConnectorError> {
        let open = || -> std::io::Result<BufReader<File>> {
            let mut file = File::open(path)?;
            file.seek(SeekFrom::Start(resume.unwrap_or(0)))?;
            Ok(BufReader::with_capacity(READ_BUFFER, file))
        };
        let reader = open().map_err(|e| format!("{path}: {e} (run the bench setup.sh)"))?;
        Ok(ShardPart {
            path: path.to_string(),
            reader,
            pos: resume.unwrap_or(0),
        })
    }
}

/// Bytes read from a shard at a time: the shard is streamed, not loaded whole (the four
/// shards are 50 MB together).
const READ_BUFFER: usize = 64 * 1024;

struct ShardPart {
    path: String,
    reader: BufReader<File>,
    /// Byte offset of the next line.
    pos: u64,
}

impl StatefulSourcePartition for ShardPart {
    type Item = String;
    type State = u64;

    fn next_batch(&mut self, batch: &mut Vec<String>) -> Result<BatchStatus, ConnectorError> {
        for _ in 0..LINES_PER_BATCH {
            let mut line = String::new();
            let read = self
                .reader
                .read_line(&mut line)
                .map_err(|e| format!("{}: {e}", self.path))?;
            if read == 0 {
                return Ok(BatchStatus::Eof);
            }
            self.pos += read as u64;
            batch.push(line);
        }
        Ok(BatchStatus::Active)
    }

    fn snapshot(&self) -> u64 {
        self.pos
    }
}

/// Tokenises a batch of lines and counts its words locally: one (word, n) per distinct
/// word and batch crosses workers.
fn count_batch(lines: &mut Vec<String>, counts: &mut Vec<(String, u64)>) {
    let mut local: FxHashMap<String, u64> = FxHashMap::default();
    let mut word = String::with_capacity(32);
    for line in lines.drain(..) {
        for byte in line.bytes().chain(std::iter::once(b' ')) {
            if byte.is_ascii_alphabetic() {
                word.push(byte.to_ascii_lowercase() as char);
            } else if !word.is_empty() {
                match local.get_mut(word.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        local.insert(word.clone(), 1);
                    }
                }
                word.clear();
            }
        }
    }
    counts.extend(local);
}

/// The flow with the builder.
fn builder_flow(dir: String, out: TestingSink<(String, u64)>) -> Dataflow {
    let flow = Dataflow::new("wordcount");
    flow.input("lines", Shards { dir })
        .flat_map_batch("words", count_batch)
        .reduce_final("count", |a, b| a + b)
        .output("out", out);
    flow
}

/// The same flow with `dataflow!`.
fn macro_flow(dir: String, out: TestingSink<(String, u64)>) -> Dataflow {
    bwx::dataflow!(wordcount {
        lines = input(Shards { dir });
        words = lines.flat_map_batch(count_batch);
        count = words.reduce_final(|a, b| a + b);
        out   = count.output(out);
    })
}

pub fn run(args: &Args) -> Result<Outcome, String> {
    let out = TestingSink::new();
    let build = if args.macro_form { macro_flow } else { builder_flow };
    let flow = build(args.data.clone(), out.clone());
    crate::execute(&flow, args)?;
    let counts = out.take();
    let events = counts.iter().map(|(_, n)| n).sum();
    Ok(Outcome::new(events, move || {
        counts.into_iter().map(|(w, n)| format!("{w},{n}")).collect()
    }))
}
